"""The CAR call of one tube: CAR+ among CD4, CD8 and other T cells, each against its own negative
reference (see ``gating.positivity``), combined into ``car_status`` (ok | not_detected |
uncertain), ``car_basis`` and the background expected among the CAR+ events counted.

``uncertain`` means the tube cannot say how many T cells carry the CAR: its numbers are shown,
marked, and the risk evaluator treats every CAR-derived factor as unknown.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import poisson

#: Template populations holding the CAR+ cells of each T-cell subset, and the subset's name.
SUBSETS = {"car_cd4": "CD4", "car_cd8": "CD8", "car_other": "DN/DP"}
#: Uncertain subsets holding at least this share of the T cells make the whole call uncertain.
MAX_UNCERTAIN_SHARE = 0.2
ALPHA = 0.05


@dataclass(frozen=True)
class CarCall:
    """The tube's CAR call. ``expected``: background events expected among the CAR+ events of
    the subsets that could be called; ``p_value``: chance of their CAR+ count from background."""

    status: str
    basis: str
    reason: str = ""
    expected: float = math.nan
    p_value: float = math.nan
    expected_cd4: float = 0.0          # background expected among the CAR CD4 / CAR CD8 events
    expected_cd8: float = 0.0


def car_call(calls: dict, t_cells: int | None, min_t_cells: int, user_gates: bool = False) -> CarCall:
    """Combine the subsets' positive calls (``gating.positivity.PositiveCall`` by population)."""
    if t_cells is None:
        return CarCall("uncertain", "", "T cells were not gated")
    if t_cells < min_t_cells:
        return CarCall("uncertain", _basis(calls) or ("user gates" if user_gates else ""),
                       f"only {t_cells} T cells; at least {min_t_cells} are needed to call CAR positivity")
    if user_gates or not calls:
        return CarCall("ok", "user gates", "the strategy's own CAR gate (no reference: the reviewer's call)")
    subs = {p: c for p, c in calls.items() if p in SUBSETS}
    unsure = {p: c for p, c in subs.items() if c.status == "uncertain"}
    share = sum(c.parent_count for c in unsure.values()) / t_cells if t_cells else 1.0
    if unsure and share >= MAX_UNCERTAIN_SHARE:
        why = "; ".join(f"{SUBSETS[p]} T cells: {c.reason}" for p, c in unsure.items())
        return CarCall("uncertain", _basis(subs), why)
    sure = [c for p, c in subs.items() if p not in unsure]
    k = sum(c.positive for c in sure)
    expected = sum(c.expected for c in sure)
    high = sum(c.expected_high for c in sure)
    if not sure or not math.isfinite(high):
        return CarCall("uncertain", _basis(subs), "no T-cell subset has a background estimate")
    p = float(poisson.sf(k - 1, high)) if k > 0 else 1.0
    status = "ok" if p < ALPHA else "not_detected"
    reason = "" if status == "ok" else (
        f"{k} CAR+ events where background alone predicts {expected:.1f} (up to {high:.1f}): not clearly above it")
    e4, e8 = (_expected(subs.get(p)) for p in ("car_cd4", "car_cd8"))
    return CarCall(status, _basis(subs), reason, expected, p, e4, e8)


def _expected(c) -> float:
    return c.expected if c is not None and math.isfinite(c.expected) else 0.0


def _basis(calls: dict) -> str:
    """'control' when every subset used the same kind of reference, else 'CD4: control; CD8: shape'."""
    kinds = {SUBSETS.get(p, p): c.basis for p, c in calls.items() if p in SUBSETS}
    if not kinds:
        return ""
    if len(set(kinds.values())) == 1:
        return next(iter(kinds.values()))
    return "; ".join(f"{k}: {v}" for k, v in kinds.items())
