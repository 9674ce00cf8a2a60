"""Data-driven cut finders on one dimension (openCyto's mindensity/tailgate ideas).

Every finder works on values already on the scale the gate will use (transformed for
fluorescence, linear for scatter) and returns a :class:`Cut`: the threshold and how it
was found, so a fallback is never silent.
"""
from __future__ import annotations

import math

from dataclasses import dataclass

import numpy as np

#: Robust standard deviations between a population's mode and a tail cut.
DEFAULT_TAIL_SDS = 4.0


@dataclass(frozen=True)
class Cut:
    """A threshold and its provenance. ``method``: ``valley`` (between two populations), ``tail``
    (no valley: the expected second population is rare or absent; flagged), ``edge`` (the
    edge of the only population, the normal case e.g. for singlets), ``empty``, ``control``,
    ``percentile``, ``learned``."""

    value: float
    method: str
    detail: str = ""


@dataclass(frozen=True)
class Density:
    """A smoothed histogram density on a regular grid."""

    grid: np.ndarray
    dens: np.ndarray

    def peaks(self, min_prominence: float = 0.04) -> np.ndarray:
        """Indices of peaks whose prominence is at least ``min_prominence`` of the maximum.

        The density is padded with zeros so that a population piled against either end
        of the range still counts as a peak.
        """
        from scipy.signal import find_peaks      # 0.1 s to import: only when the data place a gate
        padded = np.concatenate([[0.0], self.dens, [0.0]])
        idx, _ = find_peaks(padded, prominence=min_prominence * padded.max())
        return idx - 1

    def valley(self, i: int, j: int) -> int:
        """Index of the lowest density strictly between grid indices i < j."""
        seg = self.dens[i + 1:j]
        return i + 1 + int(np.argmin(seg)) if seg.size else i


def density(x: np.ndarray, bins: int = 256, bandwidth: float | None = None,
            lo: float | None = None, hi: float | None = None) -> Density:
    """Histogram density smoothed by a Gaussian kernel (Silverman bandwidth by default)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if lo is None:
        lo = float(np.quantile(x, 0.001))
    if hi is None:
        hi = float(np.quantile(x, 0.999))
    if hi <= lo:
        hi = lo + 1e-6
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    grid = 0.5 * (edges[1:] + edges[:-1])
    step = edges[1] - edges[0]
    if bandwidth is None:
        iqr = np.subtract(*np.quantile(x, [0.75, 0.25]))
        sd = min(np.std(x), iqr / 1.349) if iqr > 0 else np.std(x)
        bandwidth = 0.9 * max(sd, step) * max(x.size, 2) ** (-0.2)
    from scipy.ndimage import correlate1d       # 0.2 s to import: only where a template finds gates
    smoothed = correlate1d(counts.astype(float), gaussian_kernel(max(bandwidth / step, 1.0)), mode="constant")
    return Density(grid, smoothed / max(smoothed.sum() * step, 1e-300))


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Normalised Gaussian weights out to ``truncate`` SD (as scipy's ``gaussian_filter1d``).

    Built with ``math.exp`` one weight at a time and summed in a fixed order: numpy's vectorised
    ``exp`` has its own AVX-512 code, so its last bits (and a cut found on the smoothed density)
    could differ between machines.
    """
    radius = int(truncate * sigma + 0.5)
    weights = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
    total = math.fsum(weights)
    return np.array([w / total for w in weights])


def robust_sd(x: np.ndarray, mode: float, side: str) -> float:
    """Spread of a population from its mode, using only the half on ``side`` ('low'/'high') (fallback of :func:`peak_sd`).

    The other half may be contaminated by a neighbouring population, so it is ignored.
    """
    half = x[x <= mode] if side == "low" else x[x >= mode]
    if half.size < 3:
        return float(np.std(x)) if x.size > 1 else 0.0
    return float(np.sqrt(np.mean((half - mode) ** 2)))


