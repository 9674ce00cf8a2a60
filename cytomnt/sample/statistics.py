"""Step 6 of a sample: per population and fluorescence channel, the median, mean and robust CV
of compensated values (FlowJo's statistics), for populations.csv and statistics.csv.

Every number here is the same on any machine, thread count or batch size: compensation with
:mod:`gating.stable` (no BLAS), medians and percentiles as values picked by comparisons only
(selection, or an ancestor's sorted values minus the events a population lacks:
:mod:`cytomnt.sample.orderstats`), means by fixed-order float64 sums. Each population's numbers in
each channel are one task: on several threads they start as the population's gate is done; on
one thread (a batch worker) they run after the gating, channel by channel.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gating.formats.strategy import Population
from gating.parallel import Later, in_background, sample_threads
from gating.preprocess import Compensation, compensated_channels
from gating.stable import inverse

from cytomnt.sample.frames import Columns
from cytomnt.sample.orderstats import (RCV_HIGH, RCV_LOW, selection_statistics, sorted_reference,  # noqa: F401 - RCV_*: API
                         statistics_after_removal, statistics_of_sorted)
from cytomnt.inputs.panel import ResolvedPanel, channels_of


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


#: A population derives its statistics from the sorted values of an ancestor holding at most
#: this share more events (:mod:`cytomnt.sample.orderstats`); populations holding at least
#: SORTED_SHARE of all events are sorted for their descendants to derive from.
DERIVE_MAX_REMOVED, SORTED_SHARE = 0.25, 0.5


class StatisticsJob:
    """One sample's per-population statistics, started population by population (e.g. as each
    gate is done, while gating goes on): each channel is one task on the sample's threads (on
    one thread, queued until the first result). Populations must be started parents first
    (tree order), so descendants find their ancestors."""

    def __init__(self, sample, comp: Compensation):
        self.sample, self.comp = sample, comp
        self._by_channel: np.ndarray | None = None
        self._tasks: dict[tuple, list] = {}
        self._sorted: dict[tuple, tuple] = {}       # key -> (mask, count, per-channel sorted references)
        # With one thread nothing runs beside the gating: the tasks wait for the first result
        # and then go channel by channel, every population of a channel while its values are in
        # cache (a quarter faster than population by population between gates).
        self._later = sample_threads() <= 1
        self._queued: list[tuple] = []

    def _task(self, fn, *args):
        return Later(fn, args) if self._later else in_background(fn, *args)

    def start(self, key: tuple, mask: np.ndarray) -> None:
        """Begin the statistics of the population ``key`` (name, parent path) with members ``mask``."""
        if self._by_channel is None:
            self._by_channel = fluorescence_by_channel(self.sample, self.comp)
        n = int(np.count_nonzero(mask))
        ref = self._reference(key, mask, n)
        if n == 0:
            self._tasks[key] = []
        elif ref is not None:
            removed = np.flatnonzero(ref[0] & ~mask)
            self._tasks[key] = [self._task(statistics_after_removal, row, removed, n, r)
                                for row, r in zip(self._by_channel, ref[2])]
        elif n >= SORTED_SHARE * mask.size:
            rows = np.flatnonzero(mask)
            refs = [self._task(sorted_reference, row, rows) for row in self._by_channel]
            self._sorted[key] = (mask, n, refs)
            self._tasks[key] = [self._task(statistics_of_sorted, r) for r in refs]
        else:
            rows = np.flatnonzero(mask)
            self._tasks[key] = [self._task(selection_statistics, row, rows) for row in self._by_channel]
        if self._later:
            self._queued.append(key)

    def _reference(self, key: tuple, mask: np.ndarray, n: int):
        """The nearest sorted ancestor this population lies in and lacks few events of, or None."""
        name, path = key
        for i in range(len(path) - 1, 0, -1):
            anc = self._sorted.get((path[i], tuple(path[:i])))
            if anc is not None:
                a_mask, a_n, _ = anc
                if a_n - n <= DERIVE_MAX_REMOVED * a_n and not np.any(mask & ~a_mask):
                    return anc
                return None
        return None

    def result(self, key: tuple, mask: np.ndarray) -> list[tuple[float, float, float]]:
        """(median, mean, rCV) per channel of a population (started now if it was not)."""
        if key not in self._tasks:
            self.start(key, mask)
        if self._queued:                            # channel by channel, populations in gating order
            queued, self._queued = [self._tasks[k] for k in self._queued], []
            for channel in range(len(self._by_channel)):
                for tasks in queued:
                    if tasks:
                        tasks[channel].result()
        return [t.result() for t in self._tasks[key]]


def statistics_columns(sample, comp: Compensation, pops: list[Population], rp: ResolvedPanel,
                       started: StatisticsJob | None = None) -> tuple[Columns, Columns]:
    """(wide medians, long statistics) of every population, as columns (``started``: the job
    that began some populations' statistics while they were gated).

    Wide: a ``median_<role or $PnN>`` column per fluorescence channel, a row per population
    (populations.csv). Long: a row per population and channel: population, parent, count,
    % parent, % total, channel, marker, role, median, mean, rCV (statistics.csv).
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
    k = len(fluoro)
    wide = [(f"median_{x}", med[:, j].copy()) for j, x in enumerate(labels)]
    long = [("population", [p.name for p in pops for _ in range(k)]),
            ("parent", [p.parent for p in pops for _ in range(k)]),
            *((name, np.repeat(values, k)) for name, values in count_columns(pops, int(sample.event_count))),
            ("channel", pnn * len(pops)), ("marker", markers * len(pops)), ("role", labels * len(pops)),
            ("median", med.ravel()), ("mean", mean.ravel()), ("rcv_pct", rcv.ravel())]
    return wide, long


def count_columns(pops: list[Population], total: int) -> Columns:
    """``count, pct_parent, pct_total`` of each population (percent 0-100; NaN of an empty parent)."""
    return [("count", np.array([p.count for p in pops], dtype=np.int64)),
            ("pct_parent", np.array([100.0 * p.count / p.parent_count if p.parent_count else np.nan for p in pops],
                                    dtype=float)),
            ("pct_total", np.array([100.0 * p.count / total if total else np.nan for p in pops], dtype=float))]


def population_statistics(sample, comp: Compensation, pops: list[Population], rp: ResolvedPanel,
                          started: StatisticsJob | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`statistics_columns` as DataFrames (wide, long)."""
    wide, long = statistics_columns(sample, comp, pops, rp, started)
    return (pd.DataFrame({name: values for name, values in wide}, columns=[name for name, _ in wide]),
            pd.DataFrame({name: values for name, values in long}, columns=[name for name, _ in long]))
