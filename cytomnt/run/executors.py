"""Where samples are analysed: in this process, a local process pool, or a Dask cluster. Each
yields ``(input, result)`` as results finish; only the caller (the parent) writes anything."""
from __future__ import annotations

import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from gating.parallel import available_cores, set_sample_threads

from cytomnt.errors import ConfigError
from cytomnt.inputs.panel import compile_names
from cytomnt.sample.pipeline import analyze_tube
from cytomnt.sample.setup import SampleSetup

EXECUTORS = ("local", "dask")
_SETUP: SampleSetup | None = None


def default_jobs() -> int:
    """Workers for ``--jobs 0``: the CPUs this process may use (respects affinity/cgroup cpusets)."""
    return available_cores()


def single_threaded_blas() -> None:
    """One BLAS thread per worker (N workers x N BLAS threads on N cores ran slower than one
    worker). Results do not depend on it: numbers are computed without BLAS (gating.stable)."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)


def _init_worker(setup: SampleSetup, jobs: int) -> None:
    """Per worker: the run's settings for its tubes, one BLAS thread, its share of the cores for a
    sample's threads, and Ctrl-C left to the parent (which stops the run cleanly) instead of a
    traceback from every worker."""
    global _SETUP
    _SETUP = setup
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    single_threaded_blas()
    set_sample_threads(max(1, available_cores() // jobs))


def _load_before_fork(setup: SampleSetup) -> None:
    """What every worker needs for its first tube, made once here so the forked workers share it
    instead of each making it: the evaluator (imported lazily by the strategy module), BLAS
    thread control, the panel's compiled name patterns, and the scipy modules the template's gate
    finders smooth densities and test positivity with (the user's own gates need neither)."""
    import threadpoolctl  # noqa: F401

    import gating.evaluator.evaluate  # noqa: F401
    compile_names(setup.gating.panel)
    if setup.strategy.uses_template:
        import scipy.ndimage  # noqa: F401
        import scipy.stats  # noqa: F401


def _work(item, sha256=None):
    return analyze_tube(item, _SETUP, sha256)


def run_local(todo: list, setup: SampleSetup, jobs: int, hashes: dict, key, on_start=None):
    """Yield (item, result) as they finish; at most 2 x jobs files in flight. ``on_start()`` is
    called once the workers run (after the pool forked them: a thread it starts is not copied)."""
    on_start = on_start or (lambda: None)
    if jobs <= 1 or len(todo) <= 1:
        on_start()
        for item in todo:
            yield item, analyze_tube(item, setup, hashes.get(key(item)))
        return
    _load_before_fork(setup)
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker, initargs=(setup, jobs))
    try:
        pending = {}
        it = iter(todo)
        for item in it:
            pending[pool.submit(_work, item, hashes.get(key(item)))] = item
            if len(pending) >= 2 * jobs:
                break
        on_start()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                item = pending.pop(f)
                yield item, f.result()
                nxt = next(it, None)
                if nxt is not None:
                    pending[pool.submit(_work, nxt, hashes.get(key(nxt)))] = nxt
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_dask(todo: list, setup: SampleSetup, scheduler: str | None, jobs: int, on_start=None):
    """The same per-sample function on a Dask distributed cluster (``pip install 'cytomnt[dask]'``)."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise ConfigError("--executor dask needs dask.distributed: pip install 'cytomnt[dask]'") from exc
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=max(jobs, 1), threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        client.run(single_threaded_blas)
        client.run(set_sample_threads, 1)            # Dask runs one task per worker thread already
        setup_f = client.scatter(setup, broadcast=True)
        futures = {client.submit(analyze_tube, str(i) if isinstance(i, Path) else i, setup_f, pure=False): i
                   for i in todo}
        if on_start:
            on_start()
        for f in as_completed(futures):
            yield futures[f], f.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
