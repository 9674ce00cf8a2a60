"""The built-in factor kinds: how a factor is read from a patient's data as of a date.

Each returns ``(value, detail)`` or ``(value, detail, settle)``; ``settle`` says what data would
decide a factor that is still unknown. A factor is absent only when the data settle it as of
the date: a window still open, an interval across the threshold, an undated event or an
uncertain flow call leave it unknown, never absent.
"""
from __future__ import annotations

import math

import pandas as pd
from scipy.stats.contingency import odds_ratio

from cytomnt.patients import kinetics
from cytomnt.patients.risk.factors import FactorContext, Verdict, compare, kind

#: CRS and ICANS occur in the first weeks (median onset day 7-8 after cilta-cel, nearly all by
#: day 14 [Lin, IMS 2025]); a maximum grade below a threshold is settled only after this day.
CRS_ICANS_WINDOW_DAYS = 30


def _when(ctx: FactorContext, day: int) -> str:
    d = ctx.day_date(day)
    return f"day {day} ({d})" if d else f"day {day}"


# -- ALC ------------------------------------------------------------------------------------------

@kind("alc_max")
def alc_max(ctx: FactorContext, window_days=(0, 30), threshold: float | None = None, op: str = ">",
            needs_values_in=((7, 14),)):
    """Highest ALC in the window so far. Above the threshold: present at once; not above: absent
    only once the window has closed *and* ALC was measured in each span of ``needs_values_in``
    (the expansion peak, days 7-14 and 14-21 after infusion): a peak nobody measured is unknown."""
    lo, hi = window_days
    p = kinetics.alc_max(ctx.alc, (lo, hi))
    closed = ctx.window_closed(hi)
    if p is None:
        return None, f"no ALC in days {lo}-{hi} by {ctx.as_of}", (
            f"ALC values in days {lo}-{hi}" if not closed else "cannot be settled: no ALC in the window")
    detail = f"peak {p.alc_k_per_ul:g} on day {p.day} ({p.date})"
    above = compare(p.alc_k_per_ul, op, threshold) if threshold is not None else None
    if above or threshold is None:
        return Verdict(p.alc_k_per_ul, above if threshold is not None else None), detail
    gaps = [f"{a}-{b}" for a, b in needs_values_in if not any(a <= q.day <= b for q in ctx.alc)]
    if closed and not gaps:
        return Verdict(p.alc_k_per_ul, False), detail
    if closed:
        return Verdict(p.alc_k_per_ul, None), f"{detail}; no ALC on days {', '.join(gaps)} (the expansion peak)", \
            "cannot be settled from these data: no ALC was measured when the peak comes"
    return Verdict(p.alc_k_per_ul, None), f"{detail}; the window is open through {_when(ctx, hi)}", \
        f"ALC through {_when(ctx, hi)} (settled from day {hi + 1}), or a value {op} {threshold:g}"


@kind("alc_on_day")
def alc_on_day(ctx: FactorContext, day: int = 10, tolerance_days: int = 1):
    """ALC on ``day``; without one, the values within ``tolerance_days`` (the higher when two are
    equally near). Final once a value on the day itself is known or the tolerance has passed."""
    p = kinetics.alc_on_day(ctx.alc, day, tolerance_days)
    closed = ctx.window_closed(day + tolerance_days)
    if p is None:
        return None, f"no ALC within day {day} +/- {tolerance_days} by {ctx.as_of}", (
            "cannot be settled: no ALC was measured then" if closed else
            f"an ALC on days {day - tolerance_days}-{day + tolerance_days}")
    detail = f"{p.alc_k_per_ul:g} on day {p.day} ({p.date})"
    if p.day == day or closed:
        return p.alc_k_per_ul, detail
    return Verdict(p.alc_k_per_ul, None), f"{detail}; a value nearer day {day} may still come", \
        f"an ALC on day {day}, or the as-of date past day {day + tolerance_days}"


# -- flow ------------------------------------------------------------------------------------------

#: What settles a factor left unknown by an uncertain CAR call (the call's reason says how to get one:
#: a control tube, a larger tube, an FMO instead of an unstained tube...).
CERTAIN_CALL = "a sample with a certain CAR call (its car_status_reason says what would give one)"


