"""One sample, from file to table row: read -> classify -> compensate -> gate -> metrics ->
statistics -> Gating-ML and plot. Each step is a function of its own module; this module only
runs them in order and turns any failure into that sample's ``status=error`` row (a batch
never stops for one file). The batch loop is in :mod:`cytomnt.run.batch`.
"""
from __future__ import annotations

import math
import weakref

import pandas as pd

from gating.preprocess import compensation_for
from gating.auto.bias import flagged
from gating.formats.strategy import gatingml_bytes

from cytomnt.sample.carcall import car_call
from cytomnt.sample.classify import Identity, identify, sample_type_of
from cytomnt.run.config import AnalysisConfig
from cytomnt.exports.flowjo import sample_xml
from cytomnt.sample.gate import GATED_COUNTS, Gated, gate
from cytomnt.sample.metrics import Counts, phenotype
from gating.parallel import in_background
from cytomnt.sample.privacy import identifying_values, keyword_values, path_secrets, scrub
from cytomnt.inputs.files import item_hash, item_name, read_input
from cytomnt.sample.results import SampleResult, add_flags, empty_row, printable
from cytomnt.sample.populations import sample_table_docs
from cytomnt.sample.statistics import StatisticsJob
from cytomnt.inputs.strategies import strategy_for


def analyze_sample(item, cfg: AnalysisConfig, sha256: str | None = None) -> SampleResult:
    """Analyse one file (a path) or one FlowKit ``Sample``; never raises for a bad file.

    ``sha256``: the file's hash when the caller has it already (the batch runner does).
    """
    path, name = item_name(item)
    if cfg.deidentify and not sha256:
        sha256 = item_hash(item)
    # the file's hash on another core while this one reads and gates it
    hashing = None if sha256 else in_background(item_hash, item)
    ident = identify(path, name, cfg.manifest, cfg.deidentify, sha256)
    row = _first_row(ident, path, cfg)
    secrets = (path_secrets(path) if path is not None else [name]) if cfg.deidentify else []
    try:
        result = _steps(item, ident, row, cfg, secrets)
    except Exception as exc:  # noqa: BLE001 - a batch never stops for one file
        known = isinstance(exc, (ValueError, LookupError))     # our errors are ValueErrors naming the problem
        row.update(status="error", error=str(exc) if known else f"{type(exc).__name__}: {exc}")
        result = SampleResult(row, pd.DataFrame(), None)
    if path is None or path.exists():               # its content hash goes in the row (errors.csv too)
        row["sha256"] = sha256 or hashing.result()
    if cfg.deidentify:
        row["file"] = ""
        row["error"] = scrub(row["error"] or "", secrets)
    row["error"] = printable(row["error"] or "")
    return result


def _first_row(ident: Identity, path, cfg: AnalysisConfig) -> dict:
    """The row as known before reading: ids and manifest facts."""
    e = ident.entry
    row = empty_row()
    row.update(sample_id=ident.sample_id, file=str(path) if path is not None else "", status="ok", error="",
               strategy=cfg.strategy_label, panel=cfg.panel.source, patient_id=e.patient_id if e else "",
               collection_date=e.collection_date if e else "", alc_k_per_ul=e.alc_k_per_ul if e else None,
               qc_flags="")
    return row


