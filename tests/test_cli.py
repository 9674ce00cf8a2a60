"""The command line: a thin layer over the API, with documented exit codes."""
import pandas as pd
import pytest

from cytomnt.cli import main

from .conftest import FIXTURES


def test_panel_command_prints_mapping(capsys):
    assert main(["panel", str(FIXTURES / "blood_numbered.fcs")]) == 0
    out = capsys.readouterr().out
    assert "t_cell" in out and "B1-A" in out and "CD3 BV421" in out


def test_panel_command_reports_missing_roles(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text("roles:\n  car: [Nope]\n")
    assert main(["panel", str(FIXTURES / "csf_bd.fcs"), "--panel", str(tmp_path / "p.yaml")]) == 1
    assert "missing required role(s): car" in capsys.readouterr().out


def test_analyze_exit_codes(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["analyze", str(FIXTURES / "csf_bd.fcs"), "--out", str(out)]) == 0
    assert pd.read_csv(out / "samples.csv").status.tolist() == ["ok"]
    assert "csf_bd" in (out / "report.html").read_text()
    bad = tmp_path / "bad.fcs"
    bad.write_bytes(b"not an fcs file at all, just text" * 3)
    assert main(["analyze", str(bad), str(FIXTURES / "csf_bd.fcs"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "2 files: 0 analysed, 1 reused from the store, 1 failed" in err and "not an FCS file" in err
    assert "not an FCS file" in (out / "errors.csv").read_text()
    assert main(["analyze", str(FIXTURES / "csf_bd.fcs"), "--strategy", "missing.wsp"]) == 2
    assert main(["analyze", str(tmp_path / "nothing-here")]) == 2


def test_demo_runs_end_to_end(demo_run):
    assert demo_run.code == 0
    text, out = demo_run.printed, demo_run.out
    assert "PT-A_CSF_d28" in text and "Research use only" in text
    assert "Patient PT-A as of 2026-05-14, day +73: MNT risk tier HIGH" in text
    assert "Patient PT-B as of 2026-05-14, day +31: MNT risk tier LOW" in text
    assert "why: no risk factor present" in text            # every factor settled, all absent
    assert "\nQC_SATURATED: acquisition QC removed saturated events" in text   # each flag shown says what it means
    df = pd.read_csv(out / "samples.csv")
    assert len(df) == 8 and (df.status == "ok").all()
    assert set(df.sample_type) == {"pb", "csf"} and set(df.patient_id) == {"PT-A", "PT-B"}
    a14 = df.set_index("sample_id").loc["PT-A_PB_d14"]
    assert a14.car_predominance == "CD4" and a14.car_pct_of_t > 60
    assert (out / "summary.txt").exists() and len(list((out / "gates").glob("*.xml"))) == 8
    assert len(list((out / "plots").glob("*.png"))) == 8 and (out / "report.html").exists()


@pytest.mark.parametrize("argv", [["--help"], ["risk", "--help"], ["cohort", "--help"], ["panel", "{fcs}"],
                                  ["inspect", "{fcs}"]])
def test_commands_that_do_not_gate_do_not_load_flowkit(argv):
    """``--help``, ``risk``, ``cohort``, ``panel`` and ``inspect`` answer without loading FlowKit
    (1.2 s of imports, bokeh among them), scipy (1.3 s) or the gating engine."""
    import subprocess
    import sys
    args = [a.format(fcs=FIXTURES / "blood_bd.fcs") for a in argv]
    code = ("import sys\nfrom cytomnt.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in ('flowkit', 'bokeh', 'matplotlib', 'scipy', 'gating.evaluator.evaluate', 'gating.auto.engine') "
            "if m in sys.modules))" % args)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "LOADED []" in out, out[-500:]


def test_panel_command_says_what_analyze_would_refuse(tmp_path, capsys):
    """`panel` resolves roles as `analyze` does: a channel claimed by two roles is not 'ok' in
    one command and refused in the other."""
    (tmp_path / "p.yaml").write_text("roles:\n  fsc_a: [FSC-A]\n  fsc_h: [FSC-A]\n")
    assert main(["panel", str(FIXTURES / "csf_bd.fcs"), "--panel", str(tmp_path / "p.yaml")]) == 1
    out = capsys.readouterr().out
    assert "`cytomnt analyze` stops at:" in out and "matches both role 'fsc_a' and role 'fsc_h'" in out
    assert main(["analyze", str(FIXTURES / "csf_bd.fcs"), "--panel", str(tmp_path / "p.yaml"),
                 "--out", str(tmp_path / "o")]) == 1                  # the file fails, with the same reason
    assert "matches both role 'fsc_a' and role 'fsc_h'" in pd.read_csv(tmp_path / "o" / "samples.csv").error[0]
