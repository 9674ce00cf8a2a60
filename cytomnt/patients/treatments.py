"""Interventions after infusion: ``treatments.csv`` (optional), one row per course started.

Columns: patient_id, date (YYYY-MM-DD), treatment (e.g. dexamethasone, tocilizumab, anakinra),
dose (as written, e.g. '10 mg q6h'), reason: preemptive | CRS | ICANS | MNT (empty: not given).
Validated like the other inputs (a bad cell is one line naming file, row and column); drawn on
the timelines; a preemptive dexamethasone start is noted in the assessment, because the ALC and
CAR T cells counted after it may be suppressed by it.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from cytomnt.inputs import dates
from cytomnt.inputs.tables import read_table

TREATMENT_COLUMNS = ("patient_id", "date", "treatment", "dose", "reason")
REASONS = ("preemptive", "CRS", "ICANS", "MNT")
EMPTY = pd.DataFrame(columns=list(TREATMENT_COLUMNS))


class TreatmentsError(ValueError):
    """treatments.csv is malformed; the message names the file, row and column."""


def read_treatments(path: str | Path, patients=None, today: dt.date | None = None) -> pd.DataFrame:
    """Rows of treatments.csv, dates parsed and reasons checked (``patients``: the clinical file's ids)."""
    path = Path(path)
    df = read_table(path, TREATMENT_COLUMNS, "treatments file", TreatmentsError)
    rows = []
    reasons = {r.lower(): r for r in REASONS}
    for i, r in enumerate(df.to_dict("records"), start=2):
        where = lambda col: f"treatments file {path}, row {i}, column {col}"  # noqa: E731
        pid = str(r["patient_id"]).strip()
        if not pid:
            raise TreatmentsError(f"{where('patient_id')}: empty")
        if patients is not None and pid not in patients:
            raise TreatmentsError(f"{where('patient_id')}: patient '{pid}' is not in the clinical file")
        day = dates.parse_date(r["date"], where("date"), TreatmentsError)
        if day is None:
            raise TreatmentsError(f"{where('date')}: empty; every treatment needs the date it started")
        if today is not None and day > today:
            raise TreatmentsError(f"{where('date')}: {day} is in the future (today is {today}; check the year)")
        what = str(r["treatment"]).strip()
        if not what:
            raise TreatmentsError(f"{where('treatment')}: empty; name the drug (e.g. dexamethasone)")
        reason = str(r["reason"]).strip()
        if reason and reason.lower() not in reasons:
            raise TreatmentsError(f"{where('reason')}: '{reason}' is not one of {', '.join(REASONS)} (or empty)")
        rows.append((pid, day, what, str(r["dose"]).strip(), reasons.get(reason.lower(), "")))
    out = pd.DataFrame(rows, columns=list(TREATMENT_COLUMNS))
    return out.sort_values(["patient_id", "date"], kind="stable").reset_index(drop=True)


def treatments_of(df: pd.DataFrame | None, patient_id: str, as_of: dt.date | None = None) -> list[dict]:
    """One patient's treatments started on or before ``as_of``, in date order."""
    if df is None or not len(df):
        return []
    mine = df[(df.patient_id == patient_id).to_numpy() & np.array([as_of is None or d <= as_of for d in df.date], dtype=bool)]
    return [dict(r) for r in mine.to_dict("records")]


def is_preemptive_dexamethasone(t: dict) -> bool:
    return t.get("reason") == "preemptive" and "dexa" in str(t.get("treatment", "")).lower()


def suppression_notes(given: list[dict]) -> list[str]:
    """What the assessment says about values a treatment may have bent."""
    dex = [t for t in given if is_preemptive_dexamethasone(t)]
    if not dex:
        return []
    first = min(t["date"] for t in dex)
    return [f"preemptive dexamethasone from {first}: ALC and CAR T-cell values after it may be suppressed "
            f"(a factor absent after that date may have been present without it)"]


def preemptive_dexamethasone(df: pd.DataFrame | None, patient_ids) -> pd.Series:
    """Per patient 'yes' / 'no': a preemptive dexamethasone course on record (a cohort grouping column)."""
    given = {pid for pid in patient_ids if any(is_preemptive_dexamethasone(t) for t in treatments_of(df, pid))}
    return pd.Series(["yes" if p in given else "no" for p in patient_ids], dtype=object)