def _steps(item, ident: Identity, row: dict, cfg: AnalysisConfig, secrets: list[str]) -> SampleResult:
    sid = ident.sample_id
    # 1. read
    inp = read_input(item, sid)
    sample = inp.sample
    row.update(events=int(sample.event_count))
    add_flags(row, *inp.flags)
    if cfg.deidentify:
        secrets += identifying_values(sample.get_metadata(), cfg.identifying_keywords)
    if cfg.keywords:
        row["keywords"] = keyword_values(sample.get_metadata(), cfg.keywords)
    # 2. classify
    row["sample_type"], row["sample_type_source"] = sample_type_of(ident.entry, cfg.sample_type,
                                                                   sample.get_metadata(), inp.name)
    add_flags(row, "SAMPLE_TYPE_INFERRED" if row["sample_type_source"] == "inferred" else "")
    # 3. compensate
    comp = compensation_for(sample, cfg.spillover, inp.name)
    row["compensation"] = comp.describe()
    add_flags(row, "NO_COMPENSATION" if comp.matrix is None else "")
    # 4. gate
    job = StatisticsJob(sample, comp)          # each population's statistics start as its gate is done
    gated = gate(sample, comp, strategy_for(cfg), cfg, inp.name, sid, cfg.learned_for(ident.entry), job.start)
    row["transform"] = gated.transform
    row.update({k: gated.counts.get(k) for k in GATED_COUNTS})
    add_flags(row, *gated.flags, "" if cfg.acquisition_qc else "ACQUISITION_QC_OFF")
    # 5. metrics: the CAR call against its background, then the phenotype numbers
    call = car_call(gated.calls, gated.counts.get("t_cells"), cfg.metrics.min_t_cells,
                    user_gates=not cfg.uses_template, confidence=cfg.metrics.confidence)
    metrics, mflags = phenotype(Counts(**{k: gated.counts.get(k) for k in Counts.__dataclass_fields__}),
                                cfg.metrics, alc_k_per_ul=row["alc_k_per_ul"],
                                beads_per_test=cfg.panel.beads_per_test, test_volume_ul=cfg.panel.test_volume_ul,
                                call=call)
    row.update(metrics)
    add_flags(row, *mflags)
    if call.status == "ok":     # judged on CAR+ cells only when there are some beyond background
        add_flags(row, *(f"PREGATE_BIAS:{g}" for g in flagged(gated.pregates, doublet_gates=("singlets",))))
    if "control" in str(row["car_basis"]):
        row["car_basis"] = str(row["car_basis"]).replace("control", f"control {control_name(ident.entry, cfg)}")
    # 6. the populations and statistics tables
    populations, stats = sample_table_docs(sample, comp, gated, sid, job)
    # 7. the sample's gates as Gating-ML, and its gate plot
    gml = _gatingml(gated, row, shared=not cfg.uses_template)
    fj = sample_xml(gated, sample, comp, item_name(item)[0], inp.name, sid, cfg.deidentify, row)
    png = gate_plot(gated, sample, sid, row) if cfg.plots else None
    return SampleResult.from_docs(row, populations, stats, gatingml=gml, plot_png=png, flowjo=fj)


def control_name(entry, cfg: AnalysisConfig) -> str:
    """The control tube behind a sample's cuts (its own from the manifest, else the run's)."""
    from pathlib import Path
    if entry is not None and entry.control:
        return "sha256:" + entry_hash(entry.control) if cfg.deidentify else Path(entry.control).name
    return Path(cfg.control_file).name if cfg.control_file and not cfg.deidentify else str(cfg.control_file or "")


def entry_hash(path: str) -> str:
    from cytomnt.inputs.files import sha256_file
    return sha256_file(path)[:16]


#: Gating-ML of the run's shared (user) strategies, by strategy object and workspace sample: the
#: same document for every file, written once per process. Strategies are never changed in place.
_GML: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _gatingml(gated: Gated, row: dict, shared: bool) -> bytes | None:
    """The applied gates as Gating-ML; on failure the counts stand and the row says why."""
    try:
        if not shared:
            return gatingml_bytes(gated.strategy, sample_id=gated.workspace_sample)
        per = _GML.setdefault(gated.strategy, {})
        if gated.workspace_sample not in per:
            per[gated.workspace_sample] = gatingml_bytes(gated.strategy, sample_id=gated.workspace_sample)
        return per[gated.workspace_sample]
    except Exception as exc:  # noqa: BLE001
        add_flags(row, "GATINGML_NOT_WRITTEN")
        row["error"] = f"Gating-ML export failed: {exc}"
        return None


def gate_plot(gated: Gated, sample, sid: str, row: dict) -> bytes | None:
    """The sample's gate plot as PNG bytes, or None if drawing failed (a plot never costs a
    sample its numbers)."""
    import tempfile
    from pathlib import Path

    from gating.plot import plot_sample

    from cytomnt.inputs.panel import channels_of
    membership = {(p.name, p.path): p.membership for p in gated.populations}
    markers = {c.pnn: c.pns for c in channels_of(sample, gated.panel.panel) if c.pns}
    internal = next((p.membership for p in gated.populations if p.name == "non_t"), None)
    references = {name: ("non-T lymphocytes (internal negatives)", internal) for name, c in gated.calls.items()
                  if internal is not None and getattr(c, "basis", "") == "internal"}
    references.update({name: (f"cut from the {row.get('car_basis') or 'control tube'}", None)
                       for name, c in gated.calls.items() if getattr(c, "basis", "") == "control"})
    car, status = row.get("car_pct_of_t"), row.get("car_status")
    call = {"not_detected": "CAR not detected", "uncertain": "CAR call uncertain"}.get(status, "CAR")
    share = f"{car:.1f}% of T" + (" as counted" if status != "ok" else "")
    title = f"{sid}  ({row.get('sample_type') or '?'}; {call}: {share})" \
        if isinstance(car, float) and math.isfinite(car) else sid
    try:
        with tempfile.TemporaryDirectory() as d:
            return plot_sample(gated.strategy, sample, membership, Path(d) / "p.png", title, gated.workspace_sample,
                               markers=markers, references=references).read_bytes()
    except Exception:  # noqa: BLE001
        return None
