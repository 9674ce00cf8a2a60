"""Step 6 of a sample: per population and fluorescence channel, the median, mean and robust CV
of compensated values (FlowJo's statistics), for populations.csv and statistics.csv.

Every number here is the same on any machine, thread count or batch size: compensation with
:mod:`gating.stable` (no BLAS), medians and percentiles by selection (exact), means by numpy's
fixed pairwise summation over the events in file order. Channels are spread over the sample's
threads; each channel's numbers are computed whole by one thread.
"""
from __future__ import annotations

import math
import threading

import numpy as np
import pandas as pd

from gating.preprocess import Compensation, compensated_channels
from gating.stable import inverse
from gating.strategy import Population

from .panel import ResolvedPanel, channels_of
from gating.parallel import in_background

#: Percentiles behind FlowJo's robust CV: rCV = 100 x (P84.13 - P15.87) / 2 / median.
RCV_LOW, RCV_HIGH = 15.87, 84.13


def fluorescence_by_channel(sample, comp: Compensation) -> np.ndarray:
    """Compensated fluorescence values, one contiguous float32 row per fluorescence channel."""
    raw = sample.get_events(source="raw")
    fluoro = list(sample.fluoro_indices)
    if comp.matrix is None:
        return np.ascontiguousarray(raw[:, fluoro].T, dtype=np.float32)
    det = [sample.get_channel_index(d) for d in comp.matrix.detectors]
    comped = compensated_channels(raw, det, inverse(np.asarray(comp.matrix.matrix, dtype=float)))
    if det == fluoro:
        return comped
    by_channel = np.empty((len(fluoro), raw.shape[0]), dtype=np.float32)
    for i, ch in enumerate(fluoro):
        by_channel[i] = comped[det.index(ch)] if ch in det else raw[:, ch]
    return by_channel


class StatisticsJob:
    """One sample's per-population statistics, started population by population (e.g. as each
    gate is done, while gating goes on): each channel is one task on the sample's threads."""

    def __init__(self, sample, comp: Compensation):
        self.sample, self.comp = sample, comp
        self._by_channel: np.ndarray | None = None
        self._tasks: dict[tuple, list] = {}

    def start(self, key: tuple, mask: np.ndarray) -> None:
        """Begin the statistics of the population ``key`` (name, parent path) with members ``mask``."""
        if self._by_channel is None:
            self._by_channel = fluorescence_by_channel(self.sample, self.comp)
        rows = np.flatnonzero(mask)
        self._tasks[key] = [in_background(selection_statistics, row, rows) for row in self._by_channel] \
            if rows.size else []

    def result(self, key: tuple, mask: np.ndarray) -> list[tuple[float, float, float]]:
        """(median, mean, rCV) per channel of a population (started now if it was not)."""
        if key not in self._tasks:
            self.start(key, mask)
        return [t.result() for t in self._tasks[key]]


def population_statistics(sample, comp: Compensation, pops: list[Population], rp: ResolvedPanel,
                          started: StatisticsJob | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(wide medians, long statistics) for every population (``started``: the job that began
    some populations' statistics while they were gated).

    The wide table has ``median_<role or $PnN>`` columns (populations.csv); the long one has a
    row per population and channel: count, % parent, % total, median, mean, rCV (statistics.csv).
    """
    fluoro = list(sample.fluoro_indices)
    role_of = {ch.pnn: role for role, ch in rp.channels.items()}
    chans = channels_of(sample, rp.panel)           # $PnS, or the panel's markers table
    pnn = [sample.pnn_labels[i] for i in fluoro]
    labels = [role_of.get(n, n) for n in pnn]
    markers = [chans[i].pns for i in fluoro]
    med, mean, rcv = (np.full((len(pops), len(fluoro)), np.nan) for _ in range(3))
    started = started or StatisticsJob(sample, comp)
    for i, p in enumerate(pops):
        per_channel = started.result((p.name, p.path), p.membership)
        if per_channel:
            med[i], mean[i], rcv[i] = np.array(per_channel).T
    long_rows = []
    n_total = sample.event_count
    for i, p in enumerate(pops):
        pct_parent = 100.0 * p.count / p.parent_count if p.parent_count else np.nan
        pct_total = 100.0 * p.count / n_total if n_total else np.nan
        for j in range(len(fluoro)):
            long_rows.append((p.name, p.parent, p.count, pct_parent, pct_total, pnn[j], markers[j], labels[j],
                              med[i, j], mean[i, j], rcv[i, j]))
    wide = pd.DataFrame(med, columns=[f"median_{x}" for x in labels])
    long = pd.DataFrame(long_rows, columns=["population", "parent", "count", "pct_parent", "pct_total", "channel",
                                            "marker", "role", "median", "mean", "rcv_pct"])
    return wide, long


_BUFFERS = threading.local()


def selection_statistics(values: np.ndarray, rows: np.ndarray) -> tuple[float, float, float]:
    """(median, mean, robust CV %) of ``values[rows]``: the mean by numpy's pairwise sum in file
    order, the median (mean of the two middle values when even) and the nearest-rank rCV
    percentiles by in-place selection in this thread's reusable buffer (no sort, no allocation)."""
    n = rows.size
    if n == 0:
        return math.nan, math.nan, math.nan
    buf = getattr(_BUFFERS, "buf", None)
    if buf is None or buf.size < n or buf.dtype != values.dtype:
        buf = _BUFFERS.buf = np.empty(max(n, 1), dtype=values.dtype)
    x = buf[:n]
    np.take(values, rows, out=x)
    mean = float(np.add.reduce(x, dtype=np.float64)) / n      # numpy's mean: the pairwise sum over n
    k = n // 2
    lo = min(max(math.ceil(RCV_LOW / 100 * n) - 1, 0), n - 1)
    hi = min(max(math.ceil(RCV_HIGH / 100 * n) - 1, 0), n - 1)
    x.partition(k)
    med = float(x[k])
    if n % 2 == 0:
        med = (float(x[:k].max()) + med) / 2.0
    v_lo = _rank(x, lo, k)
    v_hi = _rank(x, hi, k)
    rcv = 100.0 * (v_hi - v_lo) / 2.0 / abs(med) if med != 0 else math.nan
    return med, mean, rcv


def _rank(part: np.ndarray, r: int, k: int) -> float:
    """The r-th smallest of ``part`` (already partitioned around rank ``k``; partitions the
    relevant half in place)."""
    if r < k:
        part[:k].partition(r)
    elif r > k:
        part[k + 1:].partition(r - k - 1)
    return float(part[r])
