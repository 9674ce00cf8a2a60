"""A rules factor's performance "in real time": landmark analysis.

At landmark day D, each cohort patient's factor is taken as the evaluator knows it on day D after
infusion (three-valued; nothing dated later is used) and compared with MNT after D. Patients
with MNT onset on or before D are left out and counted (the factor could not have warned of
it); so are MNT patients without an onset day (not known to be after D). Unknown factors are
counted, never folded into the negatives.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pandas as pd

from cytomnt.patients.clinical import ClinicalData
from cytomnt.patients.cohort import CohortError, FactorPerformance, pct_ci, performance


@dataclass
class Landmark:
    """One landmark day's 2x2 table (``performance``: PPV, NPV, ... with exact 95% intervals)."""

    day: int
    factor: str
    excluded_before_landmark: int       # MNT onset on or before the landmark day
    excluded_onset_unknown: int         # MNT without an onset day
    performance: FactorPerformance

    def to_dict(self) -> dict:
        d = self.performance.to_dict()
        d.update(day=self.day, factor=self.factor, excluded_before_landmark=self.excluded_before_landmark,
                 excluded_onset_unknown=self.excluded_onset_unknown)
        return d


def parse_days(text: str) -> list[int]:
    """'7,10,14' -> [7, 10, 14] (whole days after infusion, 0 or more)."""
    try:
        days = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise CohortError(f"--landmark {text}: give whole days after infusion, e.g. 7,10,14") from None
    if not days or any(d < 0 for d in days):
        raise CohortError(f"--landmark {text}: give whole days after infusion (0 or more), e.g. 7,10,14")
    return days


def onset_days(df: pd.DataFrame) -> pd.Series:
    """The cohort's ``mnt_onset_day`` as numbers (NaN: not given)."""
    if "mnt_onset_day" not in df.columns:
        return pd.Series(math.nan, index=df.index)
    return pd.to_numeric(df["mnt_onset_day"].replace("", math.nan), errors="coerce")


def factor_on_day(data: ClinicalData, patient_id: str, factor_id: str, day: int, rules) -> bool | None:
    """The factor as the evaluator knows it on day ``day`` after infusion (None: unknown)."""
    from cytomnt.patients.risk import assess
    p = data.patients[patient_id]
    if p.infusion_date is None:
        return None
    a = assess(data, patient_id, p.infusion_date + dt.timedelta(days=day), rules)
    return a.factor(factor_id).present


def landmarks(df: pd.DataFrame, data: ClinicalData, factor_id: str, days: list[int], rules=None) -> list[Landmark]:
    """The factor's table at each landmark day over the cohort's patients."""
    from cytomnt.patients.risk import Rules
    rules = rules or Rules.default()
    known = {f.id for f in rules.factors + rules.warnings}
    if factor_id not in known:
        from cytomnt.inputs.tables import near_miss
        hint = near_miss(factor_id, known, 0.6)
        raise CohortError(f"--factor {factor_id}: with --landmark, a factor of the rules file"
                          f"{f' (did you mean {hint}?)' if hint else ''}; known: {', '.join(sorted(known))}")
    if "patient_id" not in df.columns:
        raise CohortError("--landmark needs the cohort's patient_id column (matched with --clinical)")
    if (df.mnt == 1).any() and "mnt_onset_day" not in df.columns:
        raise CohortError("--landmark needs mnt_onset_day (days after infusion) for the patients with MNT: without it "
                          "no MNT is known to come after the landmark")
    missing = sorted(set(df.patient_id) - set(data.patients))
    if missing:
        raise CohortError(f"--landmark: patient(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
                          f"of the cohort are not in the clinical file")
    onset = onset_days(df)
    out = []
    for day in days:
        before = (df.mnt == 1) & (onset <= day)
        unknown_onset = (df.mnt == 1) & onset.isna()
        keep = df[~before & ~unknown_onset]
        present = pd.Series([factor_on_day(data, pid, factor_id, day, rules) for pid in keep.patient_id],
                            index=keep.index, dtype=object)
        present[present.isna()] = math.nan
        perf = performance(present, keep.mnt, factor_id, f"{factor_id} on day {day}", f"day {day}")
        out.append(Landmark(day, factor_id, int(before.sum()), int(unknown_onset.sum()), perf))
    return out


def render_landmarks(rows: list[Landmark]) -> str:
    """The table a reader wants: one line per landmark day."""
    head = (f"{'landmark':<9} {'MNT later if present':>21} {'if absent':>12} {'unknown':>8} {'excluded':>9} "
            f"{'PPV % (95% CI)':>16} {'NPV % (95% CI)':>16}")
    lines = [f"{rows[0].factor if rows else ''}: as known on the landmark day, against MNT after it", head,
             "-" * len(head)]
    for r in rows:
        p = r.performance
        lines.append(f"day {r.day:<5} {p.pos_rate:>21} {p.neg_rate:>12} {p.unknown_n:>8} "
                     f"{r.excluded_before_landmark + r.excluded_onset_unknown:>9} {pct_ci(p.ppv, p.ppv_ci, 0):>16} "
                     f"{pct_ci(p.npv, p.npv_ci, 0):>16}")
    lines.append("excluded: MNT onset on or before the landmark day (or MNT without an onset day). "
                 "Intervals: exact (Clopper-Pearson) 95%.")
    return "\n".join(lines) + "\n"