def peak_sd(d: Density, i: int, side: str) -> float | None:
    """Spread of the population peaking at grid index ``i``, from its half width at half maximum
    on ``side`` ('low' or 'high'): SD = HWHM / 1.1774 for a Gaussian. Robust to a neighbouring
    population on the other side and to long tails; None when the density never halves."""
    half = d.dens[i] / 2.0
    step = -1 if side == "low" else 1
    j = i
    while 0 <= j + step < d.dens.size and d.dens[j + step] > half:
        j += step
    k = j + step
    if not 0 <= k < d.dens.size:
        return None
    # linear interpolation between j (above half) and k (at or below half)
    y0, y1 = d.dens[j], d.dens[k]
    t = (y0 - half) / (y0 - y1) if y0 != y1 else 0.0
    x = d.grid[j] + t * (d.grid[k] - d.grid[j])
    return abs(float(x - d.grid[i])) / 1.1774


def population_sd(x: np.ndarray, d: Density, i: int, side: str) -> float:
    sd = peak_sd(d, i, side)
    return sd if sd is not None and sd > 0 else robust_sd(x, float(d.grid[i]), side)


def positive_cut(x: np.ndarray, zero: float, tail_sds: float = DEFAULT_TAIL_SDS,
                 min_prominence: float = 0.04, negative_span: float = 0.3) -> Cut:
    """Cut between a marker's negative population (near ``zero``) and its positive cells.

    ``zero`` is where a zero signal sits on this scale (e.g. logicle(0)). If the lowest
    peak lies within ``negative_span`` of it (0.3 on FlowKit's 0-1 logicle scale with M=4.5
    is 1.35 decades: unstained cells with their autofluorescence), that peak is the negative population: the cut
    is the density valley to the next peak, or, with no second peak (few or no positive
    cells), the negative mode plus ``tail_sds`` robust SDs. If no peak is near zero (every
    cell expresses the marker), the cut lies ``tail_sds`` SDs below the lowest peak.
    """
    x = np.asarray(x, dtype=float)
    if x.size < 3:
        return Cut(zero + negative_span, "empty", f"{x.size} events")
    d = density(x)
    peaks = d.peaks(min_prominence)
    if peaks.size == 0:
        peaks = np.array([int(np.argmax(d.dens))])
    low = peaks[0]
    if d.grid[low] - zero <= negative_span:
        if peaks.size >= 2:
            j = peaks[1]
            v = d.valley(low, j)
            return Cut(float(d.grid[v]), "valley", f"between {d.grid[low]:.3g} and {d.grid[j]:.3g}")
        mode = float(d.grid[low])
        sd = population_sd(x, d, low, "high")
        return Cut(mode + tail_sds * sd, "tail", f"negative mode {mode:.3g} + {tail_sds} x {sd:.3g}")
    mode = float(d.grid[low])
    sd = population_sd(x, d, low, "low")
    return Cut(max(mode - tail_sds * sd, zero + negative_span), "edge",
               f"all positive: lowest mode {mode:.3g} - {tail_sds} x {sd:.3g}")


def low_population_cut(x: np.ndarray, tail_sds: float = DEFAULT_TAIL_SDS, min_prominence: float = 0.04) -> Cut:
    """Upper edge of the lowest population (e.g. lymphocytes on SSC): valley to the next peak, else a tail."""
    x = np.asarray(x, dtype=float)
    if x.size < 3:
        return Cut(float(np.max(x)) + 1 if x.size else 0.0, "empty", f"{x.size} events")
    d = density(x)
    peaks = d.peaks(min_prominence)
    if peaks.size >= 2:
        v = d.valley(peaks[0], peaks[1])
        return Cut(float(d.grid[v]), "valley", f"between {d.grid[peaks[0]]:.3g} and {d.grid[peaks[1]]:.3g}")
    # one population: nothing to exclude; a tail cut would only clip its larger cells (blasts)
    return Cut(float(np.max(x)) + 1.0, "edge", "single population: no upper cut")


