"""A tired user's day: every command against each class of bad input answers with its exit code and
one line naming the file, row or option, never a traceback; folders and hidden files handled;
exports other tools open; runs that say what happened."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cytomnt.cli import main

from .conftest import FIXTURES, TESTDATA, shared

BLOOD = FIXTURES / "blood_bd.fcs"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.csv").write_text("")
    (d / "latin1.csv").write_bytes("patient_id,product,infusion_date\nP\xe9,cilta-cel,2026-01-01\n".encode("latin-1"))
    (d / "folder").mkdir()
    (d / "not_fcs.fcs").write_text("file,sample_id\n")
    (d / "typo_manifest.csv").write_text("file,sample_id,patient_id,collection_date,sample_type,alc\n"
                                         f"{BLOOD.name},a,P1,2026-03-02,pb,3.1\n")
    (d / "typo_labs.csv").write_text("patient_id,date,alc_k_per_uL_\nP1,2026-03-02,3.1\n")
    (d / "a_file").write_text("x")
    (d / "clinical.csv").write_text("patient_id,product,infusion_date,bridging_response,bmpc_pct,m_spike_g_dl,sflc_mg_l,"
                                    "ferritin_ng_ml,crs_max_grade,icans_max_grade,prior_bcma_bispecific\n"
                                    "P1,cilta-cel,2026-03-01,PR,,,,,,,no\n")
    return d


def _cases(d: Path):
    """(command line, exit code, what the one line must contain)."""
    missing = str(d / "nowhere.fcs")
    return [
        (["analyze", missing], 2, "no such file or folder"),
        (["analyze", str(BLOOD), "--out", str(d / "a_file")], 2, "is a file"),
        (["analyze", str(BLOOD), "--manifest", str(d / "folder")], 2, str(d / "folder")),
        (["analyze", str(BLOOD), "--manifest", str(d / "empty.csv")], 2, "empty.csv"),
        (["analyze", str(BLOOD), "--manifest", str(d / "typo_manifest.csv")], 2, "did you mean alc_k_per_ul"),
        (["analyze", str(BLOOD), "--negative-control", str(d / "folder")], 2, "a folder, not a file"),
        (["analyze", str(BLOOD), "--negative-control", missing], 2, "does not exist"),
        (["analyze", str(BLOOD), "--panel", str(d / "folder")], 2, str(d / "folder")),
        (["analyze", str(BLOOD), "--strategy", str(d / "folder")], 2, "is a folder, not a strategy file"),
        (["analyze", str(BLOOD), "--strategy", str(d / "a_file")], 2, "has no extension to tell its kind"),
        (["inspect", missing], 2, "no such file or folder"),
        (["inspect", str(d / "folder")], 2, "no FCS files found"),
        (["inspect", str(d / "not_fcs.fcs")], 1, "not_fcs.fcs"),
        (["panel", str(d / "folder")], 2, str(d / "folder")),
        (["panel", missing], 2, "nowhere.fcs"),
        (["risk", "--clinical", str(d / "folder")], 2, str(d / "folder")),
        (["risk", "--clinical", str(d / "empty.csv")], 2, "empty.csv"),
        (["risk", "--clinical", str(d / "latin1.csv")], 2, "UTF-8"),
        (["risk", "--clinical", str(d / "clinical.csv"), "--labs", str(d / "typo_labs.csv")], 2,
         "did you mean 'alc_k_per_ul_' for alc_k_per_ul"),
        (["report", str(d / "folder")], 2, str(d / "folder")),
        (["export", str(d / "folder"), "--sample", "x", "--anndata", str(d / "x.h5ad")], 2, "folder"),
        (["cohort", str(d / "folder"), "--factor", "x", "--threshold", "1"], 2, str(d / "folder")),
        (["analyze", str(BLOOD), "--out", "/proc/cytomnt-no-such/out", "--no-report"], 2, "/proc/cytomnt-no-such"),
        (["analyze", str(BLOOD), "--out", "/proc", "--no-report"], 2, "cannot write in /proc"),   # even as root
        (["generate", str(d / "a_file")], 2, "a_file"),
        (["demo", "--out", str(d / "a_file")], 2, "a file where a folder was expected"),
    ]


def test_every_command_answers_bad_input_with_one_line(inputs, capsys):
    for argv, code, text in _cases(inputs):
        got = main(argv)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, argv
        assert got == code, (argv, got, err)
        if code == 1:                  # inspect: its report says why each file could not be read
            assert text in out and "cannot be read" in out, (argv, out)
            continue
        lines = [line for line in err.splitlines() if line.startswith("cytomnt")]
        assert len(lines) == 1 and text in lines[0], (argv, err)


def test_piped_into_head_ends_quietly(tmp_path):
    files = [str(p) for p in sorted(FIXTURES.glob("*.fcs"))] * 5
    p = subprocess.Popen([sys.executable, "-m", "cytomnt.cli", "inspect", "--json", *files],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.read(20)
    p.stdout.close()                        # the reader goes away, as `| head -c 20` does
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_inspect_takes_folders_and_hidden_files_are_skipped_with_a_note(tmp_path, capsys):
    shutil.copy(BLOOD, tmp_path / "tube.fcs")
    (tmp_path / "._tube.fcs").write_bytes(b"\x00\x05\x16\x07AppleDouble")      # macOS resource fork
    assert main(["inspect", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "tube.fcs" in out and "._tube.fcs" not in out and "skipped 1 hidden file" in err
    assert main(["analyze", str(tmp_path), "--out", str(tmp_path / "o"), "--no-report", "--jobs", "1"]) == 0
    assert "skipped 1 hidden file" in capsys.readouterr().err


@pytest.mark.slow
def test_workspace_strategy_outputs_open_elsewhere_and_the_run_says_why_no_car_call(tmp_path, capsys):
    """The shared Aurora workspace: every gates/*.xml is schema-valid Gating-ML that FlowKit reads,
    AnnData export works after it, and the console says no CAR call was possible and why."""
    import flowkit as fk

    from gating.formats.strategy import schema_violation
    w = shared("flowjo_workspaces/coereba_aurora")
    out = tmp_path / "out"
    assert main(["analyze", str(w / "fcs"), "--strategy", str(w / "CytoML.wsp"), "--out", str(out), "--no-report"]) == 0
    err = capsys.readouterr().err
    assert "no CAR call in 30 of 30 sample(s)" in err and "--gate-map" in err
    truth = pd.read_csv(w / "flowjo_counts.csv")             # FlowJo's own counts, all 30 samples
    pops = pd.read_csv(out / "populations.csv")
    ours = {(s, p): c for s, p, c in zip(pops.sample_id, pops.path, pops["count"])}
    assert len(truth) == 30 and all(ours[(r.sample_name[:-4], r.population_path)] == r.count
                                    for r in truth.itertuples())
    docs = sorted((out / "gates").glob("*.xml"))
    assert len(docs) == 30
    for doc in docs:
        assert schema_violation(doc.open("rb")) == "", doc
        fk.parse_gating_xml(str(doc))
    sid = docs[0].stem
    assert main(["export", str(out), "--sample", sid, "--anndata", str(tmp_path / "a.h5ad")]) == 0
    import anndata
    a = anndata.read_h5ad(tmp_path / "a.h5ad")
    assert (a.var.marker != "").sum() >= 20


@pytest.mark.slow
def test_anndata_markers_come_from_the_panel_table(tmp_path, capsys):
    """Files without $PnS (the activation files): the panel's markers table names the channels."""
    d = shared("activation_real") / "Activation"
    out = tmp_path / "out"
    main(["analyze", str(d / "Activation_7.fcs"), "--panel", str(TESTDATA / "activation_panel.yaml"), "--out", str(out),
          "--no-report", "--jobs", "1"])
    assert main(["export", str(out), "--sample", "Activation_7", "--anndata", str(tmp_path / "a.h5ad")]) == 0
    import anndata
    var = anndata.read_h5ad(tmp_path / "a.h5ad").var
    assert var.loc["7-AAD-A", "marker"] == "CD69" and var.loc["Alexa Fluor 700-A", "marker"] == "CD4"


def test_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    """An error is one line; with CYTOMNT_DEBUG=1 (or --debug) the exception goes on to Python,
    which prints its traceback."""
    nothing = str(tmp_path / "nothing")
    assert main(["report", nothing]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "nothing" in err
    with pytest.raises(Exception, match="nothing"):
        main(["--debug", "report", nothing])
    monkeypatch.setenv("CYTOMNT_DEBUG", "1")
    with pytest.raises(Exception, match="nothing"):
        main(["report", nothing])


def test_a_second_run_into_the_same_out_waits_and_says_so(tmp_path):
    """Another run holds OUT (here: this test): a run into it says so and waits, then completes."""
    import threading
    import time

    from cytomnt.run.lock import holding
    out = tmp_path / "out"
    release = threading.Event()
    held = threading.Event()

    def hold():
        with holding(out):
            held.set()
            release.wait(120)
    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    p = subprocess.Popen([sys.executable, "-m", "cytomnt.cli", "analyze", str(BLOOD), "--out", str(out),
                          "--no-report", "--jobs", "1"], stderr=subprocess.PIPE, text=True)
    waited = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if "is writing to" in line:
            waited = line
            break
        if not line and p.poll() is not None:
            break
    assert not (out / "samples.csv").exists()           # nothing written while the other run holds OUT
    release.set()
    t.join()
    rest = p.stderr.read()
    assert p.wait(timeout=120) == 0, rest
    assert "another cytomnt run (pid" in waited and "waiting for it to finish" in waited
    assert (out / "samples.csv").exists() and "Traceback" not in rest


def test_a_closed_pipe_never_stops_a_run(tmp_path):
    """`cytomnt analyze ... 2>&1 | head -n 1`: the messages stop, the run does not."""
    out, src = tmp_path / "out", tmp_path / "in"
    src.mkdir()
    for name in ("csf_bd.fcs", "blood_bd.fcs"):                # a line per file and the summary after the first
        shutil.copy(FIXTURES / name, src / name)
    p = subprocess.Popen([sys.executable, "-m", "cytomnt.cli", "analyze", str(src), "--out", str(out), "--jobs", "1",
                          "--no-report"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    p.stdout.readline()
    p.stdout.close()
    assert p.wait(timeout=300) == 0
    assert len(pd.read_csv(out / "samples.csv")) == 2


def test_mistyped_options_and_wrong_paths_are_one_line(tmp_path, inputs):
    for argv, text in ((["analyze", str(BLOOD), "--ouput", "x"], "unrecognized arguments: --ouput"),
                       (["analyze", str(BLOOD), "--sample-type", "blood"], "invalid choice: 'blood'"),
                       (["report", str(BLOOD)], "is a file: give the folder of a run")):
        p = subprocess.run([sys.executable, "-m", "cytomnt.cli", *argv], capture_output=True, text=True)
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and text in p.stderr, (argv, p.stderr)


def test_hostile_sample_ids_export_and_misspelled_keywords_are_said(tmp_path, capsys):
    shutil.copy(BLOOD, tmp_path / "=cmd.fcs")
    out = tmp_path / "out"
    assert main(["analyze", str(tmp_path / "=cmd.fcs"), "--out", str(out), "--no-report", "--jobs", "1",
                 "--keywords", "$SCR,$CYT"]) == 0
    err = capsys.readouterr().err
    assert "--keywords $SCR: no analysed file has it" in err and "--keywords $CYT" not in err
    assert main(["export", str(out), "--sample", "=cmd", "--anndata", str(tmp_path / "a.h5ad")]) == 0
    assert main(["export", str(out), "--sample", "=cmd", "--anndata", str(tmp_path)]) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err