def car_samples(ctx: FactorContext, sample_type: str, window_days=None) -> tuple[pd.DataFrame, str]:
    """Usable samples (in the window, if given) whose CAR call is trustworthy (``car_status`` ok
    or not_detected), and a note naming those whose call is uncertain (their CAR numbers are
    unknown, not zero)."""
    f = ctx.flow_samples(sample_type)
    if window_days is not None and len(f) and ctx.patient.infusion_date:
        days = [ctx.day_of(d) for d in f.collection_date]
        f = f[[window_days[0] <= d <= window_days[1] for d in days]]
    if f.empty or "car_status" not in f.columns:
        return f, ""
    status = f.car_status.fillna("ok").astype(str)
    unsure = f[status == "uncertain"]
    note = ""
    if len(unsure):
        why = "; ".join(f"{r.sample_id}: {_reason(getattr(r, 'car_status_reason', ''))}" for r in unsure.itertuples())
        note = f"CAR call uncertain in {len(unsure)} sample(s) ({why})"
    return f[status != "uncertain"], note


def _reason(v) -> str:
    return v if isinstance(v, str) and v.strip() else "no reason given"


@kind("flow_share")
def flow_share(ctx: FactorContext, threshold: float, column: str = "car_pct_of_t", sample_type: str = "pb",
               window_days=(0, 30)):
    """A share judged with its 95% interval: present when a sample's lower bound is above the
    threshold; absent when every sample's upper bound is below it and the window has closed."""
    f, unsure = car_samples(ctx, sample_type, window_days)
    lo_col, hi_col = f"{column}_ci_low", f"{column}_ci_high"
    settle_more = f"{sample_type} flow samples until {_when(ctx, window_days[1])}"
    if f.empty or f[column].isna().all():
        return None, unsure or f"no usable {sample_type} flow sample in days {window_days[0]}-{window_days[1]} by " \
                               f"{ctx.as_of}", (CERTAIN_CALL if unsure
                                                else settle_more)
    f = f.copy()
    for c in (lo_col, hi_col):             # results without intervals: the point estimate stands for both
        if c not in f.columns:
            f[c] = f[column]
    nd = f.get("car_status", pd.Series(index=f.index, dtype=str)).astype(str) == "not_detected"
    f.loc[nd, [column, lo_col]] = 0.0
    i = f[column].astype(float).idxmax()
    r = f.loc[i]
    detail = (f"{r[column]:.1f} (95% CI {r[lo_col]:.1f}-{r[hi_col]:.1f}) in {r.sample_id} ({r.collection_date})")
    if (f[lo_col].astype(float) > threshold).any():
        j = f[lo_col].astype(float).idxmax()
        return Verdict(float(f.loc[j, column]), True), \
            f"{f.loc[j, column]:.1f} (95% CI {f.loc[j, lo_col]:.1f}-{f.loc[j, hi_col]:.1f}) in {f.loc[j, 'sample_id']} " \
            f"({f.loc[j, 'collection_date']})"
    all_below = (f[hi_col].astype(float) < threshold).all()
    closed = ctx.window_closed(window_days[1])
    if all_below and closed and not unsure:
        return Verdict(float(r[column]), False), detail
    why = [unsure] if unsure else []
    if not all_below:
        why.append(f"the 95% interval of {r.sample_id} includes {threshold:g}")
    if not closed:
        why.append(f"the window is open until {_when(ctx, window_days[1])}")
    settle = "; ".join(s for s in (("a sample with a certain CAR call" if unsure else ""),
                                   ("more T cells (a narrower interval)" if not all_below else ""),
                                   (settle_more if not closed else "")) if s)
    return Verdict(float(r[column]), None), f"{detail}; {'; '.join(why)}", settle


@kind("flow_predominance")
def flow_predominance(ctx: FactorContext, sample_type: str = "pb", window_days=(0, 30), call: str = "CD4"):
    """The CAR CD4/CD8 call at the sample with the highest CAR share of T cells (certain calls
    only): ``call`` there is present; another firm call is absent once the window has closed."""
    f, unsure = car_samples(ctx, sample_type, window_days)
    if unsure:
        return None, unsure, CERTAIN_CALL
    if "car_status" in f.columns:
        f = f[f.car_status.fillna("ok").astype(str) == "ok"]
    if f.empty or f.car_pct_of_t.isna().all():
        return None, f"no {sample_type} flow sample with CAR T cells detected by {ctx.as_of}", \
            f"{sample_type} flow samples with CAR T cells detected"
    r = f.loc[f.car_pct_of_t.astype(float).idxmax()]
    got = str(r.car_predominance or "indeterminate")
    detail = f"{got} (CAR CD4:CD8 {r.car_cd4_cd8_ratio:.2f}) in {r.sample_id} ({r.collection_date})"
    if got == call:
        return Verdict(got, True), detail
    if got == "indeterminate":
        return Verdict(got, None), detail, "more CAR T cells in a sample (the call needs a confident ratio)"
    if not ctx.window_closed(window_days[1]):
        return Verdict(got, None), f"{detail}; the window is open until {_when(ctx, window_days[1])}", \
            f"{sample_type} flow samples until {_when(ctx, window_days[1])}"
    return Verdict(got, False), detail