def debris_cut(fsc: np.ndarray, debris_max_frac: float = 0.4, tail_sds: float = DEFAULT_TAIL_SDS,
               min_prominence: float = 0.02, debris_next_frac: float = 0.25) -> Cut:
    """Lower FSC edge of intact cells: the valley above a debris population, else a tail.

    Debris is a population whose mode lies below ``debris_max_frac`` of the FSC of the
    most populous peak *and* below ``debris_next_frac`` of the next population up (particles
    much smaller than any cell). Lymphocytes are never taken for debris, even beside
    granulocytes far up the FSC scale.
    """
    x = np.asarray(fsc, dtype=float)
    if x.size < 3:
        return Cut(0.0, "empty", f"{x.size} events")
    d = density(x, lo=min(0.0, float(x.min())))
    peaks = d.peaks(min_prominence)
    if peaks.size == 0:
        peaks = np.array([int(np.argmax(d.dens))])
    main = peaks[np.argmax(d.dens[peaks])]
    low = []
    for i, p in enumerate(peaks[:-1]):
        if p < main and d.grid[p] < debris_max_frac * d.grid[main] and d.grid[p] < debris_next_frac * d.grid[peaks[i + 1]]:
            low = list(peaks[:i + 1])
    cells = [p for p in peaks if p not in low] or [main]
    if low:
        v = d.valley(low[-1], cells[0])
        return Cut(float(d.grid[v]), "valley", f"above debris at {d.grid[low[-1]]:.3g}")
    first = cells[0]
    mode = float(d.grid[first])
    sd = population_sd(x, d, int(first), "low")
    return Cut(max(mode - tail_sds * sd, 0.0), "edge", f"no debris peak: mode {mode:.3g} - {tail_sds} x {sd:.3g}")


def ratio_band(area: np.ndarray, height: np.ndarray, tail_sds: float = DEFAULT_TAIL_SDS,
               min_prominence: float = 0.04) -> tuple[Cut, Cut]:
    """Lower and upper bound of the height/area ratio of single cells (doublets sit lower).

    The main mode is the singlets; the lower bound is the valley to a doublet peak below it
    or a tail from its upper half (doublets only contaminate the lower half).
    """
    ok = area > 0
    r = height[ok] / area[ok]
    r = r[np.isfinite(r)]
    if r.size < 3:
        return Cut(0.0, "empty"), Cut(10.0, "empty")
    d = density(r, lo=float(np.quantile(r, 0.005)), hi=float(np.quantile(r, 0.995)))
    peaks = d.peaks(min_prominence)
    main = peaks[np.argmax(d.dens[peaks])] if peaks.size else int(np.argmax(d.dens))
    mode = float(d.grid[main])
    sd = population_sd(r, d, int(main), "high")
    below = [p for p in peaks if p < main]
    if below:
        v = d.valley(below[-1], main)
        lo = Cut(max(float(d.grid[v]), mode - tail_sds * 2 * sd), "valley", f"doublets at ratio {d.grid[below[-1]]:.3g}")
    else:       # no doublet peak: a wide band, as large (activated) single cells sit lower
        lo = Cut(mode - 2 * tail_sds * sd, "edge", f"singlet ratio {mode:.3g} - {2 * tail_sds} x {sd:.3g}")
    hi = Cut(mode + 2 * tail_sds * sd, "edge", f"singlet ratio {mode:.3g} + {2 * tail_sds} x {sd:.3g}")
    return lo, hi


def percentile_cut(x: np.ndarray, q: float) -> Cut:
    """The ``q``-th percentile (0-100) of ``x``: a cut taken from a negative-control tube."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        raise ValueError("cannot take a percentile cut from an empty population")
    return Cut(float(np.percentile(x, q)), "control", f"{q}th percentile of {x.size} control events")
