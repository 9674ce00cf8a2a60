"""The results model: one sample's row, populations, statistics, gates and plot, and the
samples table they make. Shared by the pipeline, the batch runner and the store (which is why
it lives on its own: none of them imports another to reach it).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from cytomnt.sample.frames import cells_frame, frame_doc, frame_from_doc, stacked

#: samples.csv columns, in order.
SAMPLE_COLUMNS = (
    "sample_id", "file", "sha256", "patient_id", "collection_date", "sample_type", "sample_type_source",
    "status", "error", "events", "qc_events_removed", "singlets", "live", "lymphocytes", "t_cells", "t_cd4", "t_cd8",
    "t_cd4_cd8_ratio", "car_t", "car_cd4", "car_cd8", "car_t_gross", "car_cd4_gross", "car_cd8_gross", "car_status", "car_basis", "car_status_reason",
    "car_background_expected", "car_pct_of_t", "car_pct_of_t_ci_low", "car_pct_of_t_ci_high", "car_cd4_cd8_ratio", "car_cd4_cd8_ratio_ci_low",
    "car_cd4_cd8_ratio_ci_high", "car_predominance", "carneg_cd4", "carneg_cd8",
    "carneg_cd4_cd8_ratio", "car_cd4_enrichment", "beads", "alc_k_per_ul", "car_t_per_ul",
    "car_t_per_ul_ci_low", "car_t_per_ul_ci_high", "car_cd4_per_ul", "car_cd4_per_ul_ci_low", "car_cd4_per_ul_ci_high",
    "car_cd8_per_ul", "car_cd8_per_ul_ci_low", "car_cd8_per_ul_ci_high", "car_t_per_ul_source", "car_pct_of_lymphocytes",
    "car_pct_of_lymphocytes_ci_low", "car_pct_of_lymphocytes_ci_high", "qc_flags", "compensation", "transform", "strategy", "panel",
)
#: Integer count columns of samples.csv (nullable: empty when a population was not measured).
COUNT_COLUMNS = ("events", "qc_events_removed", "singlets", "live", "lymphocytes", "t_cells", "t_cd4", "t_cd8", "car_t",
                 "car_cd4", "car_cd8", "car_t_gross", "car_cd4_gross", "car_cd8_gross", "beads", "carneg_cd4", "carneg_cd8")
#: Columns of populations.csv before the per-channel medians.
POPULATION_COLUMNS = ["sample_id", "population", "parent", "path", "count", "pct_parent", "pct_total",
                      "car_pos_t_reaching", "removes_car_pos_t_pct", "car_neg_t_reaching", "removes_car_neg_t_pct"]
#: Columns of statistics.csv.
STATISTICS_COLUMNS = ["sample_id", "population", "parent", "count", "pct_parent", "pct_total", "channel", "marker",
                      "role", "median", "mean", "rcv_pct"]


@dataclass
class SampleResult:
    """One sample's row for samples.csv, its populations, its gates as Gating-ML and as a
    FlowJo ``<Sample>`` (:mod:`cytomnt.sample.documents`), its plot and statistics."""

    row: dict
    populations: pd.DataFrame
    gatingml: bytes | None = None
    plot_png: bytes | None = None
    statistics: pd.DataFrame = field(default_factory=pd.DataFrame)
    flowjo: bytes | None = None

    # The tables travel (pickled to the parent, kept in the store) as Arrow bytes and become
    # DataFrames again only when used: most of a batch's results go from worker to store and
    # into the run's tables without being looked at. A table once used (or assigned) is a
    # DataFrame from then on, pickled as one.
    @classmethod
    def from_docs(cls, row: dict, populations: bytes | str, statistics: bytes | str, **rest) -> SampleResult:
        """A result whose tables are :mod:`cytomnt.sample.frames` docs, decoded on first use."""
        res = cls.__new__(cls)
        res.__dict__.update({"row": row, "gatingml": None, "plot_png": None, "flowjo": None, **rest})
        res.__dict__["_docs"] = {"populations": populations, "statistics": statistics}
        return res

    def frame_doc(self, name: str) -> bytes | str:
        """The ``populations`` or ``statistics`` table as :mod:`cytomnt.sample.frames` bytes."""
        docs = self.__dict__.get("_docs") or {}
        return docs[name] if name in docs else frame_doc(getattr(self, name))

    def held(self, name: str) -> pd.DataFrame | bytes | str:
        """A table as it is held: its DataFrame once decoded (or made in this process), else its doc."""
        return self.__dict__[name] if name in self.__dict__ else self.frame_doc(name)

    def __getattr__(self, name: str):                     # a table not decoded yet
        docs = self.__dict__.get("_docs")
        if docs and name in docs:
            table = self.__dict__[name] = frame_from_doc(docs.pop(name))    # the caller may change it
            return table
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.__dict__.get("_docs") or ()))

    def __setattr__(self, name: str, value) -> None:
        docs = self.__dict__.get("_docs")
        if docs and name in docs:
            del docs[name]                              # a table assigned replaces its doc
        object.__setattr__(self, name, value)

    @property
    def sample_id(self) -> str:
        return str(self.row["sample_id"])

    @property
    def ok(self) -> bool:
        return self.row.get("status") == "ok"


def empty_row() -> dict:
    """A samples.csv row with every column present and empty."""
    return {c: None for c in SAMPLE_COLUMNS}


def printable(text: str) -> str:
    """One line: a library's several-line message joined by spaces, and other control characters
    (from a corrupt file's bytes) escaped, so logs, CSV and xlsx stay valid."""
    text = " ".join(line.strip() for line in text.splitlines() if line.strip()) if "\n" in text or "\r" in text \
        else text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def add_flags(row: dict, *flags: str) -> None:
    """Append QC flags to a row's ``qc_flags`` (kept unique, in order)."""
    have = [f for f in str(row.get("qc_flags") or "").split(";") if f]
    row["qc_flags"] = ";".join(dict.fromkeys(have + [f for f in flags if f]))


def make_ids_unique(results: list[SampleResult]) -> None:
    """Make sample ids unique (two tubes named alike in different folders): suffix with a hash."""
    seen: dict[str, int] = {}
    for r in results:
        seen[r.sample_id] = seen.get(r.sample_id, 0) + 1
    for r in results:
        sid = r.sample_id
        if seen[sid] > 1:
            new = f"{sid}_{(r.row['sha256'] or hashlib.sha256(r.row['file'].encode()).hexdigest())[:8]}"
            r.row["sample_id"] = new
            for table in (r.populations, r.statistics):
                if len(table):
                    table["sample_id"] = new
            add_flags(r.row, "DUPLICATE_SAMPLE_ID")


def results_frame(results: Sequence[SampleResult]) -> pd.DataFrame:
    """The samples table: one row per result, columns as ``SAMPLE_COLUMNS`` then the FCS keywords
    asked for (``--keywords``; text, '' where a file lacks one), sorted by sample id."""
    counts = set(COUNT_COLUMNS)
    cells = {c: [r.row.get(c) if c in counts else r.row.get(c, np.nan) for r in results] for c in SAMPLE_COLUMNS}
    keywords = [r.row.get("keywords") or {} for r in results]
    for k in dict.fromkeys(k for kw in keywords for k in kw):
        cells[k] = np.array([kw.get(k, "") for kw in keywords], dtype=object)
    df = cells_frame(cells, COUNT_COLUMNS)
    if len(df) < 2:
        return df
    return df.sort_values(["sample_id", "file"], kind="stable").reset_index(drop=True)


def concat_tables(results: Sequence[SampleResult], name: str, columns: list[str]) -> pd.DataFrame:
    """One table (``populations`` or ``statistics``) of every result stacked, sorted by sample id
    (stable)."""
    tables = [r.held(name) for r in results]
    return stacked(tables, columns).sort_values(["sample_id"], kind="stable").reset_index(drop=True)
