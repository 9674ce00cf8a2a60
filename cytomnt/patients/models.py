"""Models for small cohorts: logistic regression of MNT with Firth's penalised likelihood.

MNT cohorts are small and events rare (22 cases among 750 patients in the largest), where
maximum likelihood is biased and fails under separation; Firth's penalty (Jeffreys prior) gives
finite, less biased estimates. The fit, profile penalised-likelihood 95% intervals and penalised
likelihood-ratio p-values are firthmodels' (checked against logistf's published results by its
authors, and here against a closed form and an independent Newton solution). Complete cases
only; yes/no columns are 1/0, other text columns are dummy-coded against their most frequent level.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from cytomnt.patients.cohort import CohortError

_YES = {"1", "yes", "y", "true", "present"}
_NO = {"0", "no", "n", "false", "absent"}


@dataclass
class Term:
    name: str
    coef: float                 # log odds ratio per unit (or vs the reference level)
    ci_low: float               # profile penalised likelihood 95% interval
    ci_high: float
    p: float                    # penalised likelihood-ratio test

    @property
    def odds_ratio(self) -> tuple[float, float, float]:
        """exp(coef) and its interval (per unit of the predictor)."""
        return math.exp(self.coef), math.exp(self.ci_low), math.exp(self.ci_high)


@dataclass
class ModelResult:
    method: str
    n: int                      # patients in the fit (complete cases)
    events: int                 # MNT among them
    terms: list[Term]
    excluded_missing: int = 0   # patients left out for an empty predictor
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        for t, term in zip(d["terms"], self.terms):
            if term.name != "intercept":
                t["odds_ratio"], t["or_ci_low"], t["or_ci_high"] = term.odds_ratio
            for k in ("coef", "ci_low", "ci_high", "p", "odds_ratio", "or_ci_low", "or_ci_high"):
                if k in t and not math.isfinite(t[k]):
                    t[k] = None
        return d


def design(df: pd.DataFrame, columns: list[str], where: str = "cohort") -> tuple[pd.DataFrame, int]:
    """The predictors as numbers (complete cases) and how many rows an empty cell left out."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        from cytomnt.inputs.tables import near_miss
        hints = [f"{c} (did you mean {near_miss(c, df.columns, 0.6)}?)" if near_miss(c, df.columns, 0.6) else c
                 for c in missing]
        raise CohortError(f"{where}: --model column(s) {', '.join(hints)} not found; columns are "
                          f"{', '.join(df.columns)}")
    parts = []
    for col in columns:
        raw = df[col].astype(str).str.strip().replace({"nan": "", "NaN": "", "None": "", "unknown": ""})
        filled = raw[raw != ""]
        num = pd.to_numeric(filled, errors="coerce")
        if num.notna().all():
            parts.append(pd.to_numeric(raw.replace("", np.nan), errors="coerce").rename(col))
        elif filled.str.lower().isin(_YES | _NO).all():
            parts.append(raw.str.lower().map(lambda s: 1.0 if s in _YES else 0.0 if s in _NO else np.nan).rename(col))
        else:
            ref = filled.value_counts().index[0]
            for level in sorted(set(filled) - {ref}):
                parts.append(raw.map(lambda s, lv=level: np.nan if s == "" else float(s == lv))
                             .rename(f"{col}[{level} vs {ref}]"))
    x = pd.concat(parts, axis=1)
    complete = x.notna().all(axis=1)
    return x[complete], int((~complete).sum())


def firth_logistic(df: pd.DataFrame, columns: list[str], where: str = "cohort") -> ModelResult:
    """MNT ~ columns by Firth's penalised likelihood; intervals by profile penalised likelihood."""
    from firthmodels import FirthLogisticRegression
    x, dropped = design(df, columns, where)
    y = df.loc[x.index, "mnt"].astype(int).to_numpy()
    notes = []
    if len(x) <= x.shape[1] + 1:
        raise CohortError(f"{where}: {len(x)} complete patients cannot fit {x.shape[1]} predictor(s) and an intercept")
    if y.sum() == 0 or y.sum() == len(y):
        raise CohortError(f"{where}: every patient in the fit has the same outcome (mnt = {y[0]}): nothing to model")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = FirthLogisticRegression(max_iter=100, gtol=1e-8, xtol=1e-8).fit(x.to_numpy(dtype=float), y)
        m.lrt()
        ci = m.conf_int(alpha=0.05, method="pl", max_iter=100, tol=1e-8)
    notes += sorted({str(w.message) for w in caught})
    if not m.converged_:
        notes.append("the fit did not converge: read the estimates with care")
    coefs = list(m.coef_) + [float(m.intercept_)]
    names = list(x.columns) + ["intercept"]
    p = list(m.lrt_pvalues_)
    terms = [Term(n, float(c), float(lo), float(hi), float(pv)) for n, c, (lo, hi), pv in zip(names, coefs, ci, p)]
    return ModelResult("firth", len(x), int(y.sum()), terms, dropped, notes)


def render_model(r: ModelResult) -> str:
    lines = [f"Firth logistic regression of MNT: {r.n} patients, {r.events} with MNT"
             + (f" ({r.excluded_missing} left out for an empty predictor)" if r.excluded_missing else ""),
             f"  {'term':<28} {'coef (95% CI)':>30} {'odds ratio (95% CI)':>30} {'p':>8}"]
    for t in r.terms:
        coef = f"{t.coef:.4g} ({t.ci_low:.4g} to {t.ci_high:.4g})"
        odds = "" if t.name == "intercept" else "{:.4g} ({:.4g} to {:.4g})".format(*t.odds_ratio)
        lines.append(f"  {t.name:<28} {coef:>30} {odds:>30} {t.p:>8.3g}")
    lines.append("  coef: log odds ratio per unit of the predictor; 95% CI: profile penalised likelihood; "
                 "p: penalised likelihood-ratio test.")
    lines += [f"  note: {n}" for n in r.notes]
    return "\n".join(lines) + "\n"
