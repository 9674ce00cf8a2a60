"""One sample, from file to table row: read -> classify -> compensate -> gate -> metrics ->
statistics -> Gating-ML, FlowJo sample and plot. Each step is a function of its own module and
takes its own part of the :class:`~cytomnt.sample.setup.SampleSetup`; this module only runs them
in order and turns any failure into that sample's ``status=error`` row (a batch never stops for
one file). The batch loop is in :mod:`cytomnt.run.batch`.
"""
from __future__ import annotations

import pandas as pd

from gating.auto.bias import flagged
from gating.parallel import in_spare_time
from gating.preprocess import compensation_for

from cytomnt.inputs.files import item_hash, item_name
from cytomnt.sample.carcall import car_call
from cytomnt.sample.classify import Identity, identify, sample_type_of
from cytomnt.sample.documents import gate_plot, gatingml, sample_xml
from cytomnt.sample.gate import GATED_COUNTS, gate
from cytomnt.sample.metrics import Counts, phenotype
from cytomnt.sample.populations import sample_table_docs
from cytomnt.sample.privacy import identifying_values, keyword_values, path_secrets, scrub
from cytomnt.sample.read import read_input
from cytomnt.sample.results import SampleResult, add_flags, empty_row, printable
from cytomnt.sample.setup import SampleSetup
from cytomnt.sample.statistics import StatisticsJob


def analyze_tube(item, setup: SampleSetup, sha256: str | None = None) -> SampleResult:
    """Analyse one file (a path) or one FlowKit ``Sample``; never raises for a bad file.

    ``sha256``: the file's hash when the caller has it already (the batch runner does).
    """
    path, name = item_name(item)
    idn = setup.identification
    if idn.deidentify and not sha256:
        sha256 = item_hash(item)
    # the file's hash in the time the sample's threads leave a core idle
    hashing = None if sha256 else in_spare_time(item_hash, item)
    ident = identify(path, name, idn.manifest, idn.deidentify, sha256)
    row = _first_row(ident, path, setup.strategy_label, setup.gating.panel.source)
    secrets = (path_secrets(path) if path is not None else [name]) if idn.deidentify else []
    try:
        result = _steps(item, ident, row, setup, secrets)
    except Exception as exc:  # noqa: BLE001 - a batch never stops for one file
        known = isinstance(exc, (ValueError, LookupError))     # our errors are ValueErrors naming the problem
        row.update(status="error", error=str(exc) if known else f"{type(exc).__name__}: {exc}")
        result = SampleResult(row, pd.DataFrame(), None)
    if path is None or path.exists():               # its content hash goes in the row (errors.csv too)
        row["sha256"] = sha256 or hashing.result()
    if idn.deidentify:
        row["file"] = ""
        row["error"] = scrub(row["error"] or "", secrets)
    row["error"] = printable(row["error"] or "")
    return result


def _first_row(ident: Identity, path, strategy_label: str, panel_source: str) -> dict:
    """The row as known before reading: ids and manifest facts."""
    e = ident.entry
    row = empty_row()
    row.update(sample_id=ident.sample_id, file=str(path) if path is not None else "", status="ok", error="",
               strategy=strategy_label, panel=panel_source, patient_id=e.patient_id if e else "",
               collection_date=e.collection_date if e else "", alc_k_per_ul=e.alc_k_per_ul if e else None,
               qc_flags="")
    return row


def _steps(item, ident: Identity, row: dict, setup: SampleSetup, secrets: list[str]) -> SampleResult:
    sid, idn = ident.sample_id, setup.identification
    # 1. read
    inp = read_input(item, sid)
    sample = inp.sample
    row.update(events=int(sample.event_count))
    add_flags(row, *inp.flags)
    if idn.deidentify:
        secrets += identifying_values(sample.get_metadata(), idn.identifying_keywords)
    if idn.keywords:
        row["keywords"] = keyword_values(sample.get_metadata(), idn.keywords)
    # 2. classify
    row["sample_type"], row["sample_type_source"] = sample_type_of(ident.entry, idn.sample_type,
                                                                   sample.get_metadata(), inp.name)
    add_flags(row, "SAMPLE_TYPE_INFERRED" if row["sample_type_source"] == "inferred" else "")
    # 3. compensate
    comp = compensation_for(sample, setup.spillover, inp.name)
    row["compensation"] = comp.describe()
    add_flags(row, "NO_COMPENSATION" if comp.matrix is None else "")
    # 4. gate
    job = StatisticsJob(sample, comp)          # each population's statistics start as its gate is done
    gated = gate(sample, comp, setup.strategy.load(), setup.gating, inp.name, sid, setup.learned_for(ident.entry),
                 job.start)
    row["transform"] = gated.transform
    row.update({k: gated.counts.get(k) for k in GATED_COUNTS})
    add_flags(row, *gated.flags, "" if setup.strategy.acquisition_qc else "ACQUISITION_QC_OFF")
    # 5. metrics: the CAR call against its background, then the phenotype numbers
    user_gates = not setup.strategy.uses_template
    ms, panel = setup.metrics, setup.gating.panel
    call = car_call(gated.calls, gated.counts.get("t_cells"), ms.min_t_cells, user_gates=user_gates,
                    confidence=ms.confidence)
    metrics, mflags = phenotype(Counts(**{k: gated.counts.get(k) for k in Counts.__dataclass_fields__}),
                                ms, alc_k_per_ul=row["alc_k_per_ul"],
                                beads_per_test=panel.beads_per_test, test_volume_ul=panel.test_volume_ul,
                                call=call)
    row.update(metrics)
    add_flags(row, *mflags)
    if call.status == "ok":     # judged on CAR+ cells only when there are some beyond background
        add_flags(row, *(f"PREGATE_BIAS:{g}" for g in flagged(gated.pregates, doublet_gates=("singlets",))))
    if "control" in str(row["car_basis"]):
        row["car_basis"] = str(row["car_basis"]).replace("control", f"control {setup.control_name(ident.entry)}")
    # 6. the populations and statistics tables
    populations, stats = sample_table_docs(sample, comp, gated, sid, job)
    # 7. the sample's gates as Gating-ML, its FlowJo sample and its gate plot
    gml = gatingml(gated, row, shared=user_gates)
    fj = sample_xml(gated, sample, comp, item_name(item)[0], inp.name, sid, idn.deidentify, row)
    png = gate_plot(gated, sample, sid, row) if setup.plots else None
    return SampleResult.from_docs(row, populations, stats, gatingml=gml, plot_png=png, flowjo=fj)