@kind("csf_car_cd4")
def csf_car_cd4(ctx: FactorContext, confidence: float = 0.95):
    """CSF: CAR T cells CD4-predominant *and* more CD4-rich than the tube's own CAR-negative T
    cells (CSF is CD4-rich at baseline), judged on the 2x2 table CAR+/CAR- by CD4/CD8 (odds ratio
    and its exact interval). Present: CD4 call and odds ratio above 1 with confidence; absent: a
    firm CD8 or balanced call, or an odds ratio below 1 with confidence; otherwise unknown."""
    f, unsure = car_samples(ctx, "csf")
    if unsure:
        return None, unsure, "a CSF " + CERTAIN_CALL.removeprefix("a ")
    if "car_status" in f.columns:
        f = f[f.car_status.fillna("ok").astype(str) == "ok"]
    if f.empty:
        return None, f"no CSF flow sample with CAR T cells detected by {ctx.as_of}", "a CSF sample"
    verdicts = [_csf_one(r, confidence) for r in f.itertuples()]
    for value, present, detail in verdicts:
        if present:
            return Verdict(value, True), detail
    if all(p is False for _, p, _ in verdicts):
        return Verdict(verdicts[0][0], False), "; ".join(d for _, _, d in verdicts)
    return Verdict(verdicts[0][0], None), "; ".join(d for _, _, d in verdicts), \
        "a CSF tube with more T cells (CAR+ and CAR-, CD4 and CD8) or a control tube"


def _csf_one(r, confidence: float) -> tuple[object, bool | None, str]:
    a, b = _int(r.car_cd4), _int(r.car_cd8)
    c, d = _int(getattr(r, "carneg_cd4", None)), _int(getattr(r, "carneg_cd8", None))
    call = str(r.car_predominance or "indeterminate")
    where = f"{r.sample_id} ({r.collection_date})"
    if None in (a, b, c, d):
        return call, None, f"{where}: CAR/CAR-negative CD4 and CD8 counts are missing"
    res = odds_ratio([[a, b], [c, d]], kind="conditional")
    ci = res.confidence_interval(confidence_level=confidence)
    orr = (f"odds ratio {res.statistic:.2g} (95% CI {ci.low:.2g}-{ci.high:.2g})" if math.isfinite(res.statistic)
           else "odds ratio undefined (no CD8 T cells among CAR+ and CAR- alike, or no CD4)")
    detail = f"{where}: CAR CD4:CD8 {a}:{b} ({call}), CAR-negative {c}:{d}; {orr}"
    if call in ("CD8", "balanced") or ci.high < 1.0:
        return call, False, detail
    if call == "CD4" and ci.low > 1.0:
        return call, True, detail
    return call, None, detail + ("" if call == "CD4" else f"; CAR call {call}")


def _int(v) -> int | None:
    try:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
    except (TypeError, ValueError):
        return None


# -- clinical ------------------------------------------------------------------------------------

@kind("clinical_in")          # the same reading; the rules file compares it with 'in'
@kind("clinical_value")
def clinical_value(ctx: FactorContext, field: str, date_field: str | None = None):
    """A value from clinical.csv, known from its date (``date_field``), else from infusion."""
    v = getattr(ctx.patient, field)
    if v is None:
        return None, "unknown", f"{field} in clinical.csv"
    known = getattr(ctx.patient, date_field) if date_field else None
    known = known or ctx.patient.infusion_date
    if known is not None and ctx.as_of < known:
        return None, f"{field} not known on {ctx.as_of}", "a value dated on or before the as-of date"
    return v, f"{field} = {v}" + (f" ({date_field} {getattr(ctx.patient, date_field)})"
                                   if date_field and getattr(ctx.patient, date_field) else "")


