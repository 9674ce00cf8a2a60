"""Marker-positive calls that know their background.

A positive count means something only against what a negative reference predicts for the same
population: a control tube (FMO, marker-negative donor, pre-treatment sample), the tube's own
internal negatives (cells that cannot carry the marker), or, last, the shape of the population's
own distribution (a valley; the negative peak mirrored about its mode). From the reference come
the cut, the expected number of background events above it, and a test: positive only when the
observed count is clearly above that expectation; with no trustworthy reference, *uncertain*.
How many positives there are, net of background, and how sure that is: :mod:`gating.auto.netcount`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gating.auto.netcount import LEVELS, LOWER_LEVELS, NetCount, ReferenceTail, interval, net_count

#: Basis of a cut, in order of preference.
BASES = ("control", "internal", "shape")
#: One-sided level of the "clearly above background" test.
ALPHA = 0.05
#: A reference needs this many events (its 99th percentile then has at least one above it).
MIN_REFERENCE_EVENTS = 100


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
    net: NetCount | None = None          # positives net of background at each cut level, with replicates
    cut: float | None = None             # where the estimate counts (the gate's cut), when there is one


def background(parent_count: int, ref: Reference, confidence: float = 0.95) -> tuple[float, float]:
    """Background events expected above the cut among ``parent_count``: the reference's rate x
    ``parent_count``, and its upper bound from the exact (Clopper-Pearson) one-sided interval."""
    if ref.n <= 0:
        return math.nan, math.nan
    from scipy.stats import binomtest      # scipy.stats: 0.6-0.9 s to import, only when a reference is used
    rate = ref.above / ref.n
    high = binomtest(ref.above, ref.n).proportion_ci(confidence_level=2 * confidence - 1, method="exact").high
    return parent_count * rate, parent_count * float(high)


#: The positives' median must lie this far above the cut, in units of the negatives' own reach
#: (reference median to cut): bright stains 0.6-1.0, dim continuous ones 0.3-0.5 (generated tubes).
MIN_GAP = 0.5
#: Below this many positives net of background, how the count falls across cut levels says too
#: little about a smear, and the positives' place above the cut (:func:`separation`) decides.
FEW_FOR_SLOPE = 100


def separation(values: np.ndarray, cut: float, negative_median: float, background: float = 0.0) -> str:
    """Why the positive events are not a population of their own ('' when they are): events of
    a dim stain that runs into the negatives pile up just above the cut, whose place then
    decides how many are counted. The ``background`` events expected above the cut, which sit
    just above it, are left out of the positives' median."""
    pos = np.sort(values[values >= cut])[int(round(max(background, 0.0))):]
    reach = cut - negative_median
    if pos.size < 5 or not reach > 0:
        return ""
    gap = (float(np.median(pos)) - cut) / reach
    if gap < MIN_GAP:
        return (f"the positive events sit just above the cut (their median is {gap:.2f} of the negatives' "
                f"width above it, at least {MIN_GAP} expected for a separate population) and too few events show "
                f"how many more hide below it: a dim stain running into the negatives")
    return ""


def call(population: str, values: np.ndarray, cut: float, ref: Reference, min_events: int,
         uncertain: str = "", tail: ReferenceTail | None = None, widen: ReferenceTail | None = None,
         levels: tuple[float, ...] = LEVELS, own_reference: bool = True, valley: float | None = None) -> PositiveCall:
    """The call for ``values`` (the parent's events on the marker's scale) against ``tail`` (the
    reference's highest values, on the same scale): positives net of background at each cut level
    of :mod:`gating.auto.netcount`, detected when the whole 95% interval is above zero. ``cut``: the
    gate's own cut (at or above is positive, as Gating-ML ranges), whose count is the gross
    count. ``uncertain``: a reason known beforehand (e.g. no valley and no reference) that makes
    the call uncertain whatever the counts; ``widen``: a second reference whose net counts only
    widen the interval (e.g. an unstained control rescaled for spillover spreading); ``levels``:
    the reference's percentiles to count at; ``own_reference``: False for a population that borrows
    another's reference and cut (a small mixed group), whose positives are not judged on their own;
    ``valley``: the population's own valley above the reference's cuts (the gate's cut then)."""
    n = int(values.size)
    k = int(np.count_nonzero(values >= cut))
    reason = uncertain
    if not reason and tail is None:
        reason = "no negative reference to count against"
    if not reason and tail.n < MIN_REFERENCE_EVENTS:
        reason = (f"the negative reference ({ref.basis}) has {tail.n} events; at least {MIN_REFERENCE_EVENTS} are "
                  f"needed to place its percentiles")
    if not reason and n < min_events:
        reason = f"{n} events in the parent population; at least {min_events} are needed to call positivity"
    if not reason and n and k == n and ref.basis != "control":
        reason = "every event lies above the cut: the negatives cannot be identified without a control tube"
    if not reason and ref.basis == "shape" and k == 0 and n:
        reason = "every event lies below the cut found in the data (a cut at the edge of the data)"
    if reason:
        return _uncertain(population, values, cut, ref, reason)
    shape = ref.basis == "shape"            # one level, its valley's; the mirror bounds the background
    net = net_count(population, values, tail, levels, lower=() if shape else LOWER_LEVELS, valley=valley, cap=not shape)
    if ref.basis == "internal":             # other cells: their tail is least trusted where it predicts most
        net = net.from_highest_level()
    few = net.net[net.centre] < FEW_FOR_SLOPE and own_reference
    hiding = separation(values, cut, tail.median, n * tail.share_above(cut)) if net.hidden <= 0 and few else ""
    if hiding and interval(net.rows())[0] > 0:
        return _uncertain(population, values, cut, ref, hiding)
    if widen is not None:
        net = net.widened(net_count(population, values, widen, levels))
    if shape:                          # a mirrored peak bounds the background (logicle squeezes its upper side)
        net = net.halved_background()
    lo, _ = interval(net.all_boot())
    status = "detected" if lo > 0 else "not_detected"
    # the gate goes where the point estimate counts, so gate count - background = estimate
    at = net.point_cut
    above = tail.top.size - int(np.searchsorted(tail.top, at, "left"))
    k, _, high, p = _gate_counts(values, at, Reference(ref.basis, ref.detail, tail.n, above))
    return PositiveCall(population, n, k, net.point_background, high, p, status, ref.basis, "", net, at)


