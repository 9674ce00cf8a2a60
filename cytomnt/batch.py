"""Batch runs at core-lab scale: a process pool (or a Dask cluster), one sample in memory per
worker, a resumable results store, quarantine of bad files, manifest checks, progress.

Only the parent process writes (the store, then the tables, atomically), so a run killed at
any moment and started again finishes with exactly the tables of an uninterrupted run.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import flowkit as fk
import numpy as np
import pandas as pd

from gating.files import atomic_write

from .pipeline import (AnalysisConfig, SampleResult, _unique_ids, analyze_sample, collect_inputs, learn_batch_cuts,
                       run_record, sha256_file, write_outputs)
from .store import ResultStore, config_hash, result_key

STORE_NAME = "results.sqlite"
EXECUTORS = ("local", "dask")


@dataclass
class RunSummary:
    """What a run did: analysed now, reused from the store, failed (quarantined), and checks."""

    total: int = 0
    analysed: int = 0
    reused: int = 0
    failed: int = 0
    seconds: float = 0.0
    manifest_issues: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.total} files: {self.analysed} analysed, {self.reused} reused from the store, "
                f"{self.failed} failed ({self.seconds:.1f}s)")


# -- manifest checks ---------------------------------------------------------------------------

def check_manifest(items, manifest: dict, hashes: dict) -> list[str]:
    """Problems between a manifest and the files given, each naming the file or sample."""
    issues = []
    paths = [i for i in items if not isinstance(i, fk.Sample)]
    names = {Path(p).name for p in paths} | {str(p) for p in paths}
    if manifest:
        listed = {e.file: e for e in manifest.values()}
        for f, e in sorted(listed.items()):
            if f not in names and Path(f).name not in names:
                issues.append(f"MISSING_FILE: manifest lists '{f}' (sample {e.sample_id}) but it is not among the inputs")
        for p in paths:
            if Path(p).name not in manifest and str(p) not in manifest:
                issues.append(f"NOT_IN_MANIFEST: '{p}' is not listed in the manifest")
        ids = Counter(e.sample_id for e in {id(e): e for e in manifest.values()}.values())
        for sid, n in sorted(ids.items()):
            if n > 1:
                issues.append(f"DUPLICATE_SAMPLE_ID: sample id '{sid}' is used {n} times in the manifest")
    by_hash: dict[str, list[str]] = {}
    for p in paths:
        h = hashes.get(str(p))
        if h:
            by_hash.setdefault(h, []).append(str(p))
    for h, ps in sorted(by_hash.items()):
        if len(ps) > 1:
            issues.append(f"SAME_CONTENT: {', '.join(ps)} are the same file (sha256 {h[:12]}...)")
    return issues


# -- progress -----------------------------------------------------------------------------------

class Progress:
    """A tqdm bar on a terminal; plain, timestamped log lines otherwise (pipelines, CI logs)."""

    def __init__(self, total: int, enabled: bool = True, callback=None):
        self.total, self.done, self.start = total, 0, time.monotonic()
        self.callback = callback
        self.bar = None
        self.enabled = enabled and total > 0
        if self.enabled and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="file", dynamic_ncols=True, file=sys.stderr)

    def update(self, result: SampleResult, reused: bool = False) -> None:
        self.done += 1
        if self.callback:
            self.callback(result)
        if not self.enabled:
            return
        r = result.row
        if self.bar is not None:
            self.bar.set_postfix_str(f"{r['sample_id']}: {r['status']}", refresh=False)
            self.bar.update(1)
            return
        el = time.monotonic() - self.start
        eta = el / self.done * (self.total - self.done)
        what = "reused" if reused else (r["status"] if r["status"] == "ok" else f"ERROR {r['error']}")
        print(f"[{self.done}/{self.total}] {r['sample_id']}: {what} ({el:.1f}s elapsed, ~{eta:.0f}s left)",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- executors ----------------------------------------------------------------------------------

_CFG: AnalysisConfig | None = None


def _init_worker(cfg: AnalysisConfig) -> None:
    """Per worker: the run's configuration, and one BLAS thread (N workers x N BLAS threads on N
    cores made a 2-worker run slower than 1 worker)."""
    global _CFG
    _CFG = cfg
    single_threaded_blas()


def single_threaded_blas() -> None:
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)


def _work(item, sha256=None) -> SampleResult:
    return analyze_sample(item, _CFG, sha256)


def _local(todo: list, cfg: AnalysisConfig, jobs: int, hashes: dict):
    """Yield (item, result) as they finish; at most 2 x jobs files in flight."""
    if jobs <= 1 or len(todo) <= 1:
        for item in todo:
            yield item, analyze_sample(item, cfg, hashes.get(str(item)))
        return
    with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker, initargs=(cfg,)) as pool:
        pending = {}
        it = iter(todo)
        for item in it:
            pending[pool.submit(_work, item, hashes.get(str(item)))] = item
            if len(pending) >= 2 * jobs:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                item = pending.pop(f)
                yield item, f.result()
                nxt = next(it, None)
                if nxt is not None:
                    pending[pool.submit(_work, nxt, hashes.get(str(nxt)))] = nxt


def _dask(todo: list, cfg: AnalysisConfig, scheduler: str | None, jobs: int):
    """The same per-sample function on a Dask distributed cluster (``pip install 'cytomnt[dask]'``)."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        from .pipeline import ConfigError
        raise ConfigError("--executor dask needs dask.distributed: pip install 'cytomnt[dask]'") from exc
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=max(jobs, 1), threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        client.run(single_threaded_blas)
        cfg_f = client.scatter(cfg, broadcast=True)
        futures = {client.submit(analyze_sample, str(i) if isinstance(i, Path) else i, cfg_f, pure=False): i
                   for i in todo}
        for f in as_completed(futures):
            yield futures[f], f.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# -- the run --------------------------------------------------------------------------------------

