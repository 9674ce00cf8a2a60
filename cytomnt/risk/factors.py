"""Factor kinds: how a factor's value is read from a patient's data as of a date.

A kind is ``fn(ctx, **params) -> (value, detail)``; the rules file compares the value with a
threshold. Built-in kinds are below; more can be added through the entry-point group
``cytomnt.risk_factors`` (name = kind, value = ``package.module:function``).
"""
from __future__ import annotations

import datetime as dt
import math
import operator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Callable

import numpy as np
import pandas as pd

from .. import kinetics
from ..clinical import CRS_ICANS_KNOWN_BY_DAY, Patient

ENTRY_POINT_GROUP = "cytomnt.risk_factors"
_KINDS: dict[str, Callable] = {}
_LOADED = False
#: QC flags that make a flow sample unusable for a factor (too few cells for a percentage)
EXCLUDING_FLAGS = ("NO_T_CELLS", "LOW_EVENT_COUNT")


@dataclass
class FactorContext:
    """One patient's data known on ``as_of``."""

    patient: Patient
    as_of: dt.date
    alc: list[kinetics.AlcPoint] = field(default_factory=list)
    flow: pd.DataFrame | None = None

    def flow_samples(self, sample_type: str) -> pd.DataFrame:
        """Usable flow results of this type collected on or before the as-of date."""
        if self.flow is None or self.flow.empty:
            return pd.DataFrame()
        f = self.flow
        f = f[(f.patient_id == self.patient.patient_id) & (f.sample_type == sample_type) & (f.status == "ok")]
        dated = np.array([d is not None and d <= self.as_of for d in f.collection_date], dtype=bool)
        f = f.loc[dated] if len(f) else f
        ok = np.array([not any(flag in str(q).split(";") for flag in EXCLUDING_FLAGS) for q in f.qc_flags.fillna("")],
                      dtype=bool)
        return f.loc[ok] if len(f) else f


def car_samples(ctx: "FactorContext", sample_type: str) -> tuple[pd.DataFrame, str]:
    """Usable samples whose CAR call is trustworthy (``car_status`` ok or not_detected), and a note
    naming those left out as ``uncertain`` (their CAR-derived numbers are unknown, not zero)."""
    f = ctx.flow_samples(sample_type)
    if f.empty or "car_status" not in f.columns:
        return f, ""
    status = f.car_status.fillna("ok").astype(str)
    unsure = f[status == "uncertain"]
    note = ""
    if len(unsure):
        why = "; ".join(f"{r.sample_id}: {r.car_status_reason}" for r in unsure.itertuples())
        note = f"CAR call uncertain in {len(unsure)} sample(s) ({why})"
    return f[status != "uncertain"], note


def kind(name: str):
    """Decorator registering a factor kind."""
    def deco(fn):
        _KINDS[name] = fn
        return fn
    return deco


def _load_plugins() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            _KINDS.setdefault(ep.name, ep.load())
        except Exception as exc:  # noqa: BLE001 - a broken plug-in must not break the built-ins
            import warnings
            warnings.warn(f"risk factor plug-in '{ep.name}' ({ep.value}) failed to load: {exc}")


def get_kind(name: str) -> Callable:
    _load_plugins()
    if name not in _KINDS:
        raise KeyError(f"unknown factor kind '{name}'; known kinds: {', '.join(sorted(_KINDS))}")
    return _KINDS[name]


def known_kinds() -> list[str]:
    _load_plugins()
    return sorted(_KINDS)


OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq,
       "in": lambda v, t: v in t}


