"""The CAR call of one tube: CAR+ T cells net of background, per subset (CD4, CD8, other T
cells), each counted against its own negative reference at several cut levels
(:mod:`gating.auto.netcount`), combined into one estimate with 95% intervals that carry sampling,
the reference's size and where positives begin, and a status decided from the interval:
``ok`` (the whole interval of CAR T cells above zero), ``not_detected``, or ``uncertain`` (no
usable reference, or too few T cells: then no number is given).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gating.auto.netcount import LOWER_LEVELS, interval

#: Template populations holding the CAR+ cells of each T-cell subset, and the subset's name.
SUBSETS = {"car_cd4": "CD4", "car_cd8": "CD8", "car_other": "DN/DP"}
#: Uncertain subsets holding at least this share of the T cells make the whole call uncertain.
MAX_UNCERTAIN_SHARE = 0.2
#: Seed of the resampled subset sizes (fixed: the same tube gives the same interval on every machine).
SIZE_SEED = 20_261_206


@dataclass(frozen=True)
class CarEstimate:
    """CAR+ T cells net of background (point at the middle cut level) and 95% intervals.
    ``share_cd4_ci``: the CD4 share of CAR CD4+CD8 T cells; ``pct_ci``: % of T cells."""

    total: float
    cd4: float
    cd8: float
    total_ci: tuple[float, float]
    pct_ci: tuple[float, float]
    share_cd4_ci: tuple[float, float]
    cd4_ci: tuple[float, float] = (math.nan, math.nan)     # CAR CD4+ T cells, events
    cd8_ci: tuple[float, float] = (math.nan, math.nan)     # CAR CD8+ T cells, events


@dataclass(frozen=True)
class CarCall:
    """The tube's CAR call. ``expected``: background events expected inside the CAR gates at the
    middle cut level; ``estimate``: the net estimate (None for user gates and uncertain calls)."""

    status: str
    basis: str
    reason: str = ""
    expected: float = math.nan
    estimate: CarEstimate | None = None


def car_call(calls: dict, t_cells: int | None, min_t_cells: int, user_gates: bool = False,
             confidence: float = 0.95) -> CarCall:
    """Combine the subsets' positive calls (``gating.auto.positivity.PositiveCall`` by population)."""
    if t_cells is None:
        return CarCall("uncertain", "", "T cells were not gated")
    if t_cells < min_t_cells:
        return CarCall("uncertain", _basis(calls) or ("user gates" if user_gates else ""),
                       f"only {t_cells} T cells; at least {min_t_cells} are needed to call CAR positivity")
    if user_gates or not calls:
        return CarCall("ok", "user gates", "the strategy's own CAR gate (no reference: the reviewer's call)")
    subs = {p: c for p, c in calls.items() if p in SUBSETS}
    unsure = {p: c for p, c in subs.items() if c.status == "uncertain" or c.net is None}
    share = sum(c.parent_count for c in unsure.values()) / t_cells if t_cells else 1.0
    sure = {p: c for p, c in subs.items() if p not in unsure}
    if (unsure and share >= MAX_UNCERTAIN_SHARE) or not sure:
        why = "; ".join(f"{SUBSETS[p]} T cells: {c.reason}" for p, c in unsure.items()) or \
            "no T-cell subset has a negative reference"
        return CarCall("uncertain", _basis(subs), why)
    est = _estimate(sure, unsure, t_cells, confidence)
    expected = float(sum(c.net.point_background for c in sure.values()))
    status = "ok" if est.total_ci[0] > 0 else "not_detected"
    reason = "" if status == "ok" else (
        f"{est.total:.0f} CAR+ T cells above background (95% CI {est.total_ci[0]:.0f} to {est.total_ci[1]:.0f}): "
        f"not clearly above zero")
    return CarCall(status, _basis(subs), reason, expected, est)


