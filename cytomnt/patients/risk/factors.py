"""Factor kinds: how a factor's value is read from a patient's data as of a date.

A kind is ``fn(ctx, **params) -> (value, detail)``; the rules file compares the value with a
threshold. Built-in kinds are in :mod:`cytomnt.patients.risk.kinds`; more can be added through the entry-point group
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

from cytomnt.patients import kinetics
from cytomnt.patients.clinical import Patient

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

    def day_of(self, date: dt.date) -> int | None:
        """Days after infusion (None without an infusion date)."""
        return (date - self.patient.infusion_date).days if self.patient.infusion_date else None

    def day_date(self, day: int) -> dt.date | None:
        """The date of day ``day`` after infusion (None without an infusion date)."""
        return self.patient.infusion_date + dt.timedelta(days=day) if self.patient.infusion_date else None

    def window_closed(self, last_day: int) -> bool:
        """True once the as-of date is past day ``last_day`` after infusion."""
        end = self.day_date(last_day)
        return end is not None and self.as_of > end

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


@dataclass(frozen=True)
class Verdict:
    """A kind's value together with its own decision, for factors a plain comparison cannot settle
    (a window still open, an interval across the threshold): ``present`` True, False or None."""

    value: object
    present: bool | None

    def __str__(self) -> str:
        return str(self.value)


def compare(value, op: str, threshold) -> bool | None:
    """Whether ``value op threshold``; None when the value is unknown. A :class:`Verdict` decides
    for itself."""
    if isinstance(value, Verdict):
        return value.present
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(OPS[op](value, threshold))
