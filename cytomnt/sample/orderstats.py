"""Exact median, mean and nearest-rank rCV percentiles of one population in one channel (FlowJo's
statistics), by the cheapest exact route:

- by in-place selection of the population's values (three single-rank partitions);
- from the *sorted* values of an ancestor holding few more events: the population is the
  ancestor minus a small removed set, so its k-th value is the ancestor's (k + j)-th, j being
  the removed values that sort before it (found by a binary search, ties handled by removing the
  first occurrences of each removed value). A gating tree's first populations (acquired,
  singlets, live, CD45+) hold nearly every event; they cost one sort, not one selection each.

Every route gives the same medians and percentiles (they are values of the data, chosen by
comparisons only); means are numpy's pairwise sum over the events, or an ancestor's sum minus
the removed values' (equal to ~1e-15 relative).
"""
from __future__ import annotations

import functools
import math
import threading
from typing import NamedTuple

import numpy as np

#: Percentiles behind FlowJo's robust CV: rCV = 100 x (P84.13 - P15.87) / 2 / median.
RCV_LOW, RCV_HIGH = 15.87, 84.13

_BUFFERS = threading.local()


def ranks(n: int) -> tuple[int, int, int]:
    """(median rank k, P15.87 rank, P84.13 rank) of n values, 0-based nearest-rank."""
    lo = min(max(math.ceil(RCV_LOW / 100 * n) - 1, 0), n - 1)
    hi = min(max(math.ceil(RCV_HIGH / 100 * n) - 1, 0), n - 1)
    return n // 2, lo, hi


def _summary(n: int, total: float, kth) -> tuple[float, float, float]:
    """(median, mean, rCV %) from the sum and a k-th-smallest function."""
    k, lo, hi = ranks(n)
    med = kth(k)
    if n % 2 == 0:
        med = (kth(k - 1) + med) / 2.0
    rcv = 100.0 * (kth(hi) - kth(lo)) / 2.0 / abs(med) if med != 0 else math.nan
    return med, total / n, rcv


#: Float type -> (integer type of its width, the mask that orders its bit patterns as the floats).
_KEYS = {np.dtype(np.float32): (np.int32, np.int32(0x7FFFFFFF)),
         np.dtype(np.float64): (np.int64, np.int64(0x7FFFFFFFFFFFFFFF))}


def as_keys(x: np.ndarray) -> np.ndarray:
    """``x`` (float32/64, finite) turned in place into integers that order as the floats do, -0.0
    just before +0.0 (a negative float's bits but the sign flipped): integer selection and sorting
    are twice as fast as float ones, and the values come back exactly (:func:`from_key`; turning
    keys again gives the floats' bits back). Done in cache-sized chunks with one small buffer."""
    itype, mask = _KEYS[x.dtype]
    keys = x.view(itype)
    shift = keys.dtype.itemsize * 8 - 1
    sign = np.empty(min(keys.size, _CHUNK), dtype=itype)
    for start in range(0, keys.size, _CHUNK):
        part = keys[start:start + _CHUNK]
        t = sign[:part.size]
        np.right_shift(part, shift, out=t)                 # -1 for negatives, else 0
        np.bitwise_and(t, mask, out=t)
        np.bitwise_xor(part, t, out=part)
    return keys


#: Elements turned into keys per step (the step's buffer stays in the core's cache).
_CHUNK = 1 << 15


def from_key(key, dtype: np.dtype) -> float:
    """The float whose :func:`as_keys` integer is ``key``."""
    itype, mask = _KEYS[dtype]
    k = itype(key)
    return float((k ^ mask if k < 0 else k).view(dtype))


def element_value(dtype: np.dtype):
    """How one selected or sorted element of ``dtype`` values becomes its float: a key back
    (:func:`from_key`) for float32/64, else ``float``."""
    return functools.partial(from_key, dtype=np.dtype(dtype)) if np.dtype(dtype) in _KEYS else float


def selection_statistics(values: np.ndarray, rows: np.ndarray) -> tuple[float, float, float]:
    """(median, mean, robust CV %) of ``values[rows]`` by in-place selection in this thread's
    reusable buffer (no sort, no allocation); the mean by numpy's pairwise sum in file order.
    Float32/64 values are selected as order-preserving integers (:func:`as_keys`)."""
    n = rows.size
    if n == 0:
        return math.nan, math.nan, math.nan
    buf = getattr(_BUFFERS, "buf", None)
    if buf is None or buf.size < n or buf.dtype != values.dtype:
        buf = _BUFFERS.buf = np.empty(max(n, 1), dtype=values.dtype)
    x = buf[:n]
    np.take(values, rows, out=x)
    total = float(np.add.reduce(x, dtype=np.float64))          # numpy's mean is this sum over n
    value = element_value(x.dtype)
    if x.dtype in _KEYS:
        x = as_keys(x)
    k = n // 2
    x.partition(k)

    def kth(r: int) -> float:               # ranks within the half the median partition left them in
        if r == k:
            return value(x[k])
        if r == k - 1:
            return value(x[:k].max())
        if r < k:
            x[:k].partition(r)
        else:
            x[k + 1:].partition(r - k - 1)
        return value(x[r])
    return _summary(n, total, kth)


