"""User-facing messages: every mistake ends in one line naming the file, the key or row, and
what was expected (exit code 2), never in a traceback or a silently ignored setting."""
import shlex
from pathlib import Path

import pytest

from cytomnt.cli import main, risk_command
from cytomnt.inputs.manifest import ManifestError, read_manifest
from cytomnt.inputs.panel import Panel, PanelError

from .conftest import FIXTURES, TESTDATA, shared

BLOOD = FIXTURES / "blood_bd.fcs"
HEADER = "file,sample_id,patient_id,collection_date,sample_type\n"


def _panel_error(tmp_path, text: str) -> str:
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(PanelError) as e:
        Panel.from_yaml(f)
    msg = str(e.value)
    assert str(f) in msg and "name, roles, markers, beads" in msg
    return msg


# --- 1. panel files: unknown keys are errors, not silently ignored ---------------------------

def test_panel_misspelt_roles_key_suggests_roles(tmp_path):
    msg = _panel_error(tmp_path, "role:\n  car: [CD38]\n")
    assert "unknown top-level key(s) 'role' (did you mean 'roles'?)" in msg


def test_panel_misspelt_markers_key_suggests_markers(tmp_path):
    msg = _panel_error(tmp_path, "marker: m.csv\n")
    assert "'marker' (did you mean 'markers'?)" in msg


def test_panel_role_at_top_level_says_roles_go_under_roles(tmp_path):
    msg = _panel_error(tmp_path, "t_cell: [Va2]\ncar: [CD69]\n")
    assert "'t_cell', 'car'" in msg and "are roles: roles go indented under 'roles:'" in msg
    msg = _panel_error(tmp_path, "tcell: [Va2]\n")
    assert "'tcell' looks like role 't_cell'" in msg


