"""Batch runs: the results store (reuse, resume after SIGKILL), quarantine, manifest checks, Dask."""
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

import cytomnt
from cytomnt.cli import main
from cytomnt.run.batch import run_batch
from cytomnt.run.config import make_config
from cytomnt.run.store import ResultStore
from cytomnt.synth import TubeSpec, write_tube

from .conftest import assert_same_table


TABLES = ("samples.csv", "populations.csv", "errors.csv", "manifest_check.csv")


def tables(out):
    files = {t: (out / t).read_bytes() for t in TABLES}
    files.update({f"gates/{p.name}": p.read_bytes() for p in sorted((out / "gates").glob("*.xml"))})
    return files


@pytest.fixture(scope="module")
def tubes(tmp_path_factory):
    d = tmp_path_factory.mktemp("tubes")
    for i in range(10):
        write_tube(d / f"t{i:02d}.fcs", TubeSpec(events=20_000, car_frac_of_t=0.05 + 0.05 * i,
                                                 style=("bd", "numbered")[i % 2]), 300 + i)
    (d / "broken.fcs").write_bytes(b"FCS3.1    garbage" + b"\0" * 200)
    return d


@pytest.fixture(scope="module")
def few_tubes(tubes, tmp_path_factory):
    """Three of the tubes and the broken file: enough for what the store keeps and reuses."""
    d = tmp_path_factory.mktemp("few")
    for name in ("t00.fcs", "t01.fcs", "t02.fcs", "broken.fcs"):
        shutil.copy(tubes / name, d / name)
    return d


def test_rerun_reuses_the_store_and_changes_nothing(few_tubes, tmp_path):
    tubes = few_tubes
    cfg = make_config(xlsx=True)
    r1, s1 = run_batch([tubes], cfg, tmp_path, jobs=2)
    first = tables(tmp_path)
    # analysed + reused + failed = files: the broken file counts once, as failed
    assert (s1.analysed, s1.reused, s1.failed) == (3, 0, 1)
    assert s1.line().startswith("4 files: 3 analysed, 0 reused from the store, 1 failed")
    r2, s2 = run_batch([tubes], make_config(xlsx=True), tmp_path, jobs=2)
    assert (s2.analysed, s2.reused, s2.failed) == (0, 3, 1)
    assert tables(tmp_path) == first
    err = pd.read_csv(tmp_path / "errors.csv")
    assert err.sample_id.tolist() == ["broken"] and "broken.fcs" in err.error[0]
    assert err.sha256[0] == hashlib.sha256((tubes / "broken.fcs").read_bytes()).hexdigest()   # which bytes failed
    # the corrupt file's raw bytes in its message are escaped, so every output is written
    assert "\x00" not in err.error[0] and (tmp_path / "statistics.xlsx").exists()
    # a different configuration is a different result: analysed again, both kept in the store
    _, s3 = run_batch([tubes / "t00.fcs"], make_config(sample_type="csf"), tmp_path)
    assert s3.analysed == 1
    st = ResultStore(tmp_path / "results.sqlite")
    assert len(st.keys()) == 5
    st.close()


def test_the_same_folder_spelled_otherwise_reuses_the_store(few_tubes, tmp_path, monkeypatch):
    """``in``, ``$PWD/in`` and ``../x/in`` are one folder: a re-run reuses every result and writes
    the same tables; a copy of the folder elsewhere is other files (analysed, kept apart)."""
    tubes = few_tubes
    monkeypatch.chdir(tubes.parent)
    out = tmp_path / "out"
    _, s1 = run_batch([tubes.name], make_config(), out, jobs=1)
    first = tables(out)
    for spelling in (str(tubes), f"../{tubes.parent.name}/{tubes.name}"):
        _, again = run_batch([spelling], make_config(), out, jobs=1)
        assert (again.analysed, again.reused) == (0, s1.analysed), spelling
        assert tables(out) == first
    copy = tmp_path / "copy"
    shutil.copytree(tubes, copy)
    _, moved = run_batch([copy], make_config(), out, jobs=1)
    assert moved.analysed == s1.analysed


