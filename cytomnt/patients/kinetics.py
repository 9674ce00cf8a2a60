"""ALC kinetics after infusion: peak in a window, value on a given day, rate of rise.

All functions take one patient's ALC series (dates and x10^3/uL values), the infusion date
and an as-of date; values after the as-of date are never used.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class AlcPoint:
    day: int                 # days after infusion (day 0 = infusion)
    date: dt.date
    alc_k_per_ul: float


def series(labs: pd.DataFrame, patient_id: str, infusion: dt.date, as_of: dt.date | None = None) -> list[AlcPoint]:
    """The patient's ALC values known on ``as_of`` (inclusive), as days after infusion."""
    rows = labs[labs.patient_id == patient_id]
    pts = [AlcPoint((d - infusion).days, d, float(v)) for d, v in zip(rows.date, rows.alc_k_per_ul)
           if as_of is None or d <= as_of]
    return sorted(pts, key=lambda p: p.date)


def alc_max(points: list[AlcPoint], window: tuple[int, int] = (0, 30)) -> AlcPoint | None:
    """The highest ALC in days ``window`` (inclusive); the earliest if tied. None without data."""
    inside = [p for p in points if window[0] <= p.day <= window[1]]
    if not inside:
        return None
    return max(inside, key=lambda p: (p.alc_k_per_ul, -p.day))


def alc_on_day(points: list[AlcPoint], day: int, tolerance: int = 1) -> AlcPoint | None:
    """The ALC nearest to ``day`` within ``tolerance`` days (the higher one when two are equally near)."""
    near = [p for p in points if abs(p.day - day) <= tolerance]
    if not near:
        return None
    return min(near, key=lambda p: (abs(p.day - day), -p.alc_k_per_ul))


def rate_of_rise(points: list[AlcPoint], window: tuple[int, int] = (0, 30)) -> float | None:
    """Steepest rise between consecutive values in the window, x10^3/uL per day (None: < 2 values)."""
    inside = [p for p in points if window[0] <= p.day <= window[1]]
    best = None
    for a, b in zip(inside, inside[1:]):
        if b.day > a.day:
            r = (b.alc_k_per_ul - a.alc_k_per_ul) / (b.day - a.day)
            best = r if best is None or r > best else best
    return best
