"""Batch runs at core-lab scale: every input analysed once per configuration, results kept in a
resumable store, bad files quarantined, the run's files written from the store.

Only the parent process writes (the store, then the tables, atomically), so a run killed at
any moment and started again finishes with exactly the tables of an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from gating.parallel import thread_map

from cytomnt.errors import ConfigError
from cytomnt.inputs.files import collect_inputs, is_sample, item_hash, item_key
from cytomnt.inputs.manifest import check_manifest
from cytomnt.run.changes import Change, sample_changes
from cytomnt.run.config import AnalysisConfig, make_config, run_record
from cytomnt.run.executors import EXECUTORS, run_dask, run_local
from cytomnt.run.learning import learn_batch_cuts
from cytomnt.run.lock import holding
from cytomnt.run.outputs import write_outputs
from cytomnt.run.progress import Progress
from cytomnt.run.review import kept_after_review
from cytomnt.sample.pipeline import analyze_tube
from cytomnt.sample.results import SampleResult, make_ids_unique, results_frame
from cytomnt.run.store import STORE_NAME, ResultStore, config_hash, result_key  # noqa: F401 - STORE_NAME: API
from cytomnt.inputs.strategies import strategy_bytes



@dataclass
class RunSummary:
    """What a run did. ``analysed`` + ``reused`` + ``failed`` = ``total``: analysed now and ok,
    reused from the store and ok, failed (now or before; quarantined in errors.csv)."""

    total: int = 0
    analysed: int = 0
    reused: int = 0
    failed: int = 0
    seconds: float = 0.0
    manifest_issues: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)    # counts that differ from each sample's previous result
    unchanged_by_review: int = 0        # samples of a reviewed workspace whose gates nobody moved (results kept)
    samples: pd.DataFrame | None = field(default=None, repr=False)   # the samples table written to OUT

    def line(self) -> str:
        kept = f" ({self.unchanged_by_review} with gates the review left unchanged)" if self.unchanged_by_review else ""
        return (f"{self.total} files: {self.analysed} analysed, {self.reused} reused from the store{kept}, "
                f"{self.failed} failed ({self.seconds:.1f}s)")


class RunInterrupted(Exception):
    """Ctrl-C during a run: what was finished is in the store; the same command resumes."""

    def __init__(self, kept: int, total: int, store: Path | None):
        self.kept, self.total, self.store = kept, total, store
        where = f"kept in {store}" if store else "not kept (no --out)"
        super().__init__(f"interrupted: {kept} of {total} files finished and {where}; "
                         + ("run the same command again to resume (finished files are reused)." if store else ""))


def run_config_hash(cfg: AnalysisConfig) -> tuple[str, dict]:
    """The hash of everything that decides a sample's numbers, and the record it hashes."""
    import hashlib
    record = run_record(cfg)
    record["strategy_sha256"] = hashlib.sha256(strategy_bytes(cfg.strategy)).hexdigest()
    record["panel_markers"] = dict(cfg.panel.markers)
    record["panel_beads"] = [cfg.panel.beads_per_test, cfg.panel.test_volume_ul]
    record["plots"] = cfg.plots
    return config_hash(record), record


def _entry_of(item, cfg: AnalysisConfig) -> dict:
    """The manifest facts of an input and where it is (part of its result key: a changed entry is
    a new result; two copies of a file in a batch are two results). The path is absolute, so
    ``in``, ``$PWD/in`` and ``../batch/in`` find the same stored results."""
    if is_sample(item):
        return {"sample": str(item.id)}
    p = Path(item)
    e = cfg.manifest.get(p.name) or cfg.manifest.get(str(p))
    return {"path": os.path.abspath(p), "entry": asdict(e) if e else None}


def hash_inputs(items, known: dict[str, str] | None = None) -> dict[str, str]:
    """Content hash of every input (those in ``known`` are not read again), on the sample
    threads (SHA-256 releases the GIL)."""
    known = dict(known or {})
    missing = [i for i in items if item_key(i) not in known]
    known.update(zip(map(item_key, missing), thread_map(item_hash, missing)))
    return known


