"""The sample's threads (gating.parallel): work spread over them comes back whole and in order,
the caller never waits on a busy pool, and spare-time work (a file's hash) runs at the lowest
priority without changing what it returns."""
from __future__ import annotations

import hashlib
import os
import sys
import threading
import time

import pytest

import cytomnt
from gating.parallel import (Done, SpareTime, in_spare_time, over_row_shares, row_shares, sample_threads,
                             set_sample_threads, thread_map)

from tests.conftest import FIXTURES


@pytest.fixture
def threads():
    """Set the sample's threads for one test, and put the number back after it."""
    before = sample_threads()
    yield set_sample_threads
    set_sample_threads(before)


@pytest.mark.parametrize("n, parts, align", [(0, 2, 4096), (1, 2, 4096), (10_000, 3, 4096), (1 << 18, 2, 4096),
                                             (123_457, 8, 1), (5, 4, 2)])
def test_row_shares_cover_every_row_once_on_aligned_bounds(n, parts, align):
    shares = row_shares(n, parts, align)
    assert len(shares) <= max(parts, 1)
    covered = [r for a, b in shares for r in range(a, b)]
    assert covered == list(range(n))
    assert all(a % align == 0 for a, _ in shares)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_thread_map_keeps_order_and_over_row_shares_fills_every_row(threads, n_threads):
    threads(n_threads)
    assert thread_map(lambda x: x * x, list(range(50))) == [x * x for x in range(50)]
    out = [None] * 100_000

    def fill(a: int, b: int) -> None:
        out[a:b] = range(a, b)
    over_row_shares(fill, len(out), align=1000)
    assert out == list(range(100_000))


def test_the_caller_does_the_work_a_busy_pool_has_not_started(threads):
    """With every pool thread held (e.g. hashing a file), thread_map still finishes: the caller
    takes the items no pool thread started, instead of waiting for them."""
    threads(2)
    from gating.parallel import pool
    release = threading.Event()
    blockers = [pool().submit(release.wait, 30) for _ in range(sample_threads())]
    try:
        ran_on = thread_map(lambda x: threading.get_ident(), list(range(6)))
        assert set(ran_on) == {threading.get_ident()}          # every item on the calling thread
    finally:
        release.set()
        for b in blockers:
            b.result()


def _finished(work: SpareTime) -> SpareTime:
    for _ in range(3000):
        if work.done():
            return work
        time.sleep(0.01)
    raise AssertionError("the spare-time thread did not finish in 30 s")


def test_spare_time_work_returns_its_value_and_its_error(threads):
    threads(2)
    assert _finished(in_spare_time(sum, [1, 2, 3])).result() == 6
    with pytest.raises(ZeroDivisionError):
        _finished(in_spare_time(lambda: 1 / 0)).result()
    threads(1)                      # one thread per sample (a batch worker): done at once
    done = in_spare_time(sum, [4, 5])
    assert isinstance(done, Done) and done.result() == 9


def test_asking_before_the_spare_time_thread_is_done_makes_the_call_at_once():
    """An idle-priority thread may wait long for a core on a busy machine: the caller does not
    wait for it, it makes the (pure) call itself."""
    me, spare_started, release = threading.get_ident(), threading.Event(), threading.Event()

    def double(x: int) -> int:
        if threading.get_ident() != me:          # the spare-time thread: held until the caller is done
            spare_started.set()
            release.wait(30)
        return 2 * x
    work = SpareTime(double, (21,))
    assert spare_started.wait(30)
    try:
        assert work.result() == 42 and not work.done()
    finally:
        release.set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_spare_time_work_runs_at_the_lowest_priority_and_leaves_the_callers(threads):
    threads(2)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    work = _finished(in_spare_time(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    assert work.result() == 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine   # the caller's is untouched


def test_a_sample_hashed_in_spare_time_has_the_sha256_of_its_bytes(threads, tmp_path):
    threads(2)
    f = FIXTURES / "csf_bd.fcs"
    df = cytomnt.analyze([f], out=tmp_path, jobs=1)
    assert df.sha256.tolist() == [hashlib.sha256(f.read_bytes()).hexdigest()]