def compare(value, op: str, threshold) -> bool | None:
    """Whether ``value op threshold``; None when the value is unknown."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    result = bool(OPS[op](value, threshold))
    if isinstance(value, UncertainMax) and not (result and op in (">", ">=")):
        return None         # a maximum known only from below settles "above", never "not above"
    return result


# -- built-in kinds ---------------------------------------------------------------------------

@kind("alc_max")
def alc_max(ctx: FactorContext, window_days=(0, 30)):
    """Highest ALC in the window so far (None: no ALC in the window yet)."""
    p = kinetics.alc_max(ctx.alc, tuple(window_days))
    if p is None:
        return None, f"no ALC in days {window_days[0]}-{window_days[1]} by {ctx.as_of}"
    return p.alc_k_per_ul, f"peak {p.alc_k_per_ul:g} on day {p.day} ({p.date})"


@kind("alc_on_day")
def alc_on_day(ctx: FactorContext, day: int = 10, tolerance_days: int = 1):
    """ALC nearest to ``day`` after infusion within ``tolerance_days``."""
    p = kinetics.alc_on_day(ctx.alc, day, tolerance_days)
    if p is None:
        return None, f"no ALC within day {day} +/- {tolerance_days} by {ctx.as_of}"
    return p.alc_k_per_ul, f"{p.alc_k_per_ul:g} on day {p.day} ({p.date})"


@kind("flow_max")
def flow_max(ctx: FactorContext, column: str, sample_type: str = "pb"):
    """Highest value of a samples.csv column over usable samples of a type. A CAR column is read
    only from samples whose CAR call is trustworthy; a not-detected CAR counts as 0; a sample
    whose call is uncertain leaves the value unknown unless a trustworthy one is already higher."""
    f, unsure = (car_samples(ctx, sample_type) if column.startswith("car") else (ctx.flow_samples(sample_type), ""))
    if "car_status" in f.columns and column.startswith("car_pct"):
        f = f.copy()
        f.loc[f.car_status.astype(str) == "not_detected", column] = 0.0
    if f.empty or f[column].isna().all():
        return None, (unsure or f"no usable {sample_type} flow sample by {ctx.as_of}")
    i = f[column].astype(float).idxmax()
    detail = f"{f.loc[i, column]:.1f} in {f.loc[i, 'sample_id']} ({f.loc[i, 'collection_date']})"
    if unsure:
        return UncertainMax(float(f.loc[i, column])), f"{detail}; {unsure}"
    return float(f.loc[i, column]), detail


class UncertainMax(float):
    """A highest value known only from below: other samples could not be read (uncertain)."""


@kind("flow_predominance")
def flow_predominance(ctx: FactorContext, sample_type: str = "pb"):
    """CAR CD4/CD8 predominance at the sample with the highest CAR share of T cells (among samples
    whose CAR call is ok; unknown when a sample's call is uncertain)."""
    f, unsure = car_samples(ctx, sample_type)
    if unsure:
        return None, unsure
    if "car_status" in f.columns:
        f = f[f.car_status.fillna("ok").astype(str) == "ok"]
    if f.empty or f.car_pct_of_t.isna().all():
        return None, f"no {sample_type} flow sample with CAR T cells detected by {ctx.as_of}"
    i = f.car_pct_of_t.astype(float).idxmax()
    call = str(f.loc[i, "car_predominance"])
    ratio = f.loc[i, "car_cd4_cd8_ratio"]
    detail = f"{call} (CAR CD4:CD8 {ratio:.2f}) in {f.loc[i, 'sample_id']} ({f.loc[i, 'collection_date']})"
    return (None if call == "indeterminate" else call), detail


@kind("csf_car_cd4")
def csf_car_cd4(ctx: FactorContext, min_enrichment: float = 1.0):
    """CSF: CD4-predominant CAR T cells whose CD4:CD8 exceeds the tube's CAR-negative T cells'."""
    f, unsure = car_samples(ctx, "csf")
    if unsure:
        return None, unsure
    if "car_status" in f.columns:
        f = f[f.car_status.fillna("ok").astype(str) == "ok"]
    if f.empty:
        return None, f"no CSF flow sample with CAR T cells detected by {ctx.as_of}"
    callable_ = f[f.car_predominance.isin(["CD4", "CD8", "balanced"])]
    if callable_.empty:
        return None, f"CSF CAR T cells too few to call predominance ({len(f)} sample(s))"
    hits = callable_[(callable_.car_predominance == "CD4") & (callable_.car_cd4_enrichment.astype(float) > min_enrichment)]
    r = (hits if not hits.empty else callable_).iloc[0]
    detail = (f"CAR CD4:CD8 {r.car_cd4_cd8_ratio:.2f} vs CAR-negative {r.carneg_cd4_cd8_ratio:.2f} "
              f"(enrichment {r.car_cd4_enrichment:.2f}) in {r.sample_id} ({r.collection_date})")
    return (not hits.empty), detail


@kind("clinical_in")          # the same reading; the rules file compares it with 'in'
@kind("clinical_value")
def clinical_value(ctx: FactorContext, field: str):
    """A baseline value from clinical.csv."""
    v = getattr(ctx.patient, field)
    return v, ("unknown" if v is None else f"{field} = {v}")


@kind("clinical_any")
def clinical_any(ctx: FactorContext, conditions: list):
    """True if any condition holds, False if all are known and fail, else unknown."""
    results, parts = [], []
    for c in conditions:
        v = getattr(ctx.patient, c["field"])
        r = compare(v, c["op"], c["threshold"])
        results.append(r)
        parts.append(f"{c['field']} {'?' if v is None else v} ({c['op']} {c['threshold']}: "
                     f"{'unknown' if r is None else 'yes' if r else 'no'})")
    val = True if any(r is True for r in results) else (None if any(r is None for r in results) else False)
    return val, "; ".join(parts)


@kind("crs_icans")
def crs_icans(ctx: FactorContext, crs_min_grade: int = 2, icans_min_grade: int = 1):
    """CRS >= grade or ICANS >= grade, counted only once known (its date, else day +14)."""
    p = ctx.patient
    parts, results = [], []
    for name, grade, when, lim in (("CRS", p.crs_max_grade, p.crs_date, crs_min_grade),
                                   ("ICANS", p.icans_max_grade, p.icans_date, icans_min_grade)):
        known_from = when or (p.infusion_date + dt.timedelta(days=CRS_ICANS_KNOWN_BY_DAY) if p.infusion_date else None)
        if grade is None or known_from is None:
            results.append(None)
            parts.append(f"{name} grade unknown")
        elif ctx.as_of < known_from:
            results.append(None)
            parts.append(f"{name} grade not yet known on {ctx.as_of} (counted from {known_from})")
        else:
            results.append(grade >= lim)
            parts.append(f"{name} grade {grade}")
    val = True if any(r is True for r in results) else (None if any(r is None for r in results) else False)
    return val, "; ".join(parts)
