"""Acquisition quality before gating: time segments with an abnormal flow rate (a clog and the
burst when it clears, a run that stopped) and events pinned at a detector's top (saturated) or
absurdly below zero on scatter, removed as ordinary Gating-ML gates so every cleaned tube can
be re-gated and checked (flowAI/PeacoQC's idea, in the open).

The flow rate is the number of events per time bin; a bin is anomalous when its count lies
more than ``k`` robust SD (median absolute deviation, at least Poisson's square root) from the
median bin. The time segments between anomalous bins are kept.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Robust SDs from the median bin count that make a bin anomalous.
RATE_K = 5.0
#: Events per time bin aimed at (bins between 10 and 400).
EVENTS_PER_BIN = 250


@dataclass(frozen=True)
class TimeQc:
    """Kept time segments [start, end) and what was found."""

    segments: list[tuple[float, float]]
    bins: int
    anomalous_bins: int
    median_rate: float


def time_segments(t: np.ndarray, k: float = RATE_K, signal: np.ndarray | None = None) -> TimeQc:
    """Time segments with a normal flow rate and, given a ``signal`` (e.g. FSC), a stable signal:
    a bin whose median signal lies more than ``k`` robust SD from the bins' median is anomalous
    too (a bubble, a drifting laser). The whole run when nothing is anomalous."""
    t = np.asarray(t, dtype=float)
    lo, hi = float(t.min()), float(t.max())
    nb = int(np.clip(t.size // EVENTS_PER_BIN, 10, 400))
    edges = np.linspace(lo, hi, nb + 1)
    edges[-1] = np.nextafter(hi, np.inf)            # the last event falls inside the last bin
    counts, _ = np.histogram(t, bins=edges)
    busy = counts[counts > 0]
    med = float(np.median(busy)) if busy.size else 0.0
    sd = max(1.4826 * float(np.median(np.abs(busy - med))) if busy.size else 0.0, np.sqrt(max(med, 1.0)))
    bad = (counts > med + k * sd) | ((counts > 0) & (counts < med - k * sd))
    if signal is not None:
        bad |= _unstable(t, np.asarray(signal, dtype=float), edges, counts, k)
    segments, start = [], None
    for i in range(nb):
        if not bad[i] and counts[i] > 0 and start is None:
            start = edges[i]
        if (bad[i] or counts[i] == 0) and start is not None:
            segments.append((float(start), float(edges[i])))
            start = None
    if start is not None:
        segments.append((float(start), float(edges[-1])))
    return TimeQc(segments, nb, int(bad.sum()), med)


def _unstable(t: np.ndarray, signal: np.ndarray, edges: np.ndarray, counts: np.ndarray, k: float) -> np.ndarray:
    """Bins whose median signal is an outlier among the bins' medians (bins of 20+ events)."""
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(counts) - 1)
    order = np.argsort(which, kind="stable")
    splits = np.split(signal[order], np.cumsum(counts)[:-1])
    meds = np.array([np.median(x) if x.size >= 20 else np.nan for x in splits])
    ok = np.isfinite(meds)
    if ok.sum() < 5:
        return np.zeros(len(counts), dtype=bool)
    centre = float(np.median(meds[ok]))
    spread = 1.4826 * float(np.median(np.abs(meds[ok] - centre)))
    # a bin's median is precise to about the events' spread / sqrt(n): never flag within that
    noise = np.array([1.2533 * np.std(x) / np.sqrt(x.size) if x.size >= 20 else np.inf for x in splits])
    return ok & (np.abs(meds - centre) > k * np.maximum(spread, noise))


def saturation_bounds(events: np.ndarray, ranges: list[float | None], scatter: set[int]) -> dict[int, tuple]:
    """Per channel index, (min, max) bounds that drop saturated events: values at or above the
    channel's top (``$PnR`` - 1), and scatter values below minus its range (artifacts). Only
    channels that have such events get a bound."""
    out = {}
    for j, r in enumerate(ranges):
        if r is None or not np.isfinite(r) or r <= 1:
            continue
        v = events[:, j]
        top = r - 1.0
        lo = -r if j in scatter else None
        hits = (v >= top) | ((v < lo) if lo is not None else False)
        if np.any(hits):
            out[j] = (lo if (lo is not None and np.any(v < lo)) else None, top)
    return out
