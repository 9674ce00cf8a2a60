"""Cohort validation of a risk factor: Table-1-style counts, PPV/NPV, sensitivity and
specificity with exact (Clopper-Pearson) 95% intervals, Fisher's exact test, lead time.

COHORT.csv: one row per patient; factor columns (numbers or 0/1/yes/no); ``mnt`` (0/1);
optional ``mnt_onset_day`` (days after infusion) and grouping columns (e.g. ``study``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact

from cytomnt.inputs.tables import read_table
from cytomnt.sample.metrics import exact_ci


class CohortError(ValueError):
    """The cohort table is malformed; the message names the file, row and column."""


@dataclass
class FactorPerformance:
    """A factor's 2x2 table in one group and what follows from it."""

    factor: str
    rule: str
    group: str
    pos_n: int
    pos_mnt: int
    neg_n: int
    neg_mnt: int
    unknown_n: int
    ppv: float
    ppv_ci: tuple[float, float]
    npv: float
    npv_ci: tuple[float, float]
    sensitivity: float
    sensitivity_ci: tuple[float, float]
    specificity: float
    specificity_ci: tuple[float, float]
    fisher_p: float
    odds_ratio: float

    @property
    def pos_rate(self) -> str:
        """The MNT rate among factor-positive patients, as '29 (19/65)'."""
        return rate(self.pos_mnt, self.pos_n)

    @property
    def neg_rate(self) -> str:
        return rate(self.neg_mnt, self.neg_n)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["pos_rate"], d["neg_rate"] = self.pos_rate, self.neg_rate
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def rate(k: int, n: int) -> str:
    """'33 (4/12)': percent rounded to a whole number, then the counts."""
    return f"{round(100 * k / n):.0f} ({k}/{n})" if n else f"- ({k}/{n})"


def _ratio(k, n):
    return k / n if n else math.nan


def performance(present: pd.Series, mnt: pd.Series, factor: str, rule: str, group: str = "all") -> FactorPerformance:
    """2x2 statistics; ``present`` is True/False/NaN (unknown rows are counted, not used)."""
    known = present.notna()
    pres = present[known].astype(bool)
    out = mnt[known].astype(int)
    tp = int((pres & (out == 1)).sum())
    fp = int((pres & (out == 0)).sum())
    fn = int((~pres & (out == 1)).sum())
    tn = int((~pres & (out == 0)).sum())
    table = [[tp, fp], [fn, tn]]
    odds, p = fisher_exact(table) if (tp + fp) and (fn + tn) else (math.nan, math.nan)
    return FactorPerformance(
        factor, rule, group, tp + fp, tp, fn + tn, fn, int((~known).sum()),
        _ratio(tp, tp + fp), exact_ci(tp, tp + fp), _ratio(tn, tn + fn), exact_ci(tn, tn + fn),
        _ratio(tp, tp + fn), exact_ci(tp, tp + fn), _ratio(tn, tn + fp), exact_ci(tn, tn + fp),
        float(p), float(odds))


_TRUE = {"1", "yes", "y", "true", "present"}
_FALSE = {"0", "no", "n", "false", "absent"}


def _truth(values: pd.Series, where: str, column: str) -> pd.Series:
    out = []
    for i, v in values.items():
        s = str(v).strip().lower()
        if s in ("", "nan", "na", "unknown"):
            out.append(np.nan)
        elif s in _TRUE:
            out.append(True)
        elif s in _FALSE:
            out.append(False)
        else:
            raise CohortError(f"{where}, row {i + 2}, column {column}: '{v}' is not 0/1 or yes/no"
                              f"{'' if column == 'mnt' else '; give --threshold for a numeric column'}")
    return pd.Series(out, index=values.index, dtype=object)