def _manifest_issues(items, cfg: AnalysisConfig, hashes: dict) -> list[str]:
    issues = check_manifest([i for i in items if not is_sample(i)], cfg.manifest, hashes)
    return _scrubbed_issues(items, hashes, issues) if cfg.deidentify else issues


def _scrubbed_issues(items, hashes: dict, issues: list[str]) -> list[str]:
    """Manifest issues without file names or paths (``--deidentify``)."""
    from cytomnt.sample.privacy import path_secrets, pseudonym, scrub
    for i in items:
        if not is_sample(i):
            issues = [scrub(x, path_secrets(i), pseudonym(hashes[str(i)])) for x in issues]
    return issues


def run_batch(inputs, cfg: AnalysisConfig, out: str | Path | None = None, jobs: int = 1, executor: str = "local",
              scheduler: str | None = None, progress: bool | object = False,
              hashes: dict[str, str] | None = None, on_start=None) -> tuple[list[SampleResult], RunSummary]:
    """Analyse every input, reusing stored results; write the run's files to ``out`` if given.

    ``hashes``: content hashes already known (input key -> SHA-256), e.g. computed while the
    command line was loading. ``on_start()``: called once the workers run, e.g. to load what
    the end of the run needs meanwhile. Raises :class:`RunInterrupted` on Ctrl-C (finished results stay
    in the store).
    """
    t0 = time.monotonic()
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, not '{executor}'")
    if jobs < 0:
        raise ConfigError(f"--jobs must be 0 (every CPU this process may use) or a positive number, not {jobs}")
    say = (lambda line: print(f"cytomnt: {line}", file=sys.stderr)) if progress else None
    with holding(out, say):                 # a second run into the same OUT waits for the first, and says so
        return _run_batch(t0, inputs, cfg, out, jobs, executor, scheduler, progress, hashes, on_start)


