"""Marker-positive calls that know their background.

A positive count means something only against what a negative reference predicts for the same
population: a control tube (FMO, marker-negative donor, pre-treatment sample), the tube's own
internal negatives (cells that cannot carry the marker), or, last, the shape of the population's
own distribution (a valley; the negative peak mirrored about its mode). From the reference come
the cut, the expected number of background events above it, and a test: positive only when the
observed count is clearly above that expectation; with no trustworthy cut, *uncertain*.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, ks_2samp, poisson

#: Basis of a cut, in order of preference.
BASES = ("control", "internal", "shape")
#: One-sided level of the "clearly above background" test.
ALPHA = 0.05


@dataclass(frozen=True)
class Reference:
    """What a cut was taken from: ``basis`` (control | internal | shape), its events and how many
    of them lie at or above the cut (the background rate), and a readable detail."""

    basis: str
    detail: str
    n: int = 0
    above: int = 0


@dataclass(frozen=True)
class PositiveCall:
    """A population's positive events against its reference.

    ``status``: ``detected`` (clearly above background), ``not_detected``, or ``uncertain`` (no
    trustworthy cut; ``reason`` says why). ``expected``/``expected_high``: background events
    predicted above the cut (point and one-sided 95% upper bound); ``p_value``: the chance of
    ``positive`` or more events from background alone (at ``expected_high``).
    """

    population: str
    parent_count: int
    positive: int
    expected: float
    expected_high: float
    p_value: float
    status: str
    basis: str
    reason: str = ""

    def to_dict(self) -> dict:
        return dict(vars(self))


def background(parent_count: int, ref: Reference, confidence: float = 0.95) -> tuple[float, float]:
    """Background events expected above the cut among ``parent_count``: the reference's rate x
    ``parent_count``, and its upper bound from the exact (Clopper-Pearson) one-sided interval."""
    if ref.n <= 0:
        return math.nan, math.nan
    rate = ref.above / ref.n
    high = binomtest(ref.above, ref.n).proportion_ci(confidence_level=2 * confidence - 1, method="exact").high
    return parent_count * rate, parent_count * float(high)


#: Percentiles of the reference between which a count must not depend on the cut.
SENSITIVITY_Q = (99.0, 99.9)


def cut_dependence(values: np.ndarray, cuts: list[tuple[float, float]], negative_median: float) -> str:
    """Why the positive count depends on where the cut is ('' when it does not).

    ``cuts``: (cut on the scale, background rate above it) at the reference's 99th and 99.9th
    percentiles; ``negative_median``: the reference's median on the same scale. Well separated
    positives give the same count above background at both cuts. A dim, continuous stain loses
    positives as the cut rises; at that rate, the positives hidden between the negatives'
    median and the lower cut would be a quarter or more of those counted: the count is then a
    choice of cut, not a count of positive cells.
    """
    n = values.size
    (c_lo, _), (c_hi, _) = cuts[0], cuts[-1]
    nets = [int(np.count_nonzero(values >= c)) - n * rate for c, rate in cuts]
    lo, hi = nets[0], nets[-1]
    if lo <= 0 or c_hi <= c_lo or lo - hi <= 3.0 * math.sqrt(lo):
        return ""
    hidden = (lo - hi) / (c_hi - c_lo) * max(c_lo - negative_median, 0.0)
    if hidden > 0.25 * lo:
        return (f"the positive events run continuously into the negatives: above background, {lo:.0f} lie above "
                f"the reference's {SENSITIVITY_Q[0]}th percentile and {hi:.0f} above its {SENSITIVITY_Q[-1]}th, "
                f"so about {hidden:.0f} more hide among the negatives; the count depends on where the cut is")
    return ""


#: The positives' median must lie this far above the cut, in units of the negatives' own reach
#: (reference median to cut): bright stains 0.6-1.0, dim continuous ones 0.3-0.5 (generated tubes).
MIN_GAP = 0.5


def separation(values: np.ndarray, cut: float, negative_median: float) -> str:
    """Why the positive events are not a population of their own ('' when they are).

    Positive cells separated from the negatives have their median well above the cut; events of
    a dim stain that runs into the negatives pile up just above it, and the cut then decides
    how many are counted. Works where :func:`cut_dependence` has too few events to see a slope.
    """
    pos = values[values >= cut]
    reach = cut - negative_median
    if pos.size < 5 or reach <= 0:
        return ""
    gap = (float(np.median(pos)) - cut) / reach
    if gap < MIN_GAP:
        return (f"the positive events sit just above the cut (their median is {gap:.2f} of the negatives' "
                f"width above it, at least {MIN_GAP} expected for a separate population): a dim stain running "
                f"into the negatives, so the true share may be much higher than counted")
    return ""


def call(population: str, values: np.ndarray, cut: float, ref: Reference, min_events: int,
         uncertain: str = "", sensitivity: tuple[list[tuple[float, float]], float] | None = None) -> PositiveCall:
    """The call for ``values`` (the parent's events on the marker's scale) cut at ``cut`` (at or
    above is positive, as Gating-ML ranges). ``uncertain``: a reason known beforehand (e.g. no
    valley and no reference) that makes the call uncertain whatever the counts; ``sensitivity``:
    (alternative (cut, background rate) pairs, the reference's median) for :func:`cut_dependence`."""
    n = int(values.size)
    k = int(np.count_nonzero(values >= cut))
    expected, high = background(n, ref)
    p = float(poisson.sf(k - 1, high)) if k > 0 and math.isfinite(high) else 1.0
    reason = uncertain
    if not reason and sensitivity and p < ALPHA:
        reason = cut_dependence(values, *sensitivity) or separation(values, cut, sensitivity[1])
    if not reason and n < min_events:
        reason = f"{n} events in the parent population; at least {min_events} are needed to call positivity"
    if not reason and n and k == n and ref.basis != "control":
        reason = "every event lies above the cut: the negatives cannot be identified without a control tube"
    if not reason and ref.basis == "shape" and k == 0 and n:
        reason = "every event lies below the cut found in the data (a cut at the edge of the data)"
    if reason:
        status = "uncertain"
    else:
        status = "detected" if p < ALPHA else "not_detected"
    return PositiveCall(population, n, k, expected, high, p, status, ref.basis, reason)


def mirror_reference(values: np.ndarray, mode: float, cut: float, detail: str) -> Reference:
    """Background from the negative peak's own shape: the events below the mode mirrored above it
    (negatives are near-symmetric about their mode; positives lie only above it)."""
    below = int(np.count_nonzero(values <= 2.0 * mode - cut))
    return Reference("shape", detail, n=max(int(values.size), 1), above=below)


def internal_reference_check(subset: np.ndarray, reference: np.ndarray, min_reference: int = 200,
                             max_distance: float = 0.1) -> str:
    """Why the internal negatives cannot stand for this subset's background ('' when they can).

    The subset's lower part (below the reference's 60th percentile, where positives rarely
    fall) must look like the reference's: the two-sample Kolmogorov-Smirnov distance at most
    ``max_distance``, or not significant at 1%. A reagent binding non-T cells (Fc receptors),
    spillover spreading that only T cells carry, or a different autofluorescence all show here.
    """
    if reference.size < min_reference:
        return f"{reference.size} internal negative events (at least {min_reference} needed)"
    edge = float(np.quantile(reference, 0.6))
    a, b = subset[subset <= edge], reference[reference <= edge]
    if a.size < 20:
        return (f"only {a.size} events of the subset lie in the internal negatives' range: its negatives "
                f"cannot be compared with them")
    res = ks_2samp(a, b)
    if res.statistic > max_distance and res.pvalue < 0.01:
        return (f"the subset's negative events differ from the internal negatives' (KS distance "
                f"{res.statistic:.2f}, p={res.pvalue:.2g})")
    return ""
