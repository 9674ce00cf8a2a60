"""Which events lie within a gate's bounds, decided over all events at once from float32
columns; only events within a narrow band of a bound are left for FlowKit's exact arithmetic.

A bound on a transformed, compensated value is mapped back to raw units (the transforms here
are monotone), then each event's float32 compensated value is compared with the bound widened
and narrowed by two bands (``2e-6 x (1 + |bound|)``, far wider than float32's 6e-8 relative
error and the thresholds' own float32 rounding): above both it is surely in, below both surely
out, between them it is *near* and re-checked exactly by the caller.
"""
from __future__ import annotations

import numpy as np


def band(r: float) -> float:
    """Half-width (raw units) of the zone around a raw bound where the exact path is used."""
    return 1e-6 * (1.0 + abs(r))


def _down(x: float) -> np.float32:
    """The largest float32 <= x."""
    f = np.float32(x)
    return f if float(f) <= x else np.nextafter(f, np.float32(-np.inf))


def _up(x: float) -> np.float32:
    """The smallest float32 >= x."""
    f = np.float32(x)
    return f if float(f) >= x else np.nextafter(f, np.float32(np.inf))


def sure_and_near(column: np.ndarray, lo: float | None, hi: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(surely ``lo <= v < hi``, near a bound) for every event of a float32 ``column``, with
    ``lo``/``hi`` in the column's (raw) units; None is no bound."""
    if lo is None and hi is None:
        return np.ones(column.shape, dtype=bool), np.zeros(column.shape, dtype=bool)
    sure = outside = None
    with np.errstate(over="ignore"):
        if lo is not None:
            w = 2 * band(lo)
            sure = column >= _up(lo + w)
            outside = column < _down(lo - w)
        if hi is not None:
            w = 2 * band(hi)
            below, above = column < _down(hi - w), column >= _up(hi + w)
            sure = below if sure is None else np.logical_and(sure, below, out=sure)
            outside = above if outside is None else np.logical_or(outside, above, out=outside)
    near = np.logical_or(sure, outside, out=outside)
    return sure, np.logical_not(near, out=near)