def _item_hash(item) -> str:
    if isinstance(item, fk.Sample):
        return hashlib.sha256(np.ascontiguousarray(item.get_events(source="raw")).tobytes()).hexdigest()
    p = Path(item)
    return sha256_file(p) if p.exists() else hashlib.sha256(f"missing:{p}".encode()).hexdigest()


def _strategy_hash(cfg: AnalysisConfig) -> str:
    if cfg.strategy == "auto":
        from importlib import resources
        return hashlib.sha256(resources.files("cytomnt").joinpath("data/car_t_template.yaml").read_bytes()).hexdigest()
    p = Path(cfg.strategy)
    return sha256_file(p) if p.exists() else ""


def run_config_hash(cfg: AnalysisConfig) -> tuple[str, dict]:
    record = run_record(cfg)
    record["strategy_sha256"] = _strategy_hash(cfg)
    record["panel_markers"] = dict(cfg.panel.markers)
    record["panel_beads"] = [cfg.panel.beads_per_test, cfg.panel.test_volume_ul]
    record["plots"] = cfg.plots
    return config_hash(record), record


def _entry_of(item, cfg: AnalysisConfig) -> dict:
    if isinstance(item, fk.Sample):
        return {"sample": str(item.id)}
    p = Path(item)
    e = cfg.manifest.get(p.name) or cfg.manifest.get(str(p))
    return {"path": str(p), "entry": asdict(e) if e else None}


def run_batch(inputs, cfg: AnalysisConfig, out: str | Path | None = None, jobs: int = 1, executor: str = "local",
              scheduler: str | None = None, progress: bool | object = False) -> tuple[list[SampleResult], RunSummary]:
    """Analyse every input, reusing stored results; write the tables to ``out`` if given."""
    t0 = time.monotonic()
    if executor not in EXECUTORS:
        from .pipeline import ConfigError
        raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, not '{executor}'")
    items = collect_inputs(inputs)
    summary = RunSummary(total=len(items))
    hashes = {str(i) if not isinstance(i, fk.Sample) else f"sample:{i.id}": _item_hash(i) for i in items}
    summary.manifest_issues = check_manifest(items, cfg.manifest, hashes)
    if cfg.deidentify:
        from .privacy import path_secrets, pseudonym, scrub
        for i in items:
            if not isinstance(i, fk.Sample):
                summary.manifest_issues = [scrub(x, path_secrets(i), pseudonym(hashes[str(i)]))
                                           for x in summary.manifest_issues]
    learn_batch_cuts(items, cfg)
    cfg_hash, record = run_config_hash(cfg)
    hkey = lambda i: str(i) if not isinstance(i, fk.Sample) else f"sample:{i.id}"  # noqa: E731
    keys = {hkey(i): result_key(hashes[hkey(i)], cfg_hash, _entry_of(i, cfg)) for i in items}
    store = ResultStore(Path(out) / STORE_NAME) if out is not None else None
    callback = progress if callable(progress) else None
    bar = Progress(len(items), enabled=bool(progress), callback=callback)
    fresh: dict[str, SampleResult] = {}
    try:
        stored = store.keys() if store else set()
        todo = [i for i in items if keys[hkey(i)] not in stored]
        for i in items:
            if keys[hkey(i)] in stored:
                summary.reused += 1
                bar.update(store.get(keys[hkey(i)]), reused=True)
        run_id = store.begin_run(cfg_hash, record) if store else 0
        source = _dask(todo, cfg, scheduler, jobs) if executor == "dask" else _local(todo, cfg, jobs, hashes)
        for item, res in source:
            k = keys[hkey(item)]
            if store:
                store.put(k, hashes[hkey(item)], cfg_hash, res, run_id)
            else:
                fresh[k] = res
            summary.analysed += 1
            bar.update(res)
        results = [store.get(keys[hkey(i)]) if store else fresh[keys[hkey(i)]] for i in items]
    finally:
        bar.close()
        if store:
            store.close()
    _unique_ids(results)
    summary.failed = sum(r.row["status"] != "ok" for r in results)
    if out is not None:
        write_outputs(results, out, cfg)
        write_run_extras(results, Path(out), summary)
    summary.seconds = time.monotonic() - t0
    return results, summary


def write_run_extras(results: list[SampleResult], out: Path, summary: RunSummary) -> None:
    """errors.csv (the quarantine: every file that could not be read or gated, with the reason)
    and manifest_check.csv, both atomically."""
    err = pd.DataFrame([{"sample_id": r.row["sample_id"], "file": r.row["file"], "sha256": r.row["sha256"],
                         "error": r.row["error"]} for r in results if r.row["status"] != "ok"],
                       columns=["sample_id", "file", "sha256", "error"]).sort_values(["sample_id", "file"])
    atomic_write(out / "errors.csv", err.to_csv(index=False, lineterminator="\n").encode())
    mc = pd.DataFrame({"issue": [i.split(":", 1)[0] for i in summary.manifest_issues],
                       "detail": [i.split(":", 1)[1].strip() for i in summary.manifest_issues]},
                      columns=["issue", "detail"])
    atomic_write(out / "manifest_check.csv", mc.to_csv(index=False, lineterminator="\n").encode())


def default_jobs() -> int:
    """Workers for ``--jobs 0``: the CPUs this process may use (respects affinity/cgroup cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
