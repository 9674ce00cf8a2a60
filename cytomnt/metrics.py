"""Phenotype metrics of one sample from its population counts: CAR-T share of T cells with
exact confidence intervals, CD4:CD8 balance and its call, absolute counts, QC flags.

Defaults come from published CAR-T flow assay limits (see README, "QC flags"):
LOD 13 CAR+ events and LLOQ 22 (Peinelt et al., Front Immunol 2022); Poisson CV above 10%
below 100 events.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import binomtest


@dataclass(frozen=True)
class MetricSettings:
    """Thresholds for QC flags and the predominance call (all configurable)."""

    lod_events: int = 13                 # CAR_BELOW_LOD under this many CAR+ events
    loq_events: int = 22                 # CAR_BELOW_LOQ under this many
    min_t_cells: int = 100               # LOW_EVENT_COUNT: fewer T cells -> CV of a % above 10%
    min_car_for_call: int = 22           # fewer CAR CD4+CD8 events -> predominance 'indeterminate'
    cd4_predominant_ratio: float = 1.5   # CAR CD4:CD8 at or above -> 'CD4'
    cd8_predominant_ratio: float = 1 / 1.5  # at or below -> 'CD8'; between -> 'balanced'
    confidence: float = 0.95


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
    """Clopper-Pearson interval for k successes in n trials, as proportions (NaN when n = 0)."""
    if not n:
        return math.nan, math.nan
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def predominance(cd4: int | None, cd8: int | None, s: MetricSettings) -> str:
    """'CD4', 'CD8', 'balanced', or 'indeterminate' when too few CAR T cells to call."""
    if cd4 is None or cd8 is None or cd4 + cd8 < s.min_car_for_call:
        return "indeterminate"
    if cd8 == 0 or cd4 / cd8 >= s.cd4_predominant_ratio:
        return "CD4"
    if cd4 / cd8 <= s.cd8_predominant_ratio:
        return "CD8"
    return "balanced"


def phenotype(c: Counts, s: MetricSettings = MetricSettings(), alc_k_per_ul: float | None = None,
              beads_per_test: float | None = None, test_volume_ul: float | None = None) -> tuple[dict, list[str]]:
    """Metric columns and QC flag codes for one sample."""
    flags: list[str] = []
    m: dict = {}
    t, car = c.t_cells, c.car_t
    m["t_cd4_cd8_ratio"] = ratio(c.t_cd4, c.t_cd8)
    if t is not None and car is not None:
        m["car_pct_of_t"] = 100.0 * car / t if t else math.nan
        lo, hi = exact_ci(car, t, s.confidence)
        m["car_pct_of_t_ci_low"] = 100.0 * lo
        m["car_pct_of_t_ci_high"] = 100.0 * hi
    else:
        m["car_pct_of_t"] = m["car_pct_of_t_ci_low"] = m["car_pct_of_t_ci_high"] = math.nan
    m["car_cd4_cd8_ratio"] = ratio(c.car_cd4, c.car_cd8)
    m["car_predominance"] = predominance(c.car_cd4, c.car_cd8, s)
    neg4 = c.t_cd4 - c.car_cd4 if c.t_cd4 is not None and c.car_cd4 is not None else None
    neg8 = c.t_cd8 - c.car_cd8 if c.t_cd8 is not None and c.car_cd8 is not None else None
    m["carneg_cd4"] = neg4
    m["carneg_cd8"] = neg8
    m["carneg_cd4_cd8_ratio"] = ratio(neg4, neg8)
    # CAR CD4:CD8 against the same tube's CAR-negative T cells (CSF is CD4-rich at baseline)
    m["car_cd4_enrichment"] = ratio(m["car_cd4_cd8_ratio"], m["carneg_cd4_cd8_ratio"]) \
        if math.isfinite(m["car_cd4_cd8_ratio"]) and math.isfinite(m["carneg_cd4_cd8_ratio"]) else math.nan

    m["car_t_per_ul"] = math.nan
    m["car_t_per_ul_source"] = ""
    if car is not None and c.beads and beads_per_test and test_volume_ul:
        m["car_t_per_ul"] = car / c.beads * beads_per_test / test_volume_ul
        m["car_t_per_ul_source"] = "beads"
    elif car is not None and alc_k_per_ul is not None and math.isfinite(alc_k_per_ul):
        if c.lymphocytes:
            m["car_t_per_ul"] = alc_k_per_ul * 1000.0 * car / c.lymphocytes
            m["car_t_per_ul_source"] = "alc"
        else:
            flags.append("NO_LYMPHOCYTES_FOR_ALC")
    if c.beads is not None and c.beads > 0 and not (beads_per_test and test_volume_ul):
        flags.append("BEADS_WITHOUT_CONSTANTS")

    if t is not None:
        if t == 0:
            flags.append("NO_T_CELLS")
        elif t < s.min_t_cells:
            flags.append("LOW_EVENT_COUNT")
    if car is not None and t:
        if car < s.lod_events:
            flags.append("CAR_BELOW_LOD")
        elif car < s.loq_events:
            flags.append("CAR_BELOW_LOQ")
    return m, flags
