"""CAR-T cellular kinetics of one patient: the standard pharmacokinetic read-outs of CAR-T studies,
for all CAR T cells, CD4 and CD8, from blood samples (cells/uL) by day after infusion.

- Cmax (cells/uL) and Tmax (day): the highest value and its day (the earliest if tied);
- AUC 0-28 (cells/uL x days): linear-up / log-down trapezoids over the samples on days 0-28,
  linear wherever either end is 0; nothing extrapolated before the first or past the last
  sample (``auc_to_day`` says where it stops when day 28 was not sampled);
- the doubling time (days) of the rising phase: a log-linear least-squares fit of the positive
  values up to Tmax, with at least 3 samples before Tmax (else unknown);
- CAR T cells as % of the ALC at Cmax (the sample's lymphocyte share).

No threshold is attached to any of them: they are shown, not tiered (no published one exists).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

AUC_END_DAY = 28
MIN_RISING_SAMPLES = 3          # samples before Tmax for a doubling time
#: series name -> samples.csv column (cells/uL)
SERIES = {"all": "car_t_per_ul", "cd4": "car_cd4_per_ul", "cd8": "car_cd8_per_ul"}


@dataclass(frozen=True)
class Expansion:
    """One series' kinetics. None: not known from the samples given."""

    cmax_per_ul: float | None
    tmax_day: int | None
    auc_0_28: float | None              # cells/uL x days, over the sampled part of days 0-28
    doubling_time_days: float | None
    n_samples: int                      # samples with a value (any day)
    auc_to_day: int | None = None       # the last sampled day the AUC reaches (28 when sampled)
    auc_from_day: int | None = None     # the first sampled day it starts from (0 when sampled)
    car_pct_of_alc_at_cmax: float | None = None
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def auc_linear_up_log_down(days, values) -> float:
    """Area under ``values`` over ``days`` (sorted): a trapezoid where the value rises or either
    end is 0, the log trapezoid (C1 - C2) x dt / ln(C1 / C2) where it falls."""
    area = 0.0
    for (t1, c1), (t2, c2) in zip(zip(days, values), zip(days[1:], values[1:])):
        dt = float(t2 - t1)
        if c2 >= c1 or c1 <= 0 or c2 <= 0:
            area += (c1 + c2) / 2.0 * dt
        else:
            area += (c1 - c2) * dt / math.log(c1 / c2)
    return area


def doubling_time(days, values) -> float | None:
    """ln 2 / slope of ln(value) on day (least squares); None when the values do not rise."""
    slope = float(np.polyfit(np.asarray(days, dtype=float), np.log(np.asarray(values, dtype=float)), 1)[0])
    return math.log(2.0) / slope if slope > 0 else None


def expansion(days, values, alc_pct=None) -> Expansion:
    """The kinetics of one series (days after infusion, cells/uL; NaN values are unknown and left
    out, never taken as 0). ``alc_pct``: CAR T cells as % of lymphocytes in the same samples."""
    days = np.asarray(days, dtype=float)
    values = np.asarray(values, dtype=float)
    pct = np.asarray(alc_pct, dtype=float) if alc_pct is not None else np.full(len(days), np.nan)
    keep = np.isfinite(values) & np.isfinite(days)
    days, values, pct = days[keep], values[keep], pct[keep]
    order = np.argsort(days, kind="stable")
    days, values, pct = days[order], values[order], pct[order]
    n = len(days)
    if not n:
        return Expansion(None, None, None, None, 0, note="no blood sample with CAR T cells/uL")
    i = int(np.argmax(values))                   # the first of ties: the earliest day
    cmax, tmax = float(values[i]), int(days[i])
    window = (days >= 0) & (days <= AUC_END_DAY)
    notes = []
    auc, to_day, from_day = None, None, None
    if window.sum() >= 2:
        auc = auc_linear_up_log_down(list(days[window]), list(values[window]))
        from_day, to_day = int(days[window][0]), int(days[window][-1])
        unsampled = [str(d) for d, seen in ((0, from_day == 0), (AUC_END_DAY, to_day == AUC_END_DAY)) if not seen]
        if unsampled:
            notes.append(f"AUC over the sampled days {from_day}-{to_day} (day {' and day '.join(unsampled)} "
                         f"not sampled)")
    else:
        notes.append(f"AUC 0-{AUC_END_DAY} needs 2 samples on days 0-{AUC_END_DAY}")
    rising = (days <= tmax) & (values > 0)
    before = int(((days < tmax) & (values > 0)).sum())
    dbl = doubling_time(days[rising], values[rising]) if before >= MIN_RISING_SAMPLES else None
    if before < MIN_RISING_SAMPLES:
        notes.append(f"doubling time needs {MIN_RISING_SAMPLES} positive samples before Tmax, Tmax not counted "
                     f"({before})")
    share = float(pct[i]) if math.isfinite(pct[i]) else None
    return Expansion(cmax, tmax, auc, dbl, n, to_day, from_day, share, "; ".join(notes))


def patient_expansion(blood: pd.DataFrame, infusion) -> dict[str, Expansion]:
    """All, CD4 and CD8 kinetics of one patient's blood samples (``samples.csv`` rows of pb tubes
    known on the as-of date). Rows without a usable CAR call are unknown, not 0."""
    out = {}
    if blood is None or blood.empty or infusion is None:
        return {k: Expansion(None, None, None, None, 0, note="no blood sample" if infusion else
                             "no infusion date") for k in SERIES}
    days = [(d - infusion).days for d in blood.collection_date]
    alc = _column(blood, "alc_k_per_ul")
    for name, col in SERIES.items():
        vals = _column(blood, col)
        share = np.where(alc > 0, 100.0 * vals / (alc * 1000.0), np.nan)   # % of the ALC
        if name == "all":
            share = np.where(np.isfinite(share), share, _column(blood, "car_pct_of_lymphocytes"))
        out[name] = expansion(days, vals, share)
    return out


def _column(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
