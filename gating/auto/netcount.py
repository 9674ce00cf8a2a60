"""Positive events net of background, counted at several cuts of a negative reference, with a
bootstrap that carries the sampling of the population and the reference's own size.

A cut at one percentile of the reference decides too much when the stain is a smear: a dim
population loses events as the cut rises. So the positives are counted at each of ``LEVELS``
(the reference's 99th, 99.5th and 99.9th percentiles); at each, the background is what the
reference predicts above that cut (its share at or above the cut x the population's size).
A replicate resamples both the population and the reference (each with replacement, its own
size); the reference's replicate moves the cut, the population's replicate the count above it.
Replicates are drawn exactly but cheaply: only the reference's highest values and the
population's counts between cuts matter, so each replicate costs a few binomial draws.

Everything here works on one scale chosen by the caller (counts at or above a percentile do
not depend on a monotone transform) and knows nothing of CAR T cells.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

#: Percentiles of the reference at which positives are counted; the middle one is the point estimate.
LEVELS = (99.0, 99.5, 99.9)
#: Lower percentiles that only raise the interval's upper end, when they count clearly more positives
#: than the 99th (a dim stain whose positives reach down into the negatives' range).
LOWER_LEVELS = (90.0, 95.0)
#: Bootstrap replicates (their 2.5th and 97.5th percentiles bound a 95% interval).
REPLICATES = 400


#: A cut level needs at least this many reference events at or above it (a background rate
#: known to about a third); higher levels are lowered to the highest that has them.
MIN_REFERENCE_ABOVE = 10


def usable_levels(n: int, levels: tuple[float, ...] = LEVELS) -> tuple[float, ...]:
    """``levels`` for a reference of ``n`` events, each lowered to at most the percentile with
    :data:`MIN_REFERENCE_ABOVE` events above it (a small reference cannot place a 99.9th percentile)."""
    cap = 100.0 * (1.0 - MIN_REFERENCE_ABOVE / n) if n > MIN_REFERENCE_ABOVE else 0.0
    return tuple(min(q, cap) for q in levels)


def rank_from_top(n: int, q: float) -> int:
    """How many of ``n`` reference events lie at or above its ``q``-th percentile (at least one)."""
    return max(1, int(math.ceil(n * (1.0 - q / 100.0) - 1e-9)))


@dataclass(frozen=True)
class ReferenceTail:
    """A negative reference reduced to what counting above its high percentiles needs: its size
    ``n``, its highest values (ascending) and a name that fixes its bootstrap stream, so that
    populations sharing a reference share its replicates."""

    name: str
    n: int
    top: np.ndarray
    median: float = math.nan      # the reference's median and 10th percentile (its spread below the
    p10: float = math.nan         # median), where known: for widening an unstained control

    @classmethod
    def of(cls, name: str, values: np.ndarray, levels: tuple[float, ...] = LOWER_LEVELS + LEVELS) -> "ReferenceTail":
        v = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
        keep = _window(v.size, min(levels))
        med, p10 = (float(np.percentile(v, q)) for q in (50, 10)) if v.size else (math.nan, math.nan)
        return cls(name, int(v.size), v[v.size - keep:], med, p10)

    def on_scale(self, to_scale) -> "ReferenceTail":
        """The same reference with its values mapped by a monotone ``to_scale``."""
        mapped = np.asarray(to_scale(np.r_[self.top, self.median, self.p10]), dtype=float).ravel()
        med, p10 = (m if math.isfinite(v) else math.nan for m, v in zip(mapped[-2:], (self.median, self.p10)))
        return ReferenceTail(self.name, self.n, mapped[:-2], float(med), float(p10))

    def cut(self, q: float) -> float:
        """The value at the reference's ``q``-th percentile (its k-th highest, k from :func:`rank_from_top`)."""
        k = rank_from_top(self.n, q)
        return float(self.top[-k]) if k <= self.top.size else -math.inf

    def share_above(self, cut: float) -> float:
        """Share of the reference's events at or above ``cut``."""
        return float(self.top.size - np.searchsorted(self.top, cut, "left")) / self.n