def factor_present(df: pd.DataFrame, column: str, threshold: float | None, op: str, where: str) -> pd.Series:
    """Per patient: factor present (True/False) or unknown (NaN)."""
    if column not in df.columns:
        raise CohortError(f"{where}: no column '{column}'; columns are {', '.join(df.columns)}")
    if threshold is None:
        return _truth(df[column], where, column)
    vals = pd.to_numeric(df[column].replace("", np.nan), errors="coerce")
    bad = df[column].astype(str).str.strip().ne("") & df[column].notna() & vals.isna()
    if bad.any():
        i = bad.idxmax()
        raise CohortError(f"{where}, row {i + 2}, column {column}: '{df.loc[i, column]}' is not a number")
    ops = {">": vals > threshold, ">=": vals >= threshold, "<": vals < threshold, "<=": vals <= threshold}
    if op not in ops:
        raise CohortError(f"operator '{op}' is not one of {', '.join(ops)}")
    res = ops[op].astype(object)
    res[vals.isna()] = np.nan
    return res


def read_cohort(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    df = read_table(path, ("mnt",), "cohort", CohortError)
    out = _truth(df["mnt"], f"cohort {path}", "mnt")
    if out.isna().any():
        i = out.isna().idxmax()
        raise CohortError(f"cohort {path}, row {i + 2}, column mnt: the outcome must be 0 or 1, not '{df.loc[i, 'mnt']}'")
    df["mnt"] = out.astype(int)
    if "patient_id" in df.columns and df.patient_id.duplicated().any():
        dup = df.patient_id[df.patient_id.duplicated()].iloc[0]
        raise CohortError(f"cohort {path}: patient '{dup}' has more than one row")
    return df


def check_groups(df: pd.DataFrame, bys, where: str = "cohort") -> None:
    """Every ``--by`` column is in the cohort (a near miss is named)."""
    from cytomnt.inputs.tables import near_miss
    for b in bys:
        if b not in df.columns:
            hint = near_miss(b, df.columns, 0.6)
            raise CohortError(f"{where}: no column '{b}' to group by{f' (did you mean {hint}?)' if hint else ''}; "
                              f"columns are {', '.join(df.columns)}")


def validate(df: pd.DataFrame, factors: list[tuple[str, float | None]], by=None, op: str = ">",
             where: str = "cohort") -> list[FactorPerformance]:
    """Performance of each (column, threshold) per group of each ``by`` column (one name or a
    list; a numeric column is split at its median) and pooled ('all')."""
    from cytomnt.patients.groups import split_numeric
    bys = [by] if isinstance(by, str) else list(by or [])
    check_groups(df, bys, where)
    out = []
    for column, threshold in factors:
        present = factor_present(df, column, threshold, op, where)
        rule = f"{column} {op} {threshold:g}" if threshold is not None else f"{column} present"
        for b in bys:
            grouped = split_numeric(df, b)
            for g, idx in grouped.groupby(b, sort=False).groups.items():
                out.append(performance(present[idx], df.mnt[idx], column, rule,
                                       str(g) if len(bys) == 1 else f"{b}={g}"))
        out.append(performance(present, df.mnt, column, rule, "all"))
    return out


def pct_ci(v: float, ci, digits: int = 1) -> str:
    """A proportion and its interval as percentages, '23.0 (17.1-29.4)'; '-' when unknown."""
    if not math.isfinite(v):
        return "-"
    return f"{100 * v:.{digits}f} ({100 * ci[0]:.{digits}f}-{100 * ci[1]:.{digits}f})"


def render(results: list[FactorPerformance]) -> str:
    """A Table-1-style text table."""
    gw = max([12] + [len(r.group) for r in results])
    head = (f"{'factor':<24} {'group':<{gw}} {'MNT if present':>16} {'MNT if absent':>15} {'PPV % (95% CI)':>18} "
            f"{'NPV % (95% CI)':>18} {'sens %':>18} {'spec %':>18} {'Fisher p':>9}")
    lines = [head, "-" * len(head)]
    for r in results:
        p = f"{r.fisher_p:.3g}" if math.isfinite(r.fisher_p) else "-"
        lines.append(f"{r.rule:<24} {r.group:<{gw}} {r.pos_rate:>16} {r.neg_rate:>15} {pct_ci(r.ppv, r.ppv_ci):>18} "
                     f"{pct_ci(r.npv, r.npv_ci):>18} {pct_ci(r.sensitivity, r.sensitivity_ci):>18} "
                     f"{pct_ci(r.specificity, r.specificity_ci):>18} {p:>9}" + (f"  ({r.unknown_n} unknown)" if r.unknown_n else ""))
    lines.append("MNT if present/absent: % (events/patients). Intervals: exact (Clopper-Pearson) 95%.")
    return "\n".join(lines) + "\n"


# -- lead time ---------------------------------------------------------------------------------

@dataclass
class LeadTime:
    patient_id: str
    onset_day: int
    first_alert_day: int | None
    lead_days: int | None


def lead_times(df: pd.DataFrame, data, factor_id: str, rules=None) -> list[LeadTime]:
    """Days from the first date a rules factor (or 'tier_high'/'tier_elevated') fired to MNT onset,
    for cohort patients with ``mnt`` = 1 and an onset day, using their replayed timelines."""
    from cytomnt.patients.risk import timeline
    if "mnt_onset_day" not in df.columns or "patient_id" not in df.columns:
        raise CohortError("--lead-time needs columns patient_id and mnt_onset_day in the cohort")
    out = []
    for r in df[df.mnt == 1].itertuples():
        if str(r.mnt_onset_day).strip() == "" or r.patient_id not in data.patients:
            continue
        onset = int(float(r.mnt_onset_day))
        p = data.patients[r.patient_id]
        t = timeline(data, r.patient_id, rules)
        fired = t.first_fired().get(factor_id)
        if fired is None and factor_id not in t.first_fired():
            raise CohortError(f"--lead-time: '{factor_id}' is not a factor of the rules (or tier_high/tier_elevated)")
        day = (fired - p.infusion_date).days if fired and p.infusion_date else None
        if day is not None and day > onset:
            day = None             # an alert after onset is no warning
        out.append(LeadTime(r.patient_id, onset, day, onset - day if day is not None else None))
    return out


def render_lead(leads: list[LeadTime], factor_id: str) -> str:
    lines = [f"Lead time from first '{factor_id}' alert to MNT onset:"]
    for lt in leads:
        a = f"day {lt.first_alert_day}" if lt.first_alert_day is not None else "no alert before onset"
        lines.append(f"  {lt.patient_id}: onset day {lt.onset_day}, {a}" +
                     (f", lead {lt.lead_days} days" if lt.lead_days is not None else ""))
    vals = [lt.lead_days for lt in leads if lt.lead_days is not None]
    if vals:
        q1, med, q3 = np.percentile(vals, [25, 50, 75])
        lines.append(f"  alerted before onset: {len(vals)} of {len(leads)}; median lead {med:.0f} days (IQR {q1:.0f}-{q3:.0f})")
    else:
        lines.append(f"  alerted before onset: 0 of {len(leads)}")
    return "\n".join(lines) + "\n"


# -- the literature's ALC table as a patient-level cohort ----------------------------------------

#: Table 1 of DESIGN.md: (study, ALC measure, patients above / MNT among them, below / MNT).
LITERATURE_ALC = (("Chai 2025", "max", 12, 4, 9, 0), ("Lim 2025", "max", 65, 19, 104, 3),
                  ("Hosoya 2025", "max", 104, 15, 152, 6), ("Jeon 2025", "day10", 20, 8, 62, 6))


def literature_cohort(seed: int = 0) -> pd.DataFrame:
    """One row per patient reproducing the published counts; ALC values are drawn above or at/below 3.0."""
    rng = np.random.default_rng(seed)
    rows = []
    for study, measure, pos_n, pos_mnt, neg_n, neg_mnt in LITERATURE_ALC:
        for above, n, events in ((True, pos_n, pos_mnt), (False, neg_n, neg_mnt)):
            for k in range(n):
                alc = rng.uniform(3.05, 12.0) if above else rng.uniform(0.1, 3.0)
                rows.append({"patient_id": f"{study.split()[0]}-{'H' if above else 'L'}{k + 1:03d}", "study": study,
                             "alc_measure": measure, "alc_k_per_ul": round(alc, 2), "mnt": int(k < events)})
    return pd.DataFrame(rows)
