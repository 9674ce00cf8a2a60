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

from dataclasses import dataclass

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
    det, inv = _detectors_and_inverse(sample, comp)
    comped = compensated_channels(raw, det, inv)
    if det == fluoro:
        return comped
    by_channel = np.empty((len(fluoro), raw.shape[0]), dtype=np.float32)
    for i, ch in enumerate(fluoro):
        by_channel[i] = comped[det.index(ch)] if ch in det else raw[:, ch]
    return by_channel


def _detectors_and_inverse(sample, comp: Compensation) -> tuple[list[int], np.ndarray]:
    """The sample's column of each detector of ``comp``'s matrix, and the matrix's inverse."""
    return ([sample.get_channel_index(d) for d in comp.matrix.detectors],
            inverse(np.asarray(comp.matrix.matrix, dtype=float)))


#: A population derives its statistics from the sorted values of an ancestor holding at most
#: this share more events (:mod:`cytomnt.sample.orderstats`); populations holding at least
#: SORTED_SHARE of all events are sorted for their descendants to derive from.
DERIVE_MAX_REMOVED, SORTED_SHARE = 0.25, 0.5


@dataclass
class _Large:
    """A population holding at least SORTED_SHARE of the events: its per-channel sorted references
    once a descendant derives from it, False once it was done by selection, None until then."""

    key: tuple
    mask: np.ndarray
    count: int
    refs: list | bool | None = None


class StatisticsJob:
    """One sample's per-population statistics, started population by population (e.g. as each
    gate is done, while gating goes on): each channel is one task on the sample's threads (on
    one thread, queued until the first result). Populations must be started parents first
    (tree order), so descendants find their ancestors.

    A population holding at least SORTED_SHARE of the events waits for its first descendant: when
    that one derives from it, it is sorted (a sort costs two selections, and serves both); when not,
    it is done by selection at once, while gating goes on. A population with the very members of
    one started before (a quadrant equal to a rectangle, a Boolean gate equal to its operand) takes
    that one's numbers.
    """

    def __init__(self, sample, comp: Compensation):
        self.sample, self.comp = sample, comp
        self._by_channel: np.ndarray | None = None
        self._tasks: dict[tuple, list | None] = {}      # None: a large population not decided yet
        self._large: dict[tuple, _Large] = {}
        # With one thread nothing runs beside the gating: the tasks wait for the first result
        # and then go channel by channel, every population of a channel while its values are in
        # cache (a quarter faster than population by population between gates).
        self._later = sample_threads() <= 1
        self._queued: list[tuple] = []
        self._by_count: dict[int, list[tuple[tuple, np.ndarray]]] = {}   # count -> (key, mask) started
        self._twin_of: dict[tuple, tuple] = {}     # a population with the very members of one started before

    def _task(self, fn, *args):
        return Later(fn, args) if self._later else in_background(fn, *args)

    def start(self, key: tuple, mask: np.ndarray) -> None:
        """Begin the statistics of the population ``key`` (name, parent path) with members ``mask``."""
        if self._by_channel is None:
            self._by_channel = fluorescence_by_channel(self.sample, self.comp)
        n = int(np.count_nonzero(mask))
        twin = next((k for k, m in self._by_count.get(n, ()) if np.array_equal(m, mask)), None)
        if twin is not None:            # e.g. a quadrant equal to a rectangle: the same numbers, computed once
            self._twin_of[key] = twin
            if twin in self._large:
                self._large[key] = self._large[twin]
            return
        self._by_count.setdefault(n, []).append((key, mask))
        ref = self._reference(key, mask, n)
        if n == 0:
            self._tasks[key] = []
        elif ref is not None:
            removed = np.flatnonzero(ref.mask & ~mask)
            self._tasks[key] = [self._task(statistics_after_removal, row, removed, n, r)
                                for row, r in zip(self._by_channel, self._sorted_refs(ref))]
        elif n >= SORTED_SHARE * mask.size:
            self._large[key] = _Large(key, mask, n)
            self._tasks[key] = None
        else:
            self._tasks[key] = self._selections(mask)
        if self._later:
            self._queued.append(key)

    def _selections(self, mask: np.ndarray) -> list:
        rows = np.flatnonzero(mask)
        return [self._task(selection_statistics, row, rows) for row in self._by_channel]

    def _sorted_refs(self, large: "_Large") -> list:
        """The per-channel sorted references of a large population (made now if not yet)."""
        if large.refs is None:
            rows = np.flatnonzero(large.mask)
            large.refs = [self._task(sorted_reference, row, rows) for row in self._by_channel]
            self._tasks[large.key] = [self._task(statistics_of_sorted, r) for r in large.refs]
        return large.refs

    def _reference(self, key: tuple, mask: np.ndarray, n: int):
        """The nearest large ancestor when this population lies in it and lacks few of its events
        (to derive from), else None. A large ancestor still waiting is decided here: its first
        descendant either derives from it or, not deriving, has it done by selection now."""
        name, path = key
        for i in range(len(path) - 1, 0, -1):
            anc = self._large.get((path[i], tuple(path[:i])))
            if anc is None:
                continue
            if anc.refs is not False and anc.count - n <= DERIVE_MAX_REMOVED * anc.count \
                    and not np.any(mask & ~anc.mask):
                return anc
            self._settle(anc)
            return None
        return None

    def _settle(self, large: "_Large") -> None:
        """A large population no descendant derived from: done by selection (no longer derivable from)."""
        if large.refs is None:
            large.refs = False
            self._tasks[large.key] = self._selections(large.mask)

    def start_all(self, populations: list[tuple[tuple, np.ndarray]]) -> None:
        """Start every population (key, mask) not started yet, in tree order: before any result, so
        each takes the same route as when all were started while gating."""
        for key, mask in populations:
            if key not in self._tasks and key not in self._twin_of:
                self.start(key, mask)

    def result(self, key: tuple, mask: np.ndarray) -> list[tuple[float, float, float]]:
        """(median, mean, rCV) per channel of a population (started now if it was not)."""
        if key not in self._tasks and key not in self._twin_of:
            self.start(key, mask)
        key = self._twin_of.get(key, key)
        for large in self._large.values():
            self._settle(large)
        if self._later and self._queued:            # channel by channel, populations in gating order
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
    started.start_all([((p.name, p.path), p.membership) for p in pops])
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