def _window(n: int, q_low: float) -> int:
    """Highest values to keep: the lowest level's rank plus six of its standard deviations."""
    k = rank_from_top(n, q_low)
    return min(n, k + int(6 * math.sqrt(k)) + 10)


@dataclass(frozen=True)
class NetCount:
    """A population's positives against one reference at each cut level.

    ``levels``: the lower (upper-bound only) levels first, then the main ones (``first`` on).
    ``gross[j]``: events at or above level j's cut; ``background[j]``: what the reference predicts
    there; ``boot[j, b]``: replicate b of the net count at level j.
    """

    levels: tuple[float, ...]
    n: int
    reference: ReferenceTail
    cuts: np.ndarray
    gross: np.ndarray
    background: np.ndarray
    boot: np.ndarray
    first: int = 0                       # index of the first main level
    hidden: float = 0.0                  # positives a smear hides below the lowest main cut (extrapolated)
    low_counts_more: bool = False        # the lower levels count clearly more positives (a dim stain)
    extra: np.ndarray | None = None      # replicates against a second reference, which only widen the interval
    valley: tuple[float, float, np.ndarray] | None = None   # (cut, net, replicates) at the population's own valley
    background_scale: float = 1.0        # share of the reference's background taken in the point (a bound: 0.5)
    rising: bool = False                 # the point at the highest level: the count rises clearly with the cut
    #                                      (the reference is wider than the negatives), or a reference of other cells

    @property
    def point(self) -> float:
        """The estimate: the net count at the population's own valley above the reference's cuts
        (a separate population: what sits between the negatives and the valley is not counted),
        else at the middle main level."""
        return self.valley[1] if self.valley is not None else float(self.net[self.point_level])

    @property
    def point_level(self) -> int:
        """Index of the level that gives the point: the middle main one, or the highest when the count
        rises clearly with the cut (the background at the lower cuts is over-stated)."""
        return len(self.levels) - 1 if self.rising else self.centre

    @property
    def point_cut(self) -> float:
        """Where the point estimate counts: the own valley, or its level's cut."""
        return self.valley[0] if self.valley is not None else float(self.cuts[self.point_level])

    @property
    def point_background(self) -> float:
        """The background the reference predicts above the point estimate's cut."""
        if self.valley is not None:
            return self.n * self.reference.share_above(self.valley[0]) * self.background_scale
        return float(self.background[self.point_level])

    @property
    def main(self) -> np.ndarray:
        """Replicate rows of the main levels."""
        return self.boot[self.first:]

    @property
    def net(self) -> np.ndarray:
        return self.gross - self.background

    @property
    def centre(self) -> int:
        """Index of the level that gives the point estimate (the middle main one)."""
        return self.first + (len(self.levels) - self.first) // 2

    def rows(self, widened: bool = False, levels: int | None = None) -> np.ndarray:
        """Every replicate row the interval spans: the main levels (repeated up to ``levels`` rows,
        to align with populations counted at more levels) and the own valley (or the middle level
        again), on which the ratio is formed; the lowest main level plus the hidden positives, the lower levels where they count clearly more
        (else the lowest main level again), and (``widened``) a second reference's rows."""
        def pad(block: np.ndarray, want: int | None) -> np.ndarray:
            return block[np.minimum(np.arange(want or block.shape[0]), block.shape[0] - 1)]
        main = self.main
        low = self.boot[:self.first] if self.low_counts_more and self.first else main[:1]
        own = self.valley[2][None, :] if self.valley is not None else self.boot[self.point_level][None, :]
        out = [pad(main, levels), own, main[:1] + self.hidden, pad(low, len(LOWER_LEVELS))]
        if widened:
            out.append(pad(self.extra if self.extra is not None else main, 2 * (levels or main.shape[0])))
        return np.vstack(out)

    def all_boot(self) -> np.ndarray:
        return self.rows(self.extra is not None)

    def from_highest_level(self) -> "NetCount":
        """The same counts with the point at the highest main level (the least background)."""
        return self._with(rising=True)

    def _with(self, **changes) -> "NetCount":
        return NetCount(**{**{k: getattr(self, k) for k in self.__dataclass_fields__}, **changes})

    def widened(self, other: "NetCount") -> "NetCount":
        """This estimate with ``other``'s main replicates added to the interval (not to the point)."""
        return self.widened_rows(other.main)

    def widened_rows(self, rows: np.ndarray) -> "NetCount":
        return self._with(extra=rows if self.extra is None else np.vstack([self.extra, rows]))

    def halved_background(self) -> "NetCount":
        """For a reference that bounds the background rather than estimates it (a mirrored negative
        peak): the point takes half its background, the interval spans none to all of it."""
        gross_rows = self.main + self.background[self.first:, None]
        valley = self.valley
        if valley is not None:
            bg = self.n * self.reference.share_above(valley[0])
            valley = (valley[0], valley[1] + bg / 2.0, valley[2] + bg / 2.0)
        half = self._with(background=self.background / 2.0, boot=self.boot + self.background[:, None] / 2.0,
                          valley=valley, background_scale=0.5)
        return half.widened_rows(np.vstack([self.main, gross_rows]))