def _gate_counts(values: np.ndarray, cut: float, ref: Reference) -> tuple[int, float, float, float]:
    """(events at or above ``cut``, background expected there and its upper bound, the chance of
    that many from background alone)."""
    from scipy.stats import poisson
    k = int(np.count_nonzero(values >= cut))
    expected, high = background(int(values.size), ref)
    return k, expected, high, float(poisson.sf(k - 1, high)) if k > 0 and math.isfinite(high) else 1.0


def _uncertain(population: str, values: np.ndarray, cut: float, ref: Reference, reason: str) -> PositiveCall:
    k, expected, high, p = _gate_counts(values, cut, ref)
    return PositiveCall(population, int(values.size), k, expected, high, p, "uncertain", ref.basis, reason)


#: Percentiles of a control population kept to check that it fits a tube's subset (its lower part,
#: which positives rarely reach).
LOWER_PERCENTILES = (5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60)


def control_fit_check(subset: np.ndarray, lower: np.ndarray, control_n: int, positives: int,
                      max_distance: float = 0.1, max_share_error: float = 0.25) -> str:
    """Why a control's population cannot stand for this subset's negatives ('' when it can).

    ``lower``: the control's :data:`LOWER_PERCENTILES` on the subset's scale; ``positives``: a
    generous count of the subset's positives (above the lowest cut). Below the last percentile
    the subset holds (nearly) only negatives: as many as that percentile of its negatives
    predicts (within ``max_share_error`` relative, or not significant at 0.1%), distributed like
    the control's there (the largest gap between the two conditional distributions, a
    Kolmogorov-Smirnov distance, at most ``max_distance`` or not significant at 1%). A reagent
    background on this subset only (Fc receptors), another instrument setting or another
    spreading all show here.
    """
    from scipy.stats import binomtest
    edge = float(lower[-1])
    low = np.sort(subset[subset <= edge])
    negatives = max(int(subset.size) - int(positives), 0)
    share = LOWER_PERCENTILES[-1] / 100.0
    expected = share * negatives
    if negatives >= 20 and abs(low.size - expected) > max_share_error * expected and \
            binomtest(int(min(low.size, negatives)), negatives, share).pvalue < 0.001:
        return (f"{low.size} of the subset's {negatives} presumed negative events lie below the control's "
                f"{LOWER_PERCENTILES[-1]}th percentile, where {expected:.0f} were expected: its negatives sit "
                f"{'higher' if low.size < expected else 'lower'} than the control's, which does not stand for this tube")
    if low.size < 20:
        return ""
    probs = np.asarray(LOWER_PERCENTILES[:-1], dtype=float) / LOWER_PERCENTILES[-1]
    got = np.searchsorted(low, lower[:-1], "right") / low.size
    d = float(np.max(np.abs(got - probs)))
    crit = 1.63 * math.sqrt(1.0 / low.size + 1.0 / max(control_n * share, 1.0))
    if d > max_distance and d > crit:
        return (f"the subset's negative events differ from the control's (distance {d:.2f} between their lower "
                f"distributions, at most {max_distance} allowed): the control does not stand for this tube")
    return ""


#: An unstained control stands for a subset only while the subset's negatives spread at most this
#: much wider than its autofluorescence (median to 10th percentile): beyond it, spillover
#: spreading from the other stains dominates the background and only an FMO control can set it.
MAX_UNSTAINED_SPREAD = 1.5


def unstained_reference(x, tail: ReferenceTail) -> tuple[ReferenceTail | None, str]:
    """(a widened reference, why the unstained control cannot stand for ``x``). An unstained
    control lacks the stained tube's spillover spreading: its highest values are moved up by the
    subset's excess location and stretched by its excess spread (median to 10th percentile, the
    side positives do not reach), and counts against that only widen the interval down."""
    if not (tail.median > tail.p10) or x.size < 20:
        return None, ""
    med_s, p10_s = float(np.median(x)), float(np.percentile(x, 10))
    f = (med_s - p10_s) / (tail.median - tail.p10)
    if f > MAX_UNSTAINED_SPREAD:
        return None, (f"the stained cells' negatives spread {f:.1f}x wider than the unstained control's "
                      f"autofluorescence (spillover spreading from the other stains; at most {MAX_UNSTAINED_SPREAD}x "
                      f"can be allowed for): an FMO control (all stains but this one) would set the background")
    shift = max(med_s - tail.median, 0.0)
    return ReferenceTail(tail.name + ":spread", tail.n, tail.median + shift + (tail.top - tail.median) * max(f, 1.0)), ""


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
    from scipy.stats import ks_2samp
    res = ks_2samp(a, b)
    if res.statistic > max_distance and res.pvalue < 0.01:
        return (f"the subset's negative events differ from the internal negatives' (KS distance "
                f"{res.statistic:.2f}, p={res.pvalue:.2g})")
    return ""
