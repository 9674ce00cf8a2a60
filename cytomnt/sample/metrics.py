"""Phenotype metrics of one sample from its population counts and its CAR call: CAR-T share of T
cells with its 95% interval (the net estimate's; exact Clopper-Pearson for user gates), CD4:CD8
balance and its call, concentrations per uL with intervals, QC flags.

Defaults come from published CAR-T flow assay limits (see README, "QC flags"):
LOD 13 CAR+ events and LLOQ 22 (Peinelt et al., Front Immunol 2022); Poisson CV above 10%
below 100 events.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.special import betaincinv

from cytomnt.sample.carcall import CarCall


@dataclass(frozen=True)
class MetricSettings:
    """Thresholds for QC flags and the predominance call. The predominance thresholds are the
    rules file's (``flow_calls`` in ``data/mnt_rules.yaml``): see :meth:`from_rules`."""

    lod_events: int = 13                 # CAR_BELOW_LOD: fewer CAR+ events above background
    loq_events: int = 22                 # CAR_BELOW_LOQ: fewer than this above background
    min_t_cells: int = 100               # fewer T cells: LOW_EVENT_COUNT, and the CAR call is uncertain
    min_car_for_call: int = 22           # fewer CAR CD4+CD8 events -> predominance 'indeterminate'
    predominance_ratio: float = 1.0      # CAR CD4:CD8 confidently above -> 'CD4', below its inverse -> 'CD8'
    balanced_band: float = 1.5           # ratio's interval inside [1/band, band] -> 'balanced'
    confidence: float = 0.95

    @classmethod
    def from_rules(cls, flow_calls: dict) -> "MetricSettings":
        """Settings with the rules file's ``flow_calls`` values (unknown keys are an error)."""
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(flow_calls) - known)
        if bad:
            raise ValueError(f"rules file: unknown flow_calls key(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
        return cls(**{k: type(getattr(cls, k))(v) for k, v in flow_calls.items()})


@dataclass(frozen=True)
class Counts:
    """Event counts of the populations the metrics need (None: not measured)."""

    events: int
    singlets: int | None = None
    live: int | None = None
    lymphocytes: int | None = None
    t_cells: int | None = None
    t_cd4: int | None = None
    t_cd8: int | None = None
    car_t: int | None = None
    car_cd4: int | None = None
    car_cd8: int | None = None
    beads: int | None = None


def ratio(a: int | None, b: int | None) -> float:
    """a / b, NaN when either is unknown or b is zero."""
    if a is None or b is None or b == 0:
        return math.nan
    return a / b


def exact_ci(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval for k successes in n trials, as proportions (NaN when n = 0):
    its definition, the beta quantiles (scipy's ``binomtest(...).proportion_ci(method="exact")``
    finds the same bounds by root-finding, ~400x slower, to ~1e-13)."""
    if not n:
        return math.nan, math.nan
    k, n = int(k), int(n)
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, alpha / 2))
    high = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - alpha / 2))
    return low, high


def share_call(lo: float, hi: float, s: MetricSettings) -> str:
    """The predominance call from the 95% interval [lo, hi] of the CD4 share of CAR CD4+CD8 T
    cells: 'CD4' or 'CD8' when the whole interval of the ratio lies beyond the threshold,
    'balanced' when it lies inside the balanced band, else 'indeterminate'."""
    r_lo = lo / (1 - lo) if lo < 1 else math.inf
    r_hi = hi / (1 - hi) if hi < 1 else math.inf
    if r_lo > s.predominance_ratio:
        return "CD4"
    if r_hi < 1.0 / s.predominance_ratio:
        return "CD8"
    if r_lo >= 1.0 / s.balanced_band and r_hi <= s.balanced_band:
        return "balanced"
    return "indeterminate"


def predominance(cd4: int | None, cd8: int | None, s: MetricSettings) -> str:
    """The call for exact counts (user gates, truth): the CD4 share's exact interval, then
    :func:`share_call`; 'indeterminate' with fewer than ``min_car_for_call`` events."""
    if cd4 is None or cd8 is None or cd4 + cd8 < s.min_car_for_call:
        return "indeterminate"
    return share_call(*exact_ci(cd4, cd4 + cd8, s.confidence), s)


def _share_ratio(share: float) -> float:
    return share / (1 - share) if share < 1 else math.inf


def car_columns(c: Counts, call: CarCall, s: MetricSettings) -> dict:
    """The CAR columns: net of background from the call's estimate (the count itself for user
    gates, which are the reviewer's call), empty when the call is uncertain; gross counts aside."""
    m: dict = {"car_t_gross": c.car_t, "car_cd4_gross": c.car_cd4, "car_cd8_gross": c.car_cd8}
    nan = math.nan
    m.update(car_t=None, car_cd4=None, car_cd8=None, car_pct_of_t=nan, car_pct_of_t_ci_low=nan,
             car_pct_of_t_ci_high=nan, car_cd4_cd8_ratio=nan, car_cd4_cd8_ratio_ci_low=nan,
             car_cd4_cd8_ratio_ci_high=nan, car_predominance="indeterminate")
    t = c.t_cells
    if call.status == "uncertain" or not t or c.car_t is None:
        return m
    e = call.estimate
    if e is None:                                          # user gates: the gate is the estimate
        total, cd4, cd8 = float(c.car_t), c.car_cd4, c.car_cd8
        pct_ci = tuple(100.0 * v for v in exact_ci(c.car_t, t, s.confidence))
        share_ci = exact_ci(cd4, cd4 + cd8, s.confidence) if cd4 is not None and cd8 is not None else (nan, nan)
    else:
        total, cd4, cd8, pct_ci, share_ci = e.total, e.cd4, e.cd8, e.pct_ci, e.share_cd4_ci
    m.update(car_t=int(round(total)), car_cd4=None if cd4 is None else int(round(cd4)),
             car_cd8=None if cd8 is None else int(round(cd8)), car_pct_of_t=100.0 * total / t)
    m["car_pct_of_t_ci_low"] = min(pct_ci[0], m["car_pct_of_t"])
    m["car_pct_of_t_ci_high"] = max(pct_ci[1], m["car_pct_of_t"])
    if cd4 is not None and cd8 is not None:
        m["car_cd4_cd8_ratio"] = ratio(m["car_cd4"], m["car_cd8"])
        if math.isfinite(share_ci[0]):
            m["car_cd4_cd8_ratio_ci_low"], m["car_cd4_cd8_ratio_ci_high"] = (_share_ratio(v) for v in share_ci)
            if m["car_cd4"] + m["car_cd8"] >= s.min_car_for_call and call.status == "ok":
                m["car_predominance"] = share_call(*share_ci, s)
    if call.status == "not_detected":
        m["car_predominance"] = ""
    return m


#: The CAR T-cell populations with a concentration: samples.csv's count column -> its per-uL column.
PER_UL = {"car_t": "car_t_per_ul", "car_cd4": "car_cd4_per_ul", "car_cd8": "car_cd8_per_ul"}


def car_event_intervals(m: dict, c: Counts, call: CarCall, s: MetricSettings) -> dict[str, tuple[float, float]]:
    """95% intervals of the net CAR T, CD4 and CD8 counts (events): the estimate's, or for user
    gates (exact counts) the exact binomial interval of each count among the T cells."""
    nan = (math.nan, math.nan)
    if m.get("car_t") is None or not c.t_cells:
        return {k: nan for k in PER_UL}
    e = call.estimate
    if e is not None:
        return {"car_t": e.total_ci, "car_cd4": e.cd4_ci, "car_cd8": e.cd8_ci}
    t = c.t_cells
    return {k: tuple(t * v for v in exact_ci(m[k], t, s.confidence)) if m.get(k) is not None else nan for k in PER_UL}


def concentrations(m: dict, c: Counts, cis: dict, alc_k_per_ul: float | None, beads_per_test: float | None,
                   test_volume_ul: float | None) -> tuple[dict, list[str]]:
    """CAR T, CD4 and CD8 T cells per uL of blood with 95% intervals, and CAR T cells as % of the
    lymphocytes (the share of the ALC they make). From counting beads when the tube has them,
    else the manifest ALC x net CAR T / lymphocyte events. The intervals carry the CAR estimate's
    uncertainty, not the ALC's or the bead count's."""
    nan = math.nan
    out: dict = {"car_t_per_ul_source": "", "car_pct_of_lymphocytes": nan, "car_pct_of_lymphocytes_ci_low": nan,
                 "car_pct_of_lymphocytes_ci_high": nan}
    for col in PER_UL.values():
        out.update({col: nan, f"{col}_ci_low": nan, f"{col}_ci_high": nan})
    flags: list[str] = []
    per_event = None                                   # cells/uL that one event stands for
    if m.get("car_t") is not None and c.beads and beads_per_test and test_volume_ul:
        per_event, out["car_t_per_ul_source"] = beads_per_test / test_volume_ul / c.beads, "beads"
    elif m.get("car_t") is not None and alc_k_per_ul is not None and math.isfinite(alc_k_per_ul):
        if c.lymphocytes:
            per_event, out["car_t_per_ul_source"] = alc_k_per_ul * 1000.0 / c.lymphocytes, "alc"
        else:
            flags.append("NO_LYMPHOCYTES_FOR_ALC")
    if per_event is not None:
        for k, col in PER_UL.items():
            if m.get(k) is not None:
                out[col] = per_event * m[k]
                out[f"{col}_ci_low"], out[f"{col}_ci_high"] = (per_event * v for v in cis[k])
    if m.get("car_t") is not None and c.lymphocytes:
        out["car_pct_of_lymphocytes"] = 100.0 * m["car_t"] / c.lymphocytes
        lo, hi = cis["car_t"]
        out["car_pct_of_lymphocytes_ci_low"] = 100.0 * lo / c.lymphocytes
        out["car_pct_of_lymphocytes_ci_high"] = 100.0 * hi / c.lymphocytes
    return out, flags


def phenotype(c: Counts, s: MetricSettings = MetricSettings(), alc_k_per_ul: float | None = None,
              beads_per_test: float | None = None, test_volume_ul: float | None = None,
              call: CarCall | None = None) -> tuple[dict, list[str]]:
    """Metric columns and QC flag codes for one sample; ``call``: the tube's CAR call (status,
    basis, net estimate), without which the counts are taken as the call (user gates)."""
    car_call = call or CarCall("ok", "user gates")
    flags: list[str] = []
    m: dict = {"car_status": car_call.status, "car_basis": car_call.basis, "car_status_reason": car_call.reason,
               "car_background_expected": car_call.expected}
    t = c.t_cells
    m["t_cd4_cd8_ratio"] = ratio(c.t_cd4, c.t_cd8)
    m.update(car_columns(c, car_call, s))
    car, net4, net8 = m["car_t"], m["car_cd4"], m["car_cd8"]
    neg4 = c.t_cd4 - net4 if c.t_cd4 is not None and net4 is not None else None
    neg8 = c.t_cd8 - net8 if c.t_cd8 is not None and net8 is not None else None
    m["carneg_cd4"] = neg4
    m["carneg_cd8"] = neg8
    m["carneg_cd4_cd8_ratio"] = ratio(neg4, neg8)
    # CAR CD4:CD8 against the same tube's CAR-negative T cells (CSF is CD4-rich at baseline)
    m["car_cd4_enrichment"] = ratio(m["car_cd4_cd8_ratio"], m["carneg_cd4_cd8_ratio"]) \
        if math.isfinite(m["car_cd4_cd8_ratio"]) and math.isfinite(m["carneg_cd4_cd8_ratio"]) else math.nan

    conc, cflags = concentrations(m, c, car_event_intervals(m, c, car_call, s), alc_k_per_ul, beads_per_test,
                                  test_volume_ul)
    m.update(conc)
    flags += cflags
    if c.beads is not None and c.beads > 0 and not (beads_per_test and test_volume_ul):
        flags.append("BEADS_WITHOUT_CONSTANTS")

    if t is not None:
        if t == 0:
            flags.append("NO_T_CELLS")
        elif t < s.min_t_cells:
            flags.append("LOW_EVENT_COUNT")
    if car is not None and t:                              # net of background: above the blank
        if car < s.lod_events:
            flags.append("CAR_BELOW_LOD")
        elif car < s.loq_events:
            flags.append("CAR_BELOW_LOQ")
    flags.append({"not_detected": "CAR_NOT_DETECTED", "uncertain": "CAR_UNCERTAIN"}.get(car_call.status, ""))
    return m, [f for f in flags if f]