def _seed(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def _replicate_cuts(ref: ReferenceTail, levels: tuple[float, ...], replicates: int) -> np.ndarray:
    """Cuts (levels x replicates) of the reference resampled with replacement: the k-th highest of
    n draws. A draw is the value at floor(U n) of the sorted reference for a uniform U, so the k-th
    highest draw is the value at the k-th highest of n uniforms, drawn jointly for all levels from
    sums of exponentials (Renyi): 1 - U_(k) = G_k / G_(n+1), G the running sum of n + 1 Exp(1)."""
    rng = np.random.default_rng(_seed("reference:" + ref.name))
    ks = np.array([rank_from_top(ref.n, q) for q in levels])
    order = np.argsort(ks, kind="stable")
    steps = np.diff(np.r_[0, ks[order], ref.n + 1]).astype(float)
    sums = np.cumsum(rng.gamma(steps[:, None], size=(steps.size, replicates)), axis=0)   # shape 0 gives 0
    from_top = np.floor(sums[:-1] / sums[-1] * ref.n).astype(np.int64)       # 0 = the highest value
    w = ref.top.size
    out = np.empty((len(levels), replicates))
    out[order] = ref.top[w - 1 - np.minimum(from_top, w - 1)]
    return out


def net_count(population: str, values: np.ndarray, ref: ReferenceTail, levels: tuple[float, ...] = LEVELS,
              replicates: int = REPLICATES, lower: tuple[float, ...] = LOWER_LEVELS,
              valley: float | None = None, cap: bool = True) -> NetCount:
    """Count ``values`` (a population on the reference's scale) at or above each level's cut,
    net of the background the reference predicts, with ``replicates`` bootstrap replicates;
    ``lower`` levels only ever raise the interval's upper end (a dim stain's hidden positives);
    ``valley``: the population's own valley above the reference's cuts, counted as well; ``cap``:
    lower levels a small reference cannot place (:func:`usable_levels`; off for a mirrored peak,
    whose level is its valley's)."""
    lower = tuple(q for q in lower if q < min(levels))
    first = len(lower)
    levels = usable_levels(ref.n, lower + tuple(levels)) if cap else lower + tuple(levels)
    v = np.sort(np.asarray(values, dtype=float))
    n = int(v.size)
    cuts = np.array([ref.cut(q) for q in levels])
    gross = (n - np.searchsorted(v, cuts, "left")).astype(float)
    background = np.array([n * ref.share_above(c) for c in cuts])
    boot = np.zeros((len(levels), replicates))
    if n == 0:
        return NetCount(tuple(levels), n, ref, cuts, gross, background, boot, first)
    rcuts = _replicate_cuts(ref, levels, replicates)
    # a replicate's background is its own share above its own cut: k/n, plus the point's excess from ties
    rates = np.array([rank_from_top(ref.n, q) / ref.n for q in levels])
    rates = np.maximum(rates, background / n)
    rng = np.random.default_rng(_seed("population:" + population) ^ _seed(ref.name))
    above = n - np.searchsorted(v, rcuts, "left")                 # levels x replicates, non-increasing in j
    # draws above the highest cut, then between each pair of cuts going down: conditional binomials
    left = np.full(replicates, n, dtype=np.int64)
    got = np.zeros(replicates, dtype=np.int64)
    prev = np.zeros(replicates, dtype=np.int64)
    for j in range(len(levels) - 1, -1, -1):
        band = above[j] - prev
        pool = n - prev
        p = np.where(pool > 0, band / np.maximum(pool, 1), 0.0)
        got = got + rng.binomial(left, np.clip(p, 0.0, 1.0))
        left = n - got
        prev = above[j]
        boot[j] = got - n * rates[j]
    m = slice(first, None)
    factor = smear_factor(cuts[m], gross[m], background[m], ref.p10)
    hidden = min(max(float(gross[first] - background[first] - gross[-1] + background[-1]), 0.0) * factor,
                 float(n - gross[first]))
    more = bool(first) and _counts_more(gross[:first + 1], background[:first + 1])
    rising = _counts_more(gross[m][::-1], background[m][::-1])
    own = None
    if valley is not None:
        share = ref.share_above(valley)
        g = float(np.count_nonzero(v >= valley))
        own = (float(valley), g - n * share,
               rng.binomial(n, g / n, replicates) - n * rng.binomial(ref.n, share, replicates) / ref.n)
    return NetCount(tuple(levels), n, ref, cuts, gross, background, boot, first, hidden, more, None, own,
                    rising=rising)


def _band_noise(gross: np.ndarray, background: np.ndarray, i: int, j: int) -> float:
    """Two Poisson errors of the events and background between cuts i and j: the least change in
    the net count between them that is not sampling."""
    return 2.0 * math.sqrt(max(abs(float(gross[i] - gross[j])) + abs(float(background[i] - background[j])), 1.0))


def _counts_more(gross: np.ndarray, background: np.ndarray) -> bool:
    """Whether another level counts clearly more positives than the last one (:func:`_band_noise`)."""
    net = gross - background
    return any(net[j] - net[-1] > _band_noise(gross, background, j, -1) for j in range(len(net) - 1))


def smear_factor(cuts: np.ndarray, gross: np.ndarray, background: np.ndarray, reach: float) -> float:
    """Hidden positives per positive lost between the lowest and the highest cut, when the net
    count falls clearly (:func:`_band_noise`) as the cut rises (a dim stain running into the
    negatives): the fall per unit of scale carried on down to ``reach`` (the reference's 10th
    percentile: a dim stain's positives reach deep into the negatives' range), i.e.
    (lowest cut - reach) / (cut range)."""
    net = gross - background
    width = float(cuts[-1] - cuts[0])
    if net[0] <= 0 or width <= 0 or not math.isfinite(reach) or net[0] - net[-1] <= _band_noise(gross, background, 0, -1):
        return 0.0
    return max(float(cuts[0]) - reach, 0.0) / width


def shape_levels(tail: ReferenceTail, cut: float) -> tuple[float, ...]:
    """The one cut level of a shape reference: the valley's percentile in the mirrored negatives
    (their upper percentiles mirror the lowest outliers of the population, not its negatives)."""
    above = tail.top.size - int(np.searchsorted(tail.top, cut, "left"))
    return (100.0 * (1.0 - max(above, 1) / tail.n),)


def mirrored(values: np.ndarray, mode: float) -> np.ndarray:
    """A negative reference from a population's own shape: its events at or below the mode and
    their mirror images above it (negatives are near-symmetric about their mode on a logicle
    scale; positives lie only above it)."""
    low = np.asarray(values, dtype=float)
    low = low[low <= mode]
    return np.concatenate([low, 2.0 * mode - low])


def interval(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Bounds over rows and replicates: the lower quantile of each replicate's lowest value
    across rows (cut levels...), the upper quantile of its highest (``replicates``: rows x B)."""
    a = (1.0 - confidence) / 2.0
    lo = np.nanmin(replicates, axis=0)
    hi = np.nanmax(replicates, axis=0)
    return float(np.quantile(lo, a)), float(np.quantile(hi, 1.0 - a))