def test_file_hash_is_the_sha256_of_its_bytes(tubes, tmp_path):
    """Hashed through a memory map, or read in chunks where a file cannot be mapped (empty)."""
    from cytomnt.inputs.hashing import sha256_file
    for f in (tubes / "t00.fcs", tubes / "broken.fcs"):
        assert sha256_file(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    empty = tmp_path / "empty.fcs"
    empty.write_bytes(b"")
    assert sha256_file(empty) == hashlib.sha256(b"").hexdigest()


def _start(tubes, out):
    return subprocess.Popen([sys.executable, "-m", "cytomnt.cli", "analyze", str(tubes), "--out", str(out), "--jobs", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _analyze_here(tubes, out) -> int:
    """``cytomnt analyze TUBES --out OUT --jobs 2`` in this process (no interpreter to start)."""
    return main(["analyze", str(tubes), "--out", str(out), "--jobs", "2"])


def _stored(path) -> int:
    """Results committed so far (read-only, beside the writing run; 0 before the store exists)."""
    import sqlite3
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _wait_for_progress(path, proc, before: int, timeout=120.0) -> None:
    t = time.monotonic()
    while _stored(path) <= before and proc.poll() is None and time.monotonic() - t < timeout:
        time.sleep(0.01)


@pytest.mark.slow
def test_sigkill_at_random_points_then_finish_gives_identical_tables(tubes, tmp_path):
    """SIGKILL the whole run 3 times at random points after it has stored something new, then let
    it finish: the tables are byte-identical to an uninterrupted run's, nothing is stored twice.
    (The uninterrupted and the finishing runs are the same command, run in this process.)"""
    ref = tmp_path / "ref"
    assert _analyze_here(tubes, ref) == 1
    out = tmp_path / "killed"
    store = out / "results.sqlite"
    rng = random.Random(20261126)
    stored_after_kill = []
    for _ in range(3):
        before = _stored(store)
        p = _start(tubes, out)
        _wait_for_progress(store, p, before)
        time.sleep(rng.uniform(0.0, 0.4))
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        stored_after_kill.append(_stored(store))
    assert _analyze_here(tubes, out) == 1              # 1: the broken file failed, the rest is done
    assert tables(out) == tables(ref)
    print("results stored after each kill:", stored_after_kill)
    assert any(0 < n < 11 for n in stored_after_kill), stored_after_kill   # kills fell mid-batch
    assert _stored(store) == 11                        # nothing duplicated


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_tables(tubes, tmp_path):
    pytest.importorskip("distributed")
    files = sorted(tubes.glob("t0[0-3].fcs")) + [tubes / "broken.fcs"]
    run_batch(files, make_config(), tmp_path / "local", jobs=1)
    _, s = run_batch(files, make_config(), tmp_path / "dask", jobs=2, executor="dask")
    assert (s.analysed, s.failed) == (4, 1)
    assert tables(tmp_path / "dask") == tables(tmp_path / "local")


def test_manifest_checks_name_each_problem(tubes, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for n in ("t00.fcs", "t01.fcs"):
        shutil.copy(tubes / n, d / n)
    shutil.copy(tubes / "t00.fcs", d / "copy_of_t00.fcs")
    m = tmp_path / "m.csv"
    m.write_text("file,sample_id,patient_id,collection_date,sample_type\n"
                 "t00.fcs,A-d7,A,2026-01-08,pb\nt01.fcs,A-d14,A,2026-01-15,pb\ngone.fcs,A-d21,A,2026-01-22,pb\n")
    _, s = run_batch([d], make_config(manifest=m), tmp_path / "out")
    text = "\n".join(s.manifest_issues)
    assert "MISSING_FILE: manifest lists 'gone.fcs' (sample A-d21)" in text
    assert "NOT_IN_MANIFEST:" in text and "copy_of_t00.fcs" in text
    assert "SAME_CONTENT:" in text and "t00.fcs" in text
    mc = pd.read_csv(tmp_path / "out" / "manifest_check.csv")
    assert set(mc.issue) == {"MISSING_FILE", "NOT_IN_MANIFEST", "SAME_CONTENT"}


def test_longitudinal_store_feeds_risk(tubes, tmp_path, capsys):
    out = tmp_path / "out"
    m = tmp_path / "m.csv"
    m.write_text("file,sample_id,patient_id,collection_date,sample_type\n"
                 "t00.fcs,A-d7,A,2026-01-08,pb\nt09.fcs,A-d14,A,2026-01-15,pb\n")
    cytomnt.analyze([tubes / "t00.fcs"], manifest=m, out=out)            # week 1
    cytomnt.analyze([tubes / "t09.fcs"], manifest=m, out=out)            # week 2, same store
    assert len(pd.read_csv(out / "samples.csv")) == 1                    # this run's table
    (tmp_path / "c.csv").write_text("patient_id,product,infusion_date,bridging_response,bmpc_pct,m_spike_g_dl,"
                                    "sflc_mg_l,ferritin_ng_ml,crs_max_grade,icans_max_grade,prior_bcma_bispecific\n"
                                    "A,cilta-cel,2026-01-01,PR,,,,,,,\n")
    assert main(["risk", "--clinical", str(tmp_path / "c.csv"), "--store", str(out / "results.sqlite"),
                 "--as-of", "2026-02-01", "--json"]) == 0
    import json
    doc = json.loads(capsys.readouterr().out)[0]
    assert doc["data_used"]["flow_samples"] == 2
    car = next(f for f in doc["factors"] if f["id"] == "car_gt_60pct_of_t")
    assert "A-d14" in car["detail"]


@pytest.mark.slow
def test_ctrl_c_says_what_was_kept_and_a_rerun_resumes(tubes, tmp_path, capsys):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) at random moments: the
    run ends promptly (no hang, no worker left behind), exit 130, no traceback, a line saying how
    many files were kept and that the same command resumes; it does."""
    import psutil
    many = tmp_path / "many"              # 44 files: long enough a run to interrupt on any machine
    for k in range(4):
        shutil.copytree(tubes, many / f"copy{k}")
    tubes = many
    out = tmp_path / "out"
    store = out / "results.sqlite"
    rng = random.Random(4242)
    interrupted = 0
    for attempt in range(2):
        shutil.rmtree(out, ignore_errors=True)
        p = subprocess.Popen([sys.executable, "-m", "cytomnt.cli", "analyze", str(tubes), "--out", str(out),
                              "--jobs", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        children = []
        _wait_for_progress(store, p, 0)
        try:
            children = psutil.Process(p.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass
        time.sleep(rng.uniform(0.0, 0.3))
        try:
            os.killpg(p.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            pytest.fail(f"attempt {attempt}: the run hung after Ctrl-C")
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE], \
            f"attempt {attempt}: workers left running"
        if p.returncode in (0, 1):
            continue                                   # finished before the interrupt arrived
        interrupted += 1
        assert p.returncode == 130, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        assert re.search(r"interrupted: \d+ of 44 files finished and kept in .*results.sqlite; run the same "
                         r"command again to resume", err), err
    assert interrupted, "no attempt was interrupted mid-run"
    assert _analyze_here(tubes, out) == 1
    assert "reused from the store" in capsys.readouterr().err
    assert _stored(store) == 44


def test_store_keeps_every_bit_and_reads_stores_of_earlier_versions(tmp_path):
    """A result's tables come back from the store bit for bit (NaN, -0.0, the smallest and largest
    floats, integer counts, text), and a store written by an earlier version (tables as JSON)
    still reads."""
    import json

    import numpy as np

    from cytomnt.sample.results import SampleResult
    stats = pd.DataFrame({"population": ["a", "b", "c", "d"], "count": [0, 1, 2**40, 7],
                          "median": [np.nan, -0.0, 5e-324, 1.7976931348623157e308],
                          "mean": [0.1 + 0.2, 1 / 3, -1e-300, np.inf]})
    pops = pd.DataFrame({"sample_id": ["s"], "population": ["a"], "count": [3], "pct_parent": [100 / 3]})
    st = ResultStore(tmp_path / "results.sqlite")
    st.put("k1", "h", "c", SampleResult({"sample_id": "s", "status": "ok"}, pops, b"<xml/>", None, stats), 1)
    back = st.get("k1")
    assert_same_table(back.statistics, stats)
    assert_same_table(back.populations, pops)
    old = json.dumps({"columns": ["population", "count", "median"], "data": [["a", 3, 0.1], ["b", 4, None]]})
    st.db.execute("UPDATE results SET statistics_json = ? WHERE key = 'k1'", (old,))
    got = st.get("k1").statistics
    assert got["count"].tolist() == [3, 4] and got["median"].iloc[0] == 0.1 and np.isnan(got["median"].iloc[1])
    st.close()


def test_hashes_known_early_or_found_by_the_workers_give_the_same_run(few_tubes, tmp_path):
    """Content hashes computed while the command loads (EarlyHashes), or none known and each
    file hashed by its worker: the same rows, the same keys, and a re-run reuses everything."""
    import hashlib

    from cytomnt.inputs.files import EarlyHashes, collect_inputs, item_key
    tubes = few_tubes
    items = collect_inputs([tubes])
    known = EarlyHashes(items).wait(timeout=60)
    assert known == {item_key(i): hashlib.sha256(i.read_bytes()).hexdigest() for i in items}
    _, s1 = run_batch([tubes], make_config(), tmp_path / "a", jobs=2, hashes=known)
    _, s2 = run_batch([tubes], make_config(), tmp_path / "b", jobs=2)
    assert tables(tmp_path / "a") == tables(tmp_path / "b")
    stored = [sorted(ResultStore(tmp_path / d / "results.sqlite").keys()) for d in ("a", "b")]
    assert stored[0] == stored[1] and len(stored[0]) == 4
    for d in ("a", "b"):
        _, again = run_batch([tubes], make_config(), tmp_path / d, jobs=2)
        assert (again.analysed, again.reused) == (0, 3)
    # a hash thread stopped early hands over only finished files
    partial = EarlyHashes(items).stop()
    assert all(partial[k] == known[k] for k in partial)


def test_progress_line_of_a_stored_failure_says_error(capsys):
    """A re-run's log names a stored failure as an error, not as a plain 'reused'."""
    from cytomnt.run.progress import Progress
    from cytomnt.sample.results import SampleResult
    bar = Progress(2, enabled=True)
    bar.bar = None                                          # the log-line form (pipelines, CI logs)
    bar.update(SampleResult({"sample_id": "bad", "status": "error", "error": "bad.fcs: truncated"},
                            pd.DataFrame()), reused=True)
    bar.update(SampleResult({"sample_id": "good", "status": "ok", "error": ""}, pd.DataFrame()), reused=True)
    err = capsys.readouterr().err
    assert "bad: ERROR bad.fcs: truncated (stored result reused)" in err
    assert "good: ok (stored result reused)" in err
