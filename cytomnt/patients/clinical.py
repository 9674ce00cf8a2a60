"""Clinical inputs: ``clinical.csv`` (one row per patient) and ``labs.csv`` (ALC over time).

Empty cells mean unknown, never absent. Every problem names the file, row and column.

clinical.csv: patient_id, product (cilta-cel | ide-cel | other), infusion_date (YYYY-MM-DD),
bridging_response (IMWG: sCR | CR | VGPR | PR | MR | SD | PD | unknown), bmpc_pct (bone-marrow
plasma cells, %), m_spike_g_dl, sflc_mg_l (involved serum free light chain, mg/L), ferritin_ng_ml
(baseline, before lymphodepletion), crs_max_grade (0-4), icans_max_grade (0-4),
prior_bcma_bispecific (yes/no); optional crs_date and icans_date (when that maximum grade was
reached: a grade is never used before its date, and an undated grade at a risk threshold stays
unknown), ferritin_date (on or before the infusion date) and mnt_onset_date (drawn on the
report's timelines; never an input of the evaluator).

labs.csv: patient_id, date, alc_k_per_ul (absolute lymphocyte count, x10^3 cells/uL).
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cytomnt.inputs import dates
from cytomnt.inputs.tables import read_own_csv, read_table

CLINICAL_COLUMNS = ("patient_id", "product", "infusion_date", "bridging_response", "bmpc_pct", "m_spike_g_dl",
                    "sflc_mg_l", "ferritin_ng_ml", "crs_max_grade", "icans_max_grade", "prior_bcma_bispecific")
OPTIONAL_CLINICAL = ("crs_date", "icans_date", "ferritin_date", "mnt_onset_date")
LAB_COLUMNS = ("patient_id", "date", "alc_k_per_ul")
PRODUCTS = ("cilta-cel", "ide-cel", "other")
RESPONSES = ("sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "unknown")
#: ALC in x10^3/uL above this can only be cells/uL (a mix-up); refused unless the unit is declared.
ALC_K_PER_UL_MAX = 100.0
#: ALC below this (x10^3/uL, i.e. 5 cells/uL) is flagged: possibly x10^9 cells/uL typed as cells/mL or similar.
ALC_K_PER_UL_MIN_PLAUSIBLE = 0.005
ALC_UNITS = {"k_per_ul": 1.0, "cells_per_ul": 1e-3, "10^9/L": 1.0}


class ClinicalDataError(ValueError):
    """A clinical or lab file is malformed; the message names file, row and column."""


@dataclass(frozen=True)
class Patient:
    """Baseline and course facts of one patient; None means unknown."""

    patient_id: str
    product: str | None = None
    infusion_date: dt.date | None = None
    bridging_response: str | None = None
    bmpc_pct: float | None = None
    m_spike_g_dl: float | None = None
    sflc_mg_l: float | None = None
    ferritin_ng_ml: float | None = None
    crs_max_grade: int | None = None
    icans_max_grade: int | None = None
    prior_bcma_bispecific: bool | None = None
    crs_date: dt.date | None = None
    icans_date: dt.date | None = None
    ferritin_date: dt.date | None = None
    mnt_onset_date: dt.date | None = None     # drawn on timelines only (the evaluator never reads it)


@dataclass
class ClinicalData:
    """Patients, their ALC series and (optionally) their flow results."""

    patients: dict[str, Patient]
    labs: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["patient_id", "date", "alc_k_per_ul"]))
    flow: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)
    treatments: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["patient_id", "date", "treatment", "dose", "reason"]))   # treatments.csv


def parse_date(value, where: str) -> dt.date | None:
    """A date of a clinical or lab file (:func:`cytomnt.inputs.dates.parse_date`), errors as ClinicalDataError."""
    return dates.parse_date(value, where, ClinicalDataError)


def _num(value, where: str, lo: float | None = None, hi: float | None = None, integer: bool = False):
    s = str(value).strip()
    if not s or s.lower() in ("nan", "na", "none", "unknown"):
        return None
    if "," in s:
        raise ClinicalDataError(f"{where}: '{s}' has a comma: write numbers with a dot as the decimal separator and "
                                f"no thousands separator ('3,5' and '3,500' are ambiguous)")
    try:
        v = float(s)
    except ValueError:
        raise ClinicalDataError(f"{where}: '{s}' is not a number") from None
    if not math.isfinite(v):
        raise ClinicalDataError(f"{where}: '{s}' is not a finite number")
    if lo is not None and v < lo or hi is not None and v > hi:
        span = f"{lo:g} to {hi:g}" if hi is not None else f"{lo:g} or more"
        raise ClinicalDataError(f"{where}: {v:g} is outside the plausible range {span}")
    if integer:
        if v != int(v):
            raise ClinicalDataError(f"{where}: grade {v:g} must be a whole number")
        return int(v)
    return v


def _bool(value, where: str) -> bool | None:
    s = str(value).strip().lower()
    if not s or s in ("nan", "na", "unknown"):
        return None
    if s in ("yes", "y", "true", "1"):
        return True
    if s in ("no", "n", "false", "0"):
        return False
    raise ClinicalDataError(f"{where}: '{value}' must be yes or no (or empty for unknown)")


def read_clinical(path: str | Path, today: dt.date | None = None) -> dict[str, Patient]:
    """Patients from clinical.csv, validated (dates after ``today`` are refused)."""
    path = Path(path)
    df = read_table(path, CLINICAL_COLUMNS, "clinical file", ClinicalDataError, OPTIONAL_CLINICAL)
    out: dict[str, Patient] = {}
    for i, r in enumerate(df.to_dict("records"), start=2):
        w = lambda col: f"{path}, row {i}, column {col}"  # noqa: E731
        pid = r["patient_id"].strip()
        if not pid:
            raise ClinicalDataError(f"{w('patient_id')}: empty")
        if pid in out:
            raise ClinicalDataError(f"{w('patient_id')}: patient '{pid}' has a second row; one row per patient")
        product = r["product"].strip().lower() or None
        if product is not None and product not in PRODUCTS:
            raise ClinicalDataError(f"{w('product')}: '{r['product']}' is not one of {', '.join(PRODUCTS)}")
        resp = r["bridging_response"].strip().upper() or None
        resp = "sCR" if resp == "SCR" else resp
        if resp == "UNKNOWN":
            resp = None
        if resp is not None and resp.upper() not in {x.upper() for x in RESPONSES}:
            raise ClinicalDataError(f"{w('bridging_response')}: '{r['bridging_response']}' is not one of {', '.join(RESPONSES)}")
        inf = parse_date(r["infusion_date"], w("infusion_date"))
        if inf is not None and today is not None and inf > today:
            raise ClinicalDataError(f"{w('infusion_date')}: {inf} is in the future (today is {today}; check the year)")
        p = Patient(
            pid, product, inf, resp,
            _num(r["bmpc_pct"], w("bmpc_pct"), 0, 100), _num(r["m_spike_g_dl"], w("m_spike_g_dl"), 0, 20),
            _num(r["sflc_mg_l"], w("sflc_mg_l"), 0, 1e6), _num(r["ferritin_ng_ml"], w("ferritin_ng_ml"), 0, 1e6),
            _num(r["crs_max_grade"], w("crs_max_grade"), 0, 5, True),
            _num(r["icans_max_grade"], w("icans_max_grade"), 0, 5, True),
            _bool(r["prior_bcma_bispecific"], w("prior_bcma_bispecific")),
            parse_date(r.get("crs_date", ""), w("crs_date")), parse_date(r.get("icans_date", ""), w("icans_date")),
            parse_date(r.get("ferritin_date", ""), w("ferritin_date")),
            parse_date(r.get("mnt_onset_date", ""), w("mnt_onset_date")))
        if p.ferritin_date is not None and inf is not None and p.ferritin_date > inf:
            raise ClinicalDataError(f"{w('ferritin_date')}: {p.ferritin_date} is after the infusion date {inf}; "
                                    f"ferritin_ng_ml is the baseline value before lymphodepletion")
        for col in ("crs_date", "icans_date", "mnt_onset_date"):
            d = getattr(p, col)
            if d is not None and inf is not None and d < inf:
                raise ClinicalDataError(f"{w(col)}: {d} is before the infusion date {inf}")
            if d is not None and today is not None and d > today:
                raise ClinicalDataError(f"{w(col)}: {d} is in the future (today is {today}; check the year)")
        out[pid] = p
    return out


def read_labs(path: str | Path, patients: dict[str, Patient] | None = None, unit: str = "k_per_ul",
              today: dt.date | None = None) -> pd.DataFrame:
    """ALC series from labs.csv as (patient_id, date, alc_k_per_ul), sorted; unit mix-ups refused.

    ``unit`` declares the file's unit: ``k_per_ul`` (x10^3/uL, the default; same number as
    x10^9/L) or ``cells_per_ul`` (divided by 1000).
    """
    path = Path(path)
    if unit not in ALC_UNITS:
        raise ClinicalDataError(f"ALC unit '{unit}' is not one of {', '.join(ALC_UNITS)}")
    df = read_table(path, LAB_COLUMNS, "labs file", ClinicalDataError)
    rows, too_big, row_numbers = [], [], []
    for i, r in enumerate(df.to_dict("records"), start=2):
        w = lambda col: f"{path}, row {i}, column {col}"  # noqa: E731
        pid = r["patient_id"].strip()
        if not pid:
            raise ClinicalDataError(f"{w('patient_id')}: empty")
        if patients is not None and pid not in patients:
            raise ClinicalDataError(f"{w('patient_id')}: patient '{pid}' is not in the clinical file")
        d = parse_date(r["date"], w("date"))
        if d is None:
            raise ClinicalDataError(f"{w('date')}: empty; every ALC needs its date")
        if today is not None and d > today:
            raise ClinicalDataError(f"{w('date')}: {d} is in the future (today is {today}; check the year)")
        v = _num(r["alc_k_per_ul"], w("alc_k_per_ul"), 0, None)
        if v is None:
            continue
        v *= ALC_UNITS[unit]
        if unit != "cells_per_ul" and v > ALC_K_PER_UL_MAX:
            too_big.append(f"row {i} ({pid}, {d}: {v:g})")
        rows.append((pid, d, v))
        row_numbers.append(i)
    if too_big:
        raise ClinicalDataError(
            f"labs file {path}: alc_k_per_ul must be in x10^3 cells/uL, but {len(too_big)} value(s) above "
            f"{ALC_K_PER_UL_MAX:g} can only be cells/uL: {'; '.join(too_big[:10])}"
            f"{' ...' if len(too_big) > 10 else ''}. Convert them (3500 cells/uL = 3.5 x10^3/uL) or declare "
            f"the unit (--alc-unit cells_per_ul).")
    out = pd.DataFrame(rows, columns=["patient_id", "date", "alc_k_per_ul"])
    out["row"] = row_numbers
    dup = out.duplicated(["patient_id", "date"], keep=False)
    if dup.any():
        d = out[dup].groupby(["patient_id", "date"]).alc_k_per_ul.nunique()
        conflict = d[d > 1]
        if len(conflict):
            (pid, day), _ = next(iter(conflict.items()))
            clash = out[(out.patient_id == pid) & (out.date == day)]
            where = ", ".join(f"row {r} ({v:g})" for r, v in zip(clash.row, clash.alc_k_per_ul))
            raise ClinicalDataError(f"labs file {path}: patient {pid} has different ALC values on {day}: {where}; "
                                    f"keep one")
        out = out.drop_duplicates(["patient_id", "date"])
    out = out.drop(columns="row")
    return out.sort_values(["patient_id", "date"]).reset_index(drop=True)


def read_flow(path: str | Path) -> pd.DataFrame:
    """A ``samples.csv`` from ``cytomnt analyze`` (needs patient_id and collection_date from the manifest)."""
    return prepare_flow(read_own_csv(Path(path), keep_default_na=True), str(path))


def prepare_flow(df: pd.DataFrame, path: str = "flow results") -> pd.DataFrame:
    """Flow rows usable by the evaluator: with a patient, dates parsed."""
    need = ["patient_id", "collection_date", "sample_type", "status"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ClinicalDataError(f"flow results {path}: missing column(s) {', '.join(missing)}; use the samples.csv "
                                f"of `cytomnt analyze --manifest ...`")
    if "sample_id" not in df.columns:
        df = df.assign(sample_id=[f"row {i + 2}" for i in range(len(df))])
    df = df[df.patient_id.notna() & (df.patient_id.astype(str) != "") & df.collection_date.notna()
            & (df.collection_date.astype(str) != "")].copy()
    df["collection_date"] = [parse_date(v, f"{path}, sample {s}, column collection_date")
                             for v, s in zip(df.collection_date, df.sample_id)]
    df["patient_id"] = df.patient_id.astype(str)
    if "qc_flags" not in df.columns:             # a hand-made flow table may lack it
        df["qc_flags"] = ""
    from cytomnt.sample.results import SAMPLE_COLUMNS
    absent = [c for c in SAMPLE_COLUMNS if c not in df.columns]
    return df.assign(**{c: np.nan for c in absent}) if absent else df    # a column not given is unknown


def load(clinical: str | Path, labs: str | Path | None = None, flow: str | Path | pd.DataFrame | None = None,
         alc_unit: str = "k_per_ul", today: dt.date | None = None, treatments: str | Path | None = None) -> ClinicalData:
    """Read the clinical, lab, flow and (optional) treatment inputs of ``cytomnt risk``; dates
    after ``today`` (default: the real today) are refused."""
    today = today or dt.date.today()
    data = _load(clinical, labs, flow, alc_unit, today)
    if treatments is not None:
        from cytomnt.patients.treatments import read_treatments
        data.treatments = read_treatments(treatments, data.patients, today)
    return data


def _load(clinical, labs, flow, alc_unit: str, today: dt.date) -> ClinicalData:
    """``flow`` is a samples.csv, a results store (``results.sqlite``: every run's samples, newest
    per sample) or a DataFrame."""
    patients = read_clinical(clinical, today)
    lab_df = read_labs(labs, patients, alc_unit, today) if labs else \
        pd.DataFrame(columns=["patient_id", "date", "alc_k_per_ul"])
    if isinstance(flow, pd.DataFrame):
        flow_df = flow
    elif flow is not None and Path(flow).suffix in (".sqlite", ".db"):
        from cytomnt.run.store import ResultStore
        st = ResultStore(flow)
        try:
            flow_df = prepare_flow(st.latest_rows(), str(flow))
        finally:
            st.close()
    else:
        flow_df = read_flow(flow) if flow is not None else None
    data = ClinicalData(patients, lab_df, flow_df)
    low = lab_df[(lab_df.alc_k_per_ul > 0) & (lab_df.alc_k_per_ul < ALC_K_PER_UL_MIN_PLAUSIBLE)]
    for r in low.itertuples():
        data.warnings.append(f"labs: {r.patient_id} on {r.date}: ALC {r.alc_k_per_ul:g} x10^3/uL is below 5 cells/uL; "
                             f"check the unit")
    for pid, p in patients.items():
        mine = lab_df[lab_df.patient_id == pid]
        first = mine.date.min() if len(mine) else None
        if p.infusion_date is None and (lab_df.patient_id == pid).any():
            data.warnings.append(f"clinical: {pid} has no infusion_date: ALC kinetics and day-based factors are unknown")
        elif first is not None and p.infusion_date is not None and (p.infusion_date - first).days > 60:
            data.warnings.append(f"labs: {pid} has ALC values from {first}, more than 60 days before infusion")
    if flow_df is not None:
        unknown = sorted(set(flow_df.patient_id) - set(patients))
        if unknown:
            data.warnings.append(f"flow results for patient(s) not in the clinical file: {', '.join(unknown)}")
    return data