def test_panel_unknown_beads_key_suggests_the_known_one(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("beads:\n  beads_per_tube: 50000\n")
    with pytest.raises(PanelError) as e:
        Panel.from_yaml(f)
    msg = str(e.value)
    assert str(f) in msg and "'beads_per_tube' (did you mean 'beads_per_test'?) in 'beads:'" in msg
    assert "beads_per_test, test_volume_ul" in msg


def test_panel_beads_role_list_at_top_level_is_explained(tmp_path):
    msg = str(pytest.raises(PanelError, Panel.from_yaml, _write(tmp_path / "p.yaml", "beads: [CountBright]\n")).value)
    assert "'beads' must be a mapping" in msg and "goes under 'roles:'" in msg


def test_shipped_panels_still_load():
    assert Panel.default().name == "default"
    shared("activation_real")       # its markers: table lives in ../shared/data
    p = Panel.from_yaml(TESTDATA / "activation_panel.yaml")
    assert p.name == "activation" and p.markers


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- 2. `cytomnt panel`: a message and exit 2, and the file's channels --------------------------

@pytest.mark.parametrize("text, expected", [
    ("roles:\n  car: [CD38\n", "not valid YAML (line 3, column 1"),
    (None, "cannot be read (No such file or directory)"),
    ("roles:\n  tcell: [CD3]\n", "unknown role(s) tcell (did you mean 't_cell'?)"),
    ("role:\n  car: [CD38]\n", "unknown top-level key(s) 'role' (did you mean 'roles'?)"),
], ids=["yaml-syntax", "missing-panel", "unknown-role", "unknown-key"])
def test_panel_command_panel_mistakes_exit_2_without_traceback(tmp_path, capsys, text, expected):
    panel = tmp_path / "p.yaml"
    if text is not None:
        panel.write_text(text)
    assert main(["panel", str(BLOOD), "--panel", str(panel)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("cytomnt: ") and str(panel) in err and expected in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("make, expected", [
    (lambda d: d / "gone.fcs", "gone.fcs: file not found"),
    (lambda d: _write(d / "notes.fcs", "just some text, certainly not a list-mode FCS file\n" * 3), "not an FCS file"),
    (lambda d: d, "cannot be read as an FCS file (Is a directory)"),
], ids=["missing", "not-fcs", "directory"])
def test_panel_command_bad_fcs_exits_2_without_traceback(tmp_path, capsys, make, expected):
    path = make(tmp_path)
    assert main(["panel", str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"cytomnt: {path}") and expected in err
    assert "Traceback" not in out + err


def test_panel_command_lists_the_files_channels_after_the_roles(capsys):
    assert main(["panel", str(FIXTURES / "blood_numbered.fcs")]) == 0
    out = capsys.readouterr().out
    roles, _, channels = out.partition("channels in the file (13):")
    assert "t_cell" in roles and channels, out
    rows = [line.split(None, 2) for line in channels.strip().splitlines()]
    assert rows[0] == ["n", "channel", "($PnN)  marker ($PnS)"]
    assert ["4", "B1-A", "CD3 BV421"] in rows and ["11", "E1-A", "CD38 APC"] in rows   # unused channels too
    assert ["1", "FSC-A", "-"] in rows and len(rows) == 14


# --- 3. manifest collection_date: checked at read time -----------------------------------------

def test_manifest_refuses_ambiguous_collection_date(tmp_path):
    m = _write(tmp_path / "m.csv", HEADER + "a.fcs,a,P1,2026-03-02,pb\nb.fcs,b,P1,09/03/2026,pb\n")
    with pytest.raises(ManifestError) as e:
        read_manifest(m)
    assert str(e.value) == (f"manifest {m}, row 3, column collection_date: date '09/03/2026' is not YYYY-MM-DD "
                            "(also accepted: DD.MM.YYYY, YYYY/MM/DD); forms like 03/04/2026 are refused because day "
                            "and month are ambiguous")


@pytest.mark.parametrize("value", ["2026-02-30", "2026-03-09T10:00", "03/09/2026", "9.3.26", "2026-W10"])
def test_manifest_refuses_dates_that_are_not_dates_or_ambiguous(tmp_path, value):
    m = _write(tmp_path / "m.csv", HEADER + f"a.fcs,a,P1,{value},pb\n")
    with pytest.raises(ManifestError, match=rf"m.csv, row 2, column collection_date: date '{value}' .*YYYY-MM-DD"):
        read_manifest(m)


@pytest.mark.parametrize("value", ["2026-03-16", "16.03.2026", "2026/03/16", "20260316"])
def test_one_date_reading_for_manifest_clinical_and_labs(tmp_path, value):
    """The forms the clinical and labs files take, the manifest takes too (stored as ISO)."""
    from cytomnt.patients.clinical import parse_date
    m = _write(tmp_path / "m.csv", HEADER + f"a.fcs,a,P1,{value},pb\n")
    assert read_manifest(m)["a.fcs"].collection_date == "2026-03-16"
    assert parse_date(value, "labs").isoformat() == "2026-03-16"


def test_manifest_accepts_empty_and_iso_dates(tmp_path):
    m = _write(tmp_path / "m.csv", HEADER + "a.fcs,a,P1,,pb\nb.fcs,b,P1, 2026-03-09 ,pb\n")
    got = read_manifest(m)
    assert got["a.fcs"].collection_date == "" and got["b.fcs"].collection_date == "2026-03-09"


def test_analyze_with_bad_manifest_date_exits_2_before_writing(tmp_path, capsys):
    m = _write(tmp_path / "m.csv", HEADER + "blood_bd.fcs,a,P1,2026-03-02,pb\ncsf_bd.fcs,b,P1,09/03/2026,csf\n")
    out = tmp_path / "out"
    assert main(["analyze", str(BLOOD), "--manifest", str(m), "--out", str(out), "--no-report"]) == 2
    stdout, err = capsys.readouterr()
    assert f"cytomnt: manifest {m}, row 3, column collection_date: date '09/03/2026'" in err
    assert "Traceback" not in stdout + err
    assert not out.exists() or not any(out.iterdir())


# --- 4. the demo's risk hint works from where the demo was run ---------------------------------

def _fake_demo(root: Path) -> Path:
    out = root / "cytomnt demo"                         # a space: the hint must be quoted
    (out / "data").mkdir(parents=True)
    for name in ("data/clinical.csv", "data/labs.csv", "samples.csv"):
        (out / name).write_text("x\n")
    return out


def _paths_of(cmd: str) -> list[str]:
    words = shlex.split(cmd)
    return [words[i + 1] for i, w in enumerate(words) if w in ("--clinical", "--labs", "--flow", "--treatments")]


def test_risk_command_paths_exist_from_the_current_folder(tmp_path, monkeypatch):
    out = _fake_demo(tmp_path)
    monkeypatch.chdir(tmp_path)
    cmd = risk_command(out, "data/clinical.csv", "data/labs.csv", "samples.csv", "2026-05-13")
    assert cmd.startswith("cytomnt risk --clinical 'cytomnt demo/data/clinical.csv'")
    assert cmd.endswith("--as-of 2026-05-13 --brief")
    paths = _paths_of(cmd)
    assert len(paths) == 3 and all(Path(p).is_file() for p in paths), cmd
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    paths = _paths_of(risk_command(out, "data/clinical.csv", "data/labs.csv", "samples.csv", "2026-05-13"))
    assert paths[0] == "../cytomnt demo/data/clinical.csv" and all(Path(p).is_file() for p in paths)


def test_risk_command_relative_out_and_own_folder(tmp_path, monkeypatch):
    _fake_demo(tmp_path)
    monkeypatch.chdir(tmp_path)
    paths = _paths_of(risk_command(Path("cytomnt demo"), "data/clinical.csv", "data/labs.csv", "samples.csv", "d"))
    assert paths == ["cytomnt demo/data/clinical.csv", "cytomnt demo/data/labs.csv", "cytomnt demo/samples.csv"]
    own = risk_command(Path("cytomnt demo"), "data/clinical.csv", "data/labs.csv", "samples.csv", "d",
                       cwd=Path("cytomnt demo"))     # the form stored in summary.txt, beside the files
    assert _paths_of(own) == ["data/clinical.csv", "data/labs.csv", "samples.csv"]


# --- 5. --strategy help names every kind -------------------------------------------------------

def test_strategy_help_names_every_kind(capsys):
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert ("'auto' (default), a gating template .yaml, an openCyto gating template .csv, a Gating-ML 2.0 .xml, "
            "or a FlowJo 10 .wsp") in text


def test_demo_hint_names_the_venv_script_when_cytomnt_is_not_on_path(tmp_path, monkeypatch):
    """Set-up never activates the venv: the printed command must run as pasted."""
    import shutil as _shutil
    import sys as _sys

    from cytomnt.cli import program
    script = tmp_path / ".venv" / "bin" / "cytomnt"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_sys, "argv", [".venv/bin/cytomnt", "demo"])
    monkeypatch.setattr(_shutil, "which", lambda name: None)
    assert program() == ".venv/bin/cytomnt"
    monkeypatch.setattr(_shutil, "which", lambda name: str(script))
    assert program() == "cytomnt"


# --- a user's Gating-ML that does not fit a file -------------------------------------------------

def _one_gate_strategy(tmp_path, dimension) -> Path:
    import flowkit as fk
    strategy = fk.GatingStrategy()
    strategy.add_gate(fk.gates.RectangleGate("pos", [dimension]), ("root",))
    path = tmp_path / "gates.xml"
    with open(path, "wb") as fh:
        fk.export_gatingml(strategy, fh)
    return path


@pytest.mark.parametrize("compensation", ["uncompensated", "FCS"])
def test_a_gate_on_a_channel_the_file_lacks_names_the_gate_the_dimension_and_the_channels(tmp_path, compensation):
    import flowkit as fk

    import cytomnt
    gml = _one_gate_strategy(tmp_path, fk.Dimension("BV999-A", compensation_ref=compensation, range_min=100.0))
    df = cytomnt.analyze([BLOOD], strategy=gml, out=tmp_path / "out")
    error = df.error[0]
    assert df.status[0] == "error" and "\n" not in error
    assert error.startswith("gate 'pos': dimension 'BV999-A' is not a channel of this file")
    assert "FSC-A" in error and "PerCP-Cy5.5-A" in error          # the channels it has


def test_a_spillover_that_leaves_out_a_fluorescence_channel_is_one_line_naming_it(tmp_path):
    import flowkit as fk

    import cytomnt
    gml = _one_gate_strategy(tmp_path, fk.Dimension("APC-A", compensation_ref="FCS", range_min=100.0))
    df = cytomnt.analyze([FIXTURES / "blood_beads.fcs"], strategy=gml, out=tmp_path / "out")
    error = df.error[0]
    assert df.status[0] == "error" and "\n" not in error and "\\x0a" not in error
    assert "$SPILLOVER leaves out fluorescence channel(s) PE-Cy5-A" in error


def test_a_libraries_several_line_message_becomes_one_line():
    from cytomnt.sample.results import printable
    assert printable("Matrix labels do not match\n\nLabels not found:\r\nPE-Cy5-A\n") == \
        "Matrix labels do not match Labels not found: PE-Cy5-A"
    assert printable("bad byte \x00 here") == "bad byte \\x00 here"


def test_a_workspace_flowkit_trips_over_is_named_without_python_internals(tmp_path, monkeypatch):
    import flowkit as fk

    from gating.formats.strategy import StrategyError, WorkspaceStrategies
    wsp = tmp_path / "odd.wsp"
    wsp.write_text('<?xml version="1.0"?><Workspace version="20.0"><SampleList/></Workspace>')

    def trips(*args, **kwargs):
        raise AttributeError("'NoneType' object has no attribute 'findall'")
    monkeypatch.setattr(fk, "Workspace", trips)
    with pytest.raises(StrategyError) as e:
        WorkspaceStrategies(wsp)
    assert str(e.value) == f"{wsp}: cannot be read as a FlowJo 10 workspace (a part of a FlowJo 10 workspace " \
                           "that FlowKit needs is missing)"


def test_two_channels_with_one_name_say_the_file_is_at_fault_not_the_panel():
    from cytomnt.inputs.panel import Channel, match_role
    channels = [Channel(0, "FSC-A"), Channel(1, "SSC-A"), Channel(2, "FSC-A")]
    with pytest.raises(PanelError) as e:
        match_role("fsc_a", ["FSC-A"], channels, file="dup.fcs")
    assert str(e.value) == ("dup.fcs: 2 channels share the name ($PnN) 'FSC-A' ($P1N, $P3N), so none can be told "
                            "apart by name; channel names must be unique: correct the file's $PnN keywords or "
                            "export it again from the instrument")
    two_stains = [Channel(0, "B1-A", "CD4 FITC"), Channel(1, "B2-A", "CD4 PE")]
    with pytest.raises(PanelError, match="list the exact \\$PnN in the panel file"):
        match_role("cd4", ["CD4"], two_stains, file="x.fcs")     # a name two stains share: the panel can say which
