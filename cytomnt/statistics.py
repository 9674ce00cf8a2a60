"""Step 6 of a sample: per population and fluorescence channel, the median, mean and robust CV
of compensated values (FlowJo's statistics), for populations.csv and statistics.csv.

Every number here is the same on any machine, thread count or batch size: compensation with
:mod:`gating.stable` (no BLAS), medians and percentiles by selection (exact), means by numpy's
fixed pairwise summation over the events in file order.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gating.preprocess import Compensation
from gating.stable import inverse, matmul
from gating.strategy import Population

from .panel import ResolvedPanel, channels_of

#: Percentiles behind FlowJo's robust CV: rCV = 100 x (P84.13 - P15.87) / 2 / median.
RCV_LOW, RCV_HIGH = 15.87, 84.13


def fluorescence_by_channel(sample, comp: Compensation) -> np.ndarray:
    """Compensated fluorescence values, one contiguous float32 row per fluorescence channel."""
    raw = sample.get_events(source="raw")
    fluoro = list(sample.fluoro_indices)
    by_channel = np.ascontiguousarray(raw[:, fluoro].T, dtype=np.float32)
    if comp.matrix is not None:
        det = [sample.get_channel_index(d) for d in comp.matrix.detectors]
        pos = [fluoro.index(d) for d in det]
        inv = inverse(np.asarray(comp.matrix.matrix, dtype=float))
        by_channel[pos] = matmul(raw[:, det], inv, out_dtype=np.float32).T
    return by_channel


def population_statistics(sample, comp: Compensation, pops: list[Population],
                          rp: ResolvedPanel) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(wide medians, long statistics) for every population.

    The wide table has ``median_<role or $PnN>`` columns (populations.csv); the long one has a
    row per population and channel: count, % parent, % total, median, mean, rCV (statistics.csv).
    """
    by_channel = fluorescence_by_channel(sample, comp)
    fluoro = list(sample.fluoro_indices)
    role_of = {ch.pnn: role for role, ch in rp.channels.items()}
    chans = channels_of(sample, rp.panel)           # $PnS, or the panel's markers table
    pnn = [sample.pnn_labels[i] for i in fluoro]
    labels = [role_of.get(n, n) for n in pnn]
    markers = [chans[i].pns for i in fluoro]
    medians, long_rows = [], []
    n_total = sample.event_count
    for p in pops:
        st = row_statistics(np.compress(p.membership, by_channel, axis=1))   # compress: ~15x a fancy index
        medians.append(st["median"])
        pct_parent = 100.0 * p.count / p.parent_count if p.parent_count else np.nan
        pct_total = 100.0 * p.count / n_total if n_total else np.nan
        for j in range(len(fluoro)):
            long_rows.append((p.name, p.parent, p.count, pct_parent, pct_total, pnn[j], markers[j], labels[j],
                              st["median"][j], st["mean"][j], st["rcv"][j]))
    wide = pd.DataFrame(np.array(medians).reshape(len(pops), len(fluoro)), columns=[f"median_{x}" for x in labels])
    long = pd.DataFrame(long_rows, columns=["population", "parent", "count", "pct_parent", "pct_total", "channel",
                                            "marker", "role", "median", "mean", "rcv_pct"])
    return wide, long


def row_statistics(x: np.ndarray) -> dict:
    """Median (mean of the two middle values when even), mean and robust CV of each row, from one
    selection pass (nearest-rank percentiles for the rCV)."""
    nrow, n = x.shape
    if n == 0:
        nan = np.full(nrow, np.nan)
        return {"median": nan, "mean": nan, "rcv": nan}
    k = n // 2
    lo = min(max(int(np.ceil(RCV_LOW / 100 * n)) - 1, 0), n - 1)
    hi = min(max(int(np.ceil(RCV_HIGH / 100 * n)) - 1, 0), n - 1)
    # one selection per rank: a partition around the median, then each percentile within its own
    # half (numpy's multi-kth partition costs several times one)
    part = np.partition(x, k, axis=1)
    med = part[:, k].astype(float)
    if n % 2 == 0:
        med = (part[:, :k].max(axis=1).astype(float) + med) / 2.0
    v_lo = _rank(part, lo, k)
    v_hi = _rank(part, hi, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        rcv = np.where(med != 0, 100.0 * (v_hi - v_lo) / 2.0 / np.abs(med), np.nan)
    return {"median": med, "mean": x.mean(axis=1, dtype=np.float64), "rcv": rcv}


def _rank(part: np.ndarray, r: int, k: int) -> np.ndarray:
    """The r-th smallest of each row of ``part`` (already partitioned around rank ``k``)."""
    if r == k:
        return part[:, k].astype(float)
    if r < k:
        return np.partition(part[:, :k], r, axis=1)[:, r].astype(float)
    return np.partition(part[:, k + 1:], r - k - 1, axis=1)[:, r - k - 1].astype(float)