@kind("clinical_any")
def clinical_any(ctx: FactorContext, conditions: list):
    """True if any condition holds, False if all are known and fail, else unknown."""
    results, parts = [], []
    for c in conditions:
        v = getattr(ctx.patient, c["field"])
        r = compare(v, c["op"], c["threshold"])
        results.append(r)
        parts.append(f"{c['field']} {'?' if v is None else v} ({c['op']} {c['threshold']}: "
                     f"{'unknown' if r is None else 'yes' if r else 'no'})")
    val = True if any(r is True for r in results) else (None if any(r is None for r in results) else False)
    missing = [c["field"] for c, r in zip(conditions, results) if r is None]
    return val, "; ".join(parts), ("" if val is not None else f"{', '.join(missing)} in clinical.csv")


@kind("crs_icans")
def crs_icans(ctx: FactorContext, crs_min_grade: int = 2, icans_min_grade: int = 1):
    """CRS >= grade or ICANS >= grade. A grade at the threshold counts from its date (undated: unknown,
    never assumed); a maximum below it is settled once the CRS/ICANS window has closed."""
    p = ctx.patient
    parts, results, settle = [], [], []
    closed = ctx.window_closed(CRS_ICANS_WINDOW_DAYS)
    for name, grade, when, lim in (("CRS", p.crs_max_grade, p.crs_date, crs_min_grade),
                                   ("ICANS", p.icans_max_grade, p.icans_date, icans_min_grade)):
        col = f"{name.lower()}_date"
        if grade is None:
            results.append(None)
            parts.append(f"{name} grade unknown")
            settle.append(f"{name.lower()}_max_grade")
        elif grade >= lim and when is None:
            results.append(None)
            parts.append(f"{name} grade {grade} has no date: not used until {col} is given")
            settle.append(col)
        elif grade >= lim:
            known = ctx.as_of >= when
            results.append(True if known else None)
            parts.append(f"{name} grade {grade} on {when}" if known else f"{name}: no grade known on {ctx.as_of}")
            if not known:
                settle.append(f"the {name} course after {ctx.as_of}")
        elif when is not None and ctx.as_of < when:
            results.append(None)
            parts.append(f"{name}: no grade known on {ctx.as_of}")
            settle.append(f"the course until {_when(ctx, CRS_ICANS_WINDOW_DAYS)}")
        else:
            results.append(False if closed else None)
            parts.append(f"{name} maximum grade {grade}" + ("" if closed else
                                                             f" so far (settled after {_when(ctx, CRS_ICANS_WINDOW_DAYS)})"))
            if not closed:
                settle.append(f"the course until {_when(ctx, CRS_ICANS_WINDOW_DAYS)}")
    val = True if any(r is True for r in results) else (None if any(r is None for r in results) else False)
    return val, "; ".join(parts), ("" if val is not None else "; ".join(dict.fromkeys(settle)))


# -- CAR-T kinetics -------------------------------------------------------------------------------

@kind("car_kinetics")
def car_kinetics(ctx: FactorContext, series: str = "all", measure: str = "cmax_per_ul", threshold=None, op: str = ">"):
    """A CAR-T kinetic read-out of the blood samples so far (``series`` all|cd4|cd8, ``measure`` a
    field of :class:`cytomnt.patients.expansion.Expansion`). No published threshold exists; a
    rules file may add one. Cmax and AUC only grow with more samples, so one above the threshold
    is present at once; anything else is settled once day 28 has passed."""
    from cytomnt.patients.expansion import AUC_END_DAY, patient_expansion
    k = patient_expansion(ctx.flow_samples("pb"), ctx.patient.infusion_date)[series]
    value = getattr(k, measure)
    if value is None:
        return None, k.note or f"no {measure} yet", f"blood samples with CAR T cells/uL through day {AUC_END_DAY}"
    detail = f"{measure} {value:.4g} ({series}; {k.n_samples} samples)"
    growing = measure in ("cmax_per_ul", "auc_0_28")
    if ctx.window_closed(AUC_END_DAY) or (growing and threshold is not None and compare(value, op, threshold)):
        return value, detail
    return Verdict(value, None), f"{detail}; samples through day {AUC_END_DAY} may still change it", \
        f"blood samples through {_when(ctx, AUC_END_DAY)}"