def _rows(calls: dict, t_cells: int) -> dict[str, np.ndarray]:
    """Each subset's replicate rows, aligned (:meth:`gating.auto.netcount.NetCount.rows`), each replicate
    scaled by how many T cells a resample of the tube puts in that subset (multinomial over the
    subsets), so the intervals also carry the sampling of the CD4:CD8 split itself."""
    widened = any(c.net.extra is not None for c in calls.values())
    rows = {p: c.net.rows(widened, _main_levels(calls)) for p, c in calls.items()}
    sizes = np.array([c.parent_count for c in calls.values()], dtype=float)
    if t_cells <= 0 or sizes.sum() <= 0:
        return rows
    replicates = next(iter(rows.values())).shape[1]
    rng = np.random.default_rng(SIZE_SEED)
    p = np.r_[sizes, max(t_cells - sizes.sum(), 0.0)] / max(t_cells, sizes.sum())
    drawn = rng.multinomial(int(max(t_cells, sizes.sum())), p, size=replicates)[:, :len(sizes)]
    scale = np.where(sizes > 0, drawn / np.maximum(sizes, 1.0), 1.0)
    return {p: r * scale[:, i][None, :] for i, (p, r) in enumerate(rows.items())}


def _main_levels(calls: dict) -> int:
    return max(len(c.net.levels) - c.net.first for c in calls.values())


def _estimate(sure: dict, unsure: dict, t_cells: int, confidence: float) -> CarEstimate:
    """Sum the subsets level by level; a small uncertain subset adds 0 to all of its events."""
    rows = _rows(sure, t_cells)
    point = {p: c.net.point for p, c in sure.items()}
    total_rows = sum(rows.values())
    extra_hi = float(sum(c.parent_count for c in unsure.values()))
    extra_pt = float(sum(c.positive for c in unsure.values()))
    lo, hi = interval(total_rows, confidence)
    total = max(sum(point.values()) + extra_pt, 0.0)
    total_ci = (max(min(lo, total), 0.0), max(hi + extra_hi, total))
    pct_ci = tuple(100.0 * v / t_cells for v in total_ci)
    # the ratio is formed at each cut level of references of one kind; positives hidden below the
    # cuts (a smear) widen the counts' intervals, and the ratio's too when CD4 and CD8 were counted
    # against different kinds of reference (their cut levels are then not alike)
    main = _main_levels(sure)
    kinds = {c.basis for p, c in sure.items() if p in ("car_cd4", "car_cd8")}
    bounds = range(main + 1, main + 2 + len(LOWER_LEVELS))    # hidden positives, lower levels
    keep = [i for i in range(total_rows.shape[0]) if i not in bounds or len(kinds) > 1]
    zero = np.zeros_like(total_rows[keep])
    c4 = np.clip(rows["car_cd4"][keep] if "car_cd4" in rows else zero, 0, None)
    c8 = np.clip(rows["car_cd8"][keep] if "car_cd8" in rows else zero, 0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = c4 / (c4 + c8)
    a = (1.0 - confidence) / 2.0
    s_lo = float(np.quantile(np.nanmin(np.where(np.isnan(s), 0.0, s), axis=0), a))
    s_hi = float(np.quantile(np.nanmax(np.where(np.isnan(s), 1.0, s), axis=0), 1.0 - a))
    cd4, cd8 = max(point.get("car_cd4", 0.0), 0.0), max(point.get("car_cd8", 0.0), 0.0)
    return CarEstimate(total, cd4, cd8, total_ci, pct_ci, (s_lo, s_hi),
                       _subset_ci("car_cd4", cd4, rows, unsure, confidence),
                       _subset_ci("car_cd8", cd8, rows, unsure, confidence))


def _subset_ci(pop: str, point: float, rows: dict, unsure: dict, confidence: float) -> tuple[float, float]:
    """One subset's interval over all cut levels, as the total's; a small uncertain subset: 0 to all its events."""
    if pop in unsure:
        return 0.0, float(unsure[pop].parent_count)
    if pop not in rows:
        return math.nan, math.nan
    lo, hi = interval(rows[pop], confidence)
    return max(min(lo, point), 0.0), max(hi, point)


def _basis(calls: dict) -> str:
    """'control' when every subset used the same kind of reference, else 'CD4: control; CD8: shape'."""
    kinds = {SUBSETS.get(p, p): c.basis for p, c in calls.items() if p in SUBSETS}
    if not kinds:
        return ""
    if len(set(kinds.values())) == 1:
        return next(iter(kinds.values()))
    return "; ".join(f"{k}: {v}" for k, v in kinds.items())
