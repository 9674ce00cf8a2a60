"""Batch runs: the results store (reuse, resume after SIGKILL), quarantine, manifest checks, Dask."""
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

import cytomnt
from cytomnt.batch import run_batch
from cytomnt.cli import main
from cytomnt.pipeline import make_config
from cytomnt.store import ResultStore
from cytomnt.synth import TubeSpec, write_tube


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


def test_rerun_reuses_the_store_and_changes_nothing(tubes, tmp_path):
    cfg = make_config()
    r1, s1 = run_batch([tubes], cfg, tmp_path, jobs=2)
    first = tables(tmp_path)
    assert (s1.analysed, s1.reused, s1.failed) == (11, 0, 1)
    r2, s2 = run_batch([tubes], make_config(), tmp_path, jobs=2)
    assert (s2.analysed, s2.reused) == (0, 11)
    assert tables(tmp_path) == first
    err = pd.read_csv(tmp_path / "errors.csv")
    assert err.sample_id.tolist() == ["broken"] and "broken.fcs" in err.error[0]
    # a different configuration is a different result: analysed again, both kept in the store
    _, s3 = run_batch([tubes / "t00.fcs"], make_config(sample_type="csf"), tmp_path)
    assert s3.analysed == 1
    st = ResultStore(tmp_path / "results.sqlite")
    assert len(st.keys()) == 12
    st.close()


def test_sigkill_at_random_points_then_finish_gives_identical_tables(tubes, tmp_path):
    ref = tmp_path / "ref"
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "cytomnt.cli", "analyze", str(tubes), "--out", str(ref), "--jobs", "2"],
                   check=False, capture_output=True)
    full = time.monotonic() - t0          # kill points are drawn inside an uninterrupted run's duration
    out = tmp_path / "killed"
    rng = random.Random(20261126)
    stored_after_kill = []
    for _ in range(5):
        p = subprocess.Popen([sys.executable, "-m", "cytomnt.cli", "analyze", str(tubes), "--out", str(out),
                              "--jobs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        time.sleep(rng.uniform(0.3, 0.95) * full)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        if (out / "results.sqlite").exists():
            st = ResultStore(out / "results.sqlite")
            stored_after_kill.append(len(st.keys()))
            st.close()
    done = subprocess.run([sys.executable, "-m", "cytomnt.cli", "analyze", str(tubes), "--out", str(out), "--jobs", "2"],
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stderr          # 1: the broken file failed, the rest is done
    assert tables(out) == tables(ref)
    assert any(n < 11 for n in stored_after_kill), stored_after_kill      # some kills really were mid-run
    st = ResultStore(out / "results.sqlite")
    assert len(st.keys()) == 11                        # nothing duplicated
    st.close()


def test_dask_local_cluster_gives_the_same_tables(tubes, tmp_path):
    pytest.importorskip("distributed")
    files = sorted(tubes.glob("t0[0-3].fcs")) + [tubes / "broken.fcs"]
    run_batch(files, make_config(), tmp_path / "local", jobs=1)
    _, s = run_batch(files, make_config(), tmp_path / "dask", jobs=2, executor="dask")
    assert s.analysed == 5
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