def _run_batch(t0, inputs, cfg, out, jobs, executor, scheduler, progress, hashes, on_start):
    items = collect_inputs(inputs)
    summary = RunSummary(total=len(items))
    cfg.learned = learn_batch_cuts(items, cfg.gating, cfg.spillover, cfg.strategy_choice, cfg.learned)
    setup = cfg.sample_setup()
    cfg_hash, record = run_config_hash(cfg)
    store = ResultStore(Path(out) / STORE_NAME) if out is not None else None
    callback = progress if callable(progress) else None
    bar = Progress(len(items), enabled=bool(progress), callback=callback)
    fresh: dict[str, SampleResult] = {}
    stack = contextlib.ExitStack()
    try:
        stored = store.keys() if store else set()
        before_run = store.last_seq() if stored else 0   # results a re-analysed sample is compared with
        # every content hash first only when they decide something before the analysis (results
        # to reuse, pseudonyms); otherwise a file not hashed yet is hashed by its worker
        hashes = dict(hashes or {})
        if stored or cfg.deidentify:
            hashes = hash_inputs(items, hashes)
        upfront = all(item_key(i) in hashes for i in items)

        def key_of(i) -> str:
            return result_key(hashes[item_key(i)], cfg_hash, _entry_of(i, cfg))
        if upfront:
            summary.manifest_issues = _manifest_issues(items, cfg, hashes)
        run_id = store.begin_run(cfg_hash, record) if store else 0
        todo = [i for i in items if not upfront or key_of(i) not in stored]
        # a reviewed workspace: samples whose gates nobody moved keep their result
        kept = kept_after_review(todo, cfg.strategy_choice, record, store, hashes, lambda i: _entry_of(i, cfg)) \
            if store and upfront else {}
        summary.unchanged_by_review = len(kept)
        todo = [i for i in todo if item_key(i) not in kept]
        used = {item_key(i): kept.get(item_key(i)) or (key_of(i) if upfront else None) for i in items}
        for i in items:
            if upfront and used[item_key(i)] in stored:
                store.touch(used[item_key(i)], run_id)      # the newest result of its sample again
                res = store.get(used[item_key(i)])
                summary.reused += res.ok
                bar.update(res, reused=True)
        source = run_dask(todo, setup, scheduler, jobs, on_start) if executor == "dask" else \
            run_local(todo, setup, jobs, hashes, item_key, on_start)
        stack.callback(source.close)         # on Ctrl-C too: the executor's own clean-up runs now
        for item, res in source:
            if item_key(item) not in hashes:
                hashes[item_key(item)] = res.row.get("sha256") or item_hash(item)
            k = key_of(item)
            if store:
                prev = store.previous(hashes[item_key(item)], k, before_run) if res.ok and before_run else None
                store.put(k, hashes[item_key(item)], cfg_hash, res, run_id)
                if prev is not None and prev.ok:
                    summary.changes += sample_changes(res.sample_id, prev, res)
            fresh[k] = res                   # this run's results need no read back from the store
            summary.analysed += res.ok
            bar.update(res)
        results = [fresh[k] if k in fresh else store.get(k)
                   for k in (used.get(item_key(i)) or key_of(i) for i in items)]
        if not upfront:
            summary.manifest_issues = _manifest_issues(items, cfg, hashes)
    except KeyboardInterrupt:
        stack.close()                        # wait for the workers to stop before saying so
        raise RunInterrupted(summary.analysed + summary.reused, len(items),
                             Path(out) / STORE_NAME if out is not None else None) from None
    finally:
        stack.close()
        bar.close()
        if store:
            store.close()
    make_ids_unique(results)
    summary.failed = sum(not r.ok for r in results)
    if out is not None:
        summary.samples = write_outputs(results, out, run_record(cfg), cfg.learned, summary.manifest_issues,
                                        xlsx=cfg.xlsx, changes=summary.changes)
    summary.seconds = time.monotonic() - t0
    return results, summary


def analyze_sample(item, cfg: AnalysisConfig | None = None, sha256: str | None = None) -> SampleResult:
    """Analyse one file (a path) or one FlowKit ``Sample`` with a run's configuration (default:
    the built-in panel and strategy); never raises for a bad file (its row says why).
    ``sha256``: the file's hash when the caller has it already."""
    return analyze_tube(item, (cfg or make_config()).sample_setup(), sha256)


def analyze(inputs, panel=None, strategy="auto", gate_map=None, manifest=None, sample_type=None,
            negative_control=None, spillover=None, out=None, jobs: int = 1, config: AnalysisConfig | None = None,
            progress=None, learned_cuts=None, plots: bool = False, executor: str = "local",
            scheduler: str | None = None, deidentify: bool = False, acquisition_qc: bool = True,
            xlsx: bool = False, wsp_group: str | None = None, wsp_sample: str | None = None,
            keywords=None) -> pd.DataFrame:
    """Analyse FCS files (paths, folders searched recursively) or FlowKit ``Sample`` objects.

    Returns the samples table (one row per input, see ``results.SAMPLE_COLUMNS``). With ``out``,
    also writes samples.csv, populations.csv, statistics.csv, errors.csv, gates/<sample_id>.xml
    and run.json there, and keeps every result in ``out/results.sqlite``, so a re-run reuses
    what is done. The Python face of ``cytomnt analyze``.
    """
    cfg = config or make_config(panel, strategy, gate_map, manifest, sample_type, negative_control, spillover,
                                learned_cuts=learned_cuts, plots=plots, deidentify=deidentify,
                                acquisition_qc=acquisition_qc, xlsx=xlsx, wsp_group=wsp_group, wsp_sample=wsp_sample,
                                keywords=keywords)
    results, summary = run_batch(inputs, cfg, out, jobs, executor, scheduler, progress=progress or False)
    return summary.samples if summary.samples is not None else results_frame(results)
