"""Cumulative incidence of MNT over days after infusion, by group: 1 - Kaplan-Meier (lifelines),
patients without MNT censored at their last day of follow-up (``followup_day``). Death and other
competing events are not modelled: a cohort without them is what this estimate is right for.
Needs ``pip install 'cytomnt[survival]'``."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cytomnt.patients.cohort import CohortError, pct_ci
from cytomnt.patients.landmark import onset_days

REPORT_DAYS = (7, 14, 21, 28, 60, 90, 180, 365)


@dataclass
class IncidenceCurve:
    group: str
    n: int
    events: int
    days: list[float]               # event times
    incidence: list[float]          # cumulative incidence at each (0-1)
    ci_low: list[float]
    ci_high: list[float]
    last_day: float = math.inf      # the group's longest follow-up: nothing is estimated beyond it
    excluded_no_day: int = 0        # patients left out: MNT without an onset day, or no follow-up day
    at_risk: dict = None            # report day -> patients still followed and free of MNT

    def at(self, day: float) -> tuple[float, float, float]:
        """(incidence, low, high) on ``day`` (step function); NaN beyond the last follow-up."""
        if day > self.last_day:
            return math.nan, math.nan, math.nan
        k = int(np.searchsorted(self.days, day, side="right")) - 1
        if k < 0:
            return 0.0, 0.0, 0.0
        return self.incidence[k], self.ci_low[k], self.ci_high[k]


def durations(df: pd.DataFrame, where: str = "cohort") -> tuple[pd.Series, pd.Series]:
    """(days to MNT or to the end of follow-up, MNT observed) for every patient with both known."""
    onset = onset_days(df)
    if "followup_day" not in df.columns or ((df.mnt == 1).any() and "mnt_onset_day" not in df.columns):
        raise CohortError(f"{where}: cumulative incidence needs followup_day (last day of follow-up after infusion) "
                          f"for patients without MNT, and mnt_onset_day for those with it")
    follow = pd.to_numeric(df["followup_day"].replace("", np.nan), errors="coerce")
    t = pd.Series(np.where(df.mnt == 1, onset, follow), index=df.index, dtype=float)
    return t, df.mnt.astype(int)


def incidence_by(df: pd.DataFrame, by: str | None = None, where: str = "cohort") -> list[IncidenceCurve]:
    try:
        from lifelines import KaplanMeierFitter
    except ImportError as exc:
        raise CohortError("cumulative incidence needs lifelines: pip install 'cytomnt[survival]'") from exc
    t, e = durations(df, where)
    known = t.notna() & (t >= 0)
    groups = [] if by is None else [(str(g), idx) for g, idx in df.groupby(by, sort=True).groups.items()]
    out = []
    for name, idx in groups + [("all", df.index)]:
        unknown = sum(not known[i] for i in idx)
        idx = [i for i in idx if known[i]]
        if not idx:
            continue
        k = KaplanMeierFitter().fit(t[idx], e[idx])
        sf = k.survival_function_.iloc[:, 0]
        ci = k.confidence_interval_survival_function_
        out.append(IncidenceCurve(name, len(idx), int(e[idx].sum()), [float(d) for d in sf.index],
                                  [1.0 - float(v) for v in sf], [1.0 - float(v) for v in ci.iloc[:, 1]],
                                  [1.0 - float(v) for v in ci.iloc[:, 0]], float(t[idx].max()), unknown,
                                  {d: int((t[idx] >= d).sum()) for d in REPORT_DAYS}))
    return out


def render_incidence(curves: list[IncidenceCurve]) -> str:
    lines = ["Cumulative incidence of MNT, % (95% CI), by day after infusion (1 - Kaplan-Meier):",
             f"  {'group':<16} {'n':>4} {'MNT':>4} " + " ".join(f"{'d' + str(d):>15}" for d in REPORT_DAYS)]
    for c in curves:
        cells = []
        for d in REPORT_DAYS:
            v, lo, hi = c.at(d)
            cells.append(pct_ci(v, (lo, hi), 0))
        lines.append(f"  {c.group:<16} {c.n:>4} {c.events:>4} " + " ".join(f"{s:>15}" for s in cells))
        lines.append(f"  {'  at risk':<26} " + " ".join(f"{c.at_risk[d]:>15}" for d in REPORT_DAYS))
    left = {c.group: c.excluded_no_day for c in curves if c.excluded_no_day}
    if left.get("all"):
        lines.append(f"  left out: {left['all']} patient(s) without mnt_onset_day (MNT) or followup_day (no MNT)")
    lines.append("  '-': beyond the group's last day of follow-up (nothing is estimated there).")
    return "\n".join(lines) + "\n"


def incidence_figure(curves: list[IncidenceCurve], path, title: str = "Cumulative incidence of MNT"):
    """A step plot of each group's curve with its 95% band (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gating.io.files import atomic_write
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for c in curves if len(curves) == 1 else [c for c in curves if c.group != "all"]:
        x = [0.0] + c.days
        line = ax.step(x, [0.0] + [100 * v for v in c.incidence], where="post", label=f"{c.group} (n={c.n}, MNT {c.events})")
        ax.fill_between(x, [0.0] + [100 * v for v in c.ci_low], [0.0] + [100 * v for v in c.ci_high], step="post",
                        alpha=0.15, color=line[0].get_color())
    ax.set_xlabel("days after infusion")
    ax.set_ylabel("cumulative incidence of MNT (%)")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return atomic_write(path, buf.getvalue())
