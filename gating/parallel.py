"""Threads for one sample's work: numpy releases the GIL while it selects, copies, multiplies and
sums, so a sample's compensation, per-channel statistics and file hash use every core this
process may use.
Worker processes of a batch share the cores: each gets ``cores // jobs`` threads. Results never
depend on the thread count (each task is computed whole by one thread)."""
from __future__ import annotations

import math
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor

_THREADS: int | None = None
_POOL: ThreadPoolExecutor | None = None


def available_cores() -> int:
    """The CPUs this process may use (respects affinity/cgroup cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def sample_threads() -> int:
    """Threads one sample's work may use (default: every available core, at most 8)."""
    return _THREADS if _THREADS is not None else min(8, available_cores())


def set_sample_threads(n: int) -> None:
    """Set the threads per sample (a batch worker: its share of the cores)."""
    global _THREADS, _POOL
    _THREADS = max(1, int(n))
    if _POOL is not None:
        _POOL.shutdown(wait=False)
        _POOL = None


def pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=sample_threads(), thread_name_prefix="cytomnt")
    return _POOL


def thread_map(fn, items: list) -> list:
    """``[fn(x) for x in items]``, spread over the sample's threads (in order). The calling thread
    takes the first item and then any item no pool thread has started (the pool may be busy,
    e.g. hashing the file), so it never sits waiting for work it could do."""
    if sample_threads() <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    futures = [pool().submit(fn, x) for x in items[1:]]
    out = [fn(items[0])]
    for x, f in zip(items[1:], futures):
        out.append(fn(x) if f.cancel() else f.result())
    return out


def over_row_shares(fn, n: int, align: int = 4096) -> None:
    """``fn(start, stop)`` for shares of ``n`` rows, one per sample thread (bounds on multiples
    of ``align``): each share's work writes its own rows of a shared result."""
    thread_map(lambda part: fn(*part), row_shares(n, sample_threads(), align))


def row_shares(n: int, parts: int, align: int = 4096) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges splitting ``n`` rows into at most ``parts`` shares (bounds on
    multiples of ``align``)."""
    share = math.ceil(n / max(parts, 1))
    step = max(align, math.ceil(share / align) * align)
    return [(a, min(n, a + step)) for a in range(0, n, step)] or [(0, 0)]


def in_background(fn, *args) -> Future:
    """Run ``fn(*args)`` on the sample's thread pool (or now, with one thread); a Future (or a
    :class:`Done` with the same ``result()``)."""
    if sample_threads() <= 1:
        return Done(fn, args)
    return pool().submit(fn, *args)


def in_spare_time(fn, *args):
    """``fn(*args)`` (a pure call: a file's hash) in the machine's spare time: see
    :class:`SpareTime`. With one thread per sample it is done now (a :class:`Done`)."""
    if sample_threads() <= 1:
        return Done(fn, args)
    return SpareTime(fn, args)


class SpareTime:
    """A pure call run on a thread of its own at the lowest priority (Linux; elsewhere at the
    normal one), so it takes a core while the sample's threads leave one idle instead of slowing
    them. Whoever asks for its ``result()`` before that thread has finished makes the call
    itself, at its own priority: on a busy machine an idle-priority thread may wait for a core
    for long, and the result is the same."""

    __slots__ = ("_call", "_lock", "_started", "_done", "_outcome")

    def __init__(self, fn, args):
        self._call = (fn, args)
        self._lock = threading.Lock()
        self._started = False
        self._done = threading.Event()
        self._outcome: Done | None = None
        threading.Thread(target=self._run, name="cytomnt spare time", daemon=True).start()

    def _claim(self) -> bool:
        with self._lock:
            started, self._started = self._started, True
        return not started

    def _run(self) -> None:
        if hasattr(os, "setpriority") and sys.platform.startswith("linux"):
            try:                            # a thread's own niceness: it can lower it, never raise it
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            except OSError:
                pass
        if self._claim():
            self._outcome = Done(*self._call)
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout=None):
        """The call's value (or its exception), made here if the spare-time thread has not made it."""
        self._claim()                       # a thread that has not started yet never will
        if self._done.is_set():
            return self._outcome.result()
        return Done(*self._call).result()


class Done:
    """A call made at once, answering ``result()`` like a finished Future (no lock to build)."""

    __slots__ = ("_value", "_error")

    def __init__(self, fn, args):
        self._value = self._error = None
        try:
            self._value = fn(*args)
        except Exception as exc:  # noqa: BLE001 - delivered by result(), as a Future does
            self._error = exc

    def result(self, timeout=None):
        if self._error is not None:
            raise self._error
        return self._value


class Later:
    """A call made on the first ``result()`` (and kept): work queued now, run in an order the
    caller picks later, e.g. grouped by the data it reads while that data is in cache."""

    __slots__ = ("_call", "_done")

    def __init__(self, fn, args):
        self._call, self._done = (fn, args), None

    def result(self, timeout=None):
        if self._done is None:
            fn, args = self._call
            self._done, self._call = Done(fn, args), None
        return self._done.result()


def preload(module: str) -> None:
    """Import ``module`` on a daemon thread, e.g. what the end of a run needs while its workers
    run; a failure is left to the real import to report. Start it after any fork: a forked
    child would inherit the half-imported module's lock."""
    import importlib

    def load():
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - reported where the module is used
            pass
    threading.Thread(target=load, name=f"preload {module}", daemon=True).start()
