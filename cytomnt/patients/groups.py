"""Per-patient columns a cohort can be grouped by (``--by``) or modelled on (``--model``), taken
from the clinical, flow and treatment inputs when the cohort table does not have them: the
subgroups the literature names (bridging response, CAR CD4:CD8, CAR share of the ALC,
preemptive dexamethasone) and the CAR-T kinetics."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from cytomnt.patients import DERIVED
from cytomnt.patients.clinical import ClinicalData
from cytomnt.patients.expansion import patient_expansion
from cytomnt.patients.risk.factors import FactorContext
from cytomnt.patients.treatments import preemptive_dexamethasone

def patient_columns(data: ClinicalData) -> pd.DataFrame:
    """One row per patient of the clinical file with the derived columns (empty: unknown)."""
    ids = sorted(data.patients)
    rows = []
    for pid in ids:
        p = data.patients[pid]
        blood = FactorContext(p, dt.date.max, flow=data.flow).flow_samples("pb")   # as the evaluator takes them
        kin = patient_expansion(blood, p.infusion_date)
        at_cmax = ""
        if kin["all"].tmax_day is not None and len(blood) and "car_predominance" in blood.columns:
            days = [(d - p.infusion_date).days for d in blood.collection_date]
            hit = [i for i, d in enumerate(days) if d == kin["all"].tmax_day]
            at_cmax = str(blood.car_predominance.iloc[hit[0]]) if hit else ""
        rows.append({"patient_id": pid, "bridging_response": p.bridging_response or "",
                     "car_predominance_at_cmax": "" if at_cmax in ("nan", "None") else at_cmax,
                     "car_pct_of_alc_at_cmax": _num(kin["all"].car_pct_of_alc_at_cmax),
                     "car_cmax_per_ul": _num(kin["all"].cmax_per_ul), "car_auc_0_28": _num(kin["all"].auc_0_28),
                     "car_cd4_auc_0_28": _num(kin["cd4"].auc_0_28), "car_cd8_auc_0_28": _num(kin["cd8"].auc_0_28)})
    out = pd.DataFrame(rows, columns=["patient_id", *[c for c in DERIVED if c != "preemptive_dexamethasone"]])
    out["preemptive_dexamethasone"] = preemptive_dexamethasone(data.treatments, ids).to_numpy()
    return out


def _num(v) -> float:
    return float(v) if v is not None and math.isfinite(v) else np.nan


def with_patient_columns(df: pd.DataFrame, data: ClinicalData | None) -> pd.DataFrame:
    """The cohort with the derived columns it lacks (matched on patient_id)."""
    if data is None or "patient_id" not in df.columns:
        return df
    extra = patient_columns(data)
    extra = extra[["patient_id"] + [c for c in extra.columns if c not in df.columns]]
    return df.merge(extra, on="patient_id", how="left")


def split_numeric(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """A numeric grouping column with more than 5 distinct values as two groups at its median
    ('<= m' / '> m'); text and coded columns (site 1, 2, 3) as they are."""
    vals = pd.to_numeric(df[by].replace("", np.nan), errors="coerce")
    filled = df[by].astype(str).str.strip().replace({"nan": ""}) != ""
    if not filled.any() or vals[filled].isna().any() or vals.nunique() <= 5:
        return df
    m = float(vals.median())
    out = df.copy()
    out[by] = np.where(vals.isna(), "unknown", np.where(vals <= m, f"<= {m:.3g}", f"> {m:.3g}"))
    return out
