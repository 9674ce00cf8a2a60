"""Exports other tools take: AnnData (.h5ad) of gated events for scanpy/pytometry, and an FCS
file of one population. Both re-apply the sample's own Gating-ML (``OUT/gates/<id>.xml``) to
its FCS file with the fast evaluator, so the events are exactly those counted in the tables.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from gating import read_fcs
from gating.evaluator.evaluate import Evaluator
from gating.formats.strategy import read_gatingml
from gating.io.files import write_fcs
from gating.preprocess import compensated_events, compensation_for

from cytomnt.inputs.files import sha256_file
from cytomnt.inputs.tables import read_own_csv
from cytomnt.sample.privacy import IDENTIFYING_KEYWORDS, normalise


class ExportError(ValueError):
    """An export cannot be made; the message says what is missing."""


def _locate(out: Path, sample_id: str, fcs: str | Path | None):
    """The sample's row, its FCS file (checked against the stored hash) and its gates."""
    samples = read_own_csv(out / "samples.csv", dtype=str, keep_default_na=False)
    rows = samples[samples.sample_id == sample_id]
    if rows.empty:
        raise ExportError(f"{out}/samples.csv has no sample '{sample_id}'; samples: {', '.join(samples.sample_id)}")
    row = rows.iloc[0]
    path = Path(fcs) if fcs else (Path(row.file) if row.file else None)
    if path is None:
        raise ExportError(f"sample '{sample_id}' was analysed with --deidentify, so its file is not recorded: "
                          f"give the FCS file (--fcs-input)")
    if not path.exists():
        raise ExportError(f"FCS file {path} of sample '{sample_id}' not found; give it with --fcs-input")
    if row.sha256 and sha256_file(path) != row.sha256:
        raise ExportError(f"{path} is not the file analysed as '{sample_id}' (its SHA-256 differs)")
    gml = out / "gates" / f"{sample_id}.xml"
    if not gml.exists():
        raise ExportError(f"no gates for '{sample_id}' in {out}/gates")
    return row, path, read_gatingml(gml)


def gated_events(out: str | Path, sample_id: str, fcs: str | Path | None = None):
    """(FlowKit sample, strategy, {(population, parent path): membership}) for a stored sample."""
    row, path, strategy = _locate(Path(out), sample_id, fcs)
    sample = read_fcs(path, sample_id).sample
    membership = Evaluator(strategy).evaluate(sample, sample_id).membership
    return sample, strategy, membership


def _run_markers(out: Path, sample_id: str) -> dict[str, str]:
    """Channel -> marker as the run named them (``$PnS`` or the panel's markers table), from
    statistics.csv; empty when the run wrote none."""
    path = out / "statistics.csv"
    if not path.exists():
        return {}
    stats = read_own_csv(path, usecols=["sample_id", "channel", "marker"], dtype=str, keep_default_na=False)
    rows = stats[(stats.sample_id == str(sample_id)) & (stats.marker != "")]
    return dict(zip(rows.channel, rows.marker))


def to_anndata(out: str | Path, sample_id: str, fcs: str | Path | None = None, path: str | Path | None = None):
    """An AnnData of the sample's events: X = compensated intensities (float32), ``var`` the
    channels ($PnN, marker), ``obs`` one boolean column per population; written to ``path`` if given."""
    try:
        import anndata as ad
    except ImportError as exc:
        raise ExportError("AnnData export needs the anndata package: pip install 'cytomnt[anndata]'") from exc
    sample, strategy, membership = gated_events(out, sample_id, fcs)
    comp = compensation_for(sample, None, sample_id)
    events = compensated_events(sample, comp)
    named = _run_markers(Path(out), sample_id)
    var = pd.DataFrame({"channel": list(sample.pnn_labels),
                        "marker": [named.get(c) or m or "" for c, m in zip(sample.pnn_labels, sample.pns_labels)]},
                       index=[str(x) for x in sample.pnn_labels])
    obs = pd.DataFrame(index=[str(i) for i in range(sample.event_count)])
    names = [n for n, _ in membership]
    for (name, ppath), mask in membership.items():
        col = name if names.count(name) == 1 else "/".join(ppath[1:] + (name,))
        obs[col] = np.asarray(mask, dtype=bool)
    adata = ad.AnnData(X=np.asarray(events, dtype=np.float32), obs=obs, var=var)
    adata.uns["cytomnt"] = {"sample_id": str(sample_id), "compensation": comp.describe(),
                            "populations": list(obs.columns)}
    if path is not None:
        adata.write_h5ad(path)
    return adata


#: Keywords an exported FCS file always keeps (structure, channels, spillover).
_KEEP = ("SPILLOVER", "SPILL", "CYT", "TIMESTEP")


def to_fcs(out: str | Path, sample_id: str, population: str, path: str | Path, fcs: str | Path | None = None,
           deidentify: bool = False) -> Path:
    """An FCS 3.1 file of one population's raw (uncompensated) events, with ``$SPILLOVER``.

    Without ``deidentify`` the source file's other keywords are copied, except the identifying
    ones; with it, only channel definitions, the spillover and the sample id are written.
    """
    sample, _, membership = gated_events(out, sample_id, fcs)
    hits = [(k, m) for k, m in membership.items() if k[0] == population or "/".join(k[1][1:] + (k[0],)) == population]
    if len(hits) != 1:
        raise ExportError(f"population '{population}' {'is ambiguous' if hits else 'not found'}; populations: "
                          f"{', '.join(sorted({k[0] for k in membership}))}")
    mask = hits[0][1]
    events = sample.get_events(source="raw")[mask]
    meta = sample.get_metadata()
    keep = {}
    drop = {normalise(k) for k in IDENTIFYING_KEYWORDS}
    structural = {"BEGINANALYSIS", "BEGINDATA", "BEGINSTEXT", "BYTEORD", "DATATYPE", "ENDANALYSIS", "ENDDATA",
                  "ENDSTEXT", "MODE", "NEXTDATA", "PAR", "TOT"}
    for k, v in meta.items():
        key = str(k).upper()
        if key in structural or key.startswith("P") and key[1:-1].isdigit():
            continue
        if key in _KEEP or (not deidentify and normalise(key) not in drop):
            keep[key] = str(v)
    keep["FIL"] = f"{sample_id}_{population}.fcs"
    keep["CYTOMNT_SOURCE_SHA256"] = hashlib.sha256(np.ascontiguousarray(sample.get_events(source="raw")).tobytes()).hexdigest()[:16]
    return write_fcs(path, sample.pnn_labels, sample.pns_labels, events, keep)