class SortedReference(NamedTuple):
    """A population's values sorted (as :func:`as_keys` integers for float32/64 values: an
    integer sort is twice as fast), their pairwise sum in file order, and the values' dtype."""

    elements: np.ndarray
    total: float
    dtype: np.dtype

    def value(self, element) -> float:
        """The float of one of ``elements``."""
        return element_value(self.dtype)(element)


def sorted_reference(values: np.ndarray, rows: np.ndarray) -> SortedReference:
    """The sorted values of ``values[rows]`` and their pairwise sum in file order: what a
    population's descendants derive their statistics from."""
    x = np.take(values, rows)
    total = float(np.add.reduce(x, dtype=np.float64))
    if x.dtype in _KEYS:
        x = as_keys(x)
    x.sort()
    return SortedReference(x, total, values.dtype)


def _value(ref) -> SortedReference:
    """A reference, or the result of the Future computing it."""
    return ref.result() if hasattr(ref, "result") else ref


def statistics_of_sorted(ref) -> tuple[float, float, float]:
    """(median, mean, rCV %) of a reference made by :func:`sorted_reference` (or a Future of one)."""
    ref = _value(ref)
    return _summary(ref.elements.size, ref.total, lambda r: ref.value(ref.elements[r]))


def statistics_after_removal(values: np.ndarray, removed_rows: np.ndarray, n: int, ref) -> tuple[float, float, float]:
    """(median, mean, rCV %) of an ancestor's events minus ``removed_rows`` (``n`` events left),
    from the ancestor's sorted reference (or a Future of it). The removed values' sum runs over
    them sorted, as it always has (the same bits)."""
    ref = _value(ref)
    gone = np.take(values, removed_rows)
    if gone.dtype in _KEYS:
        gone = as_keys(gone)
        gone.sort()
        gone_values = as_keys(gone.view(values.dtype).copy()).view(values.dtype)   # keys -> floats: the same flip
    else:
        gone.sort()
        gone_values = gone
    k, lo, hi = ranks(n)
    wanted = sorted({k, lo, hi} | ({k - 1} if n % 2 == 0 else set()))
    found = dict(zip(wanted, map(ref.value, kths_after_removal(ref.elements, gone, wanted))))
    return _summary(n, ref.total - float(np.add.reduce(gone_values, dtype=np.float64)), found.__getitem__)


#: Removed values probed at once when locating a rank among them (see kths_after_removal).
_GRID = 64


def kths_after_removal(s: np.ndarray, gone: np.ndarray, wanted: list[int]) -> list:
    """The r-th smallest (0-based) element of the multiset ``s`` (sorted) minus ``gone`` (sorted,
    a sub-multiset of ``s``), for each r of ``wanted``.

    Removing, for each removed value, its first occurrences in ``s``, the i-th removed element has
    ``before_i = searchsorted(s, g_i) - searchsorted(gone, g_i)`` kept elements before it (non-
    decreasing in i). The r-th kept element is ``s[r + j]``, j being the number of removed
    elements with ``before_i <= r``: located on a grid of every 64th removed element, then
    counted exactly within one grid cell.
    """
    d = gone.size
    if d == 0:
        return [s[r] for r in wanted]
    grid = np.arange(0, d, _GRID)
    coarse = s.searchsorted(gone[grid]) - gone.searchsorted(gone[grid])
    out = []
    for r in wanted:
        c = int(coarse.searchsorted(r, side="right"))
        first = int(grid[c - 1]) if c > 0 else 0
        last = int(grid[c]) if c < grid.size else d
        cell = gone[first:last]
        before = s.searchsorted(cell) - gone.searchsorted(cell)
        out.append(s[r + first + int(before.searchsorted(r, side="right"))])
    return out


def kth_after_removal(s: np.ndarray, gone: np.ndarray, r: int) -> float:
    """The r-th smallest of ``s`` minus ``gone`` (both sorted floats): :func:`kths_after_removal` for one rank."""
    return float(kths_after_removal(s, gone, [r])[0])
