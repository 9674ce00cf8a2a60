"""The core lab's review loop: every run writes OUT/cytomnt.wsp; FlowKit's Workspace (an
independent reader of FlowJo's format) finds the same counts in it; a reviewer's moved gate comes
back with --strategy and the run says what changed; a workspace's sample or group gates apply to
any file."""
import re
import shutil
import warnings
from pathlib import Path

import flowkit as fk
import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import cytomnt
from gating.formats.strategy import read_gatingml

from cytomnt.demo import make_demo_set
from cytomnt.errors import ConfigError

from .conftest import TESTDATA, shared

pytestmark = pytest.mark.slow


def flowkit_counts(wsp: Path, fcs_dir: Path) -> pd.DataFrame:
    """(sample, path, count) of every population FlowKit's Workspace computes from the workspace, its
    samples loaded from the folder as FlowJo names them (by $FIL, else the file name)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = fk.Workspace(str(wsp), fcs_samples=str(fcs_dir))
        ws.analyze_samples(use_mp=False)
        rep = ws.get_analysis_report()
    paths = ["/".join(tuple(p)[1:] + (g,)) for p, g in zip(rep.gate_path, rep.gate_name)]
    return pd.DataFrame({"file": rep.sample_id, "path": paths, "count": rep["count"]})


def flowjo_name(path: Path) -> str:
    import flowio
    return str(flowio.FlowData(str(path), only_text=True).text.get("fil", "") or "").strip() or path.name


def assert_flowkit_agrees(out: Path, fcs_dir: Path) -> int:
    ours = pd.read_csv(out / "populations.csv")
    files = pd.read_csv(out / "samples.csv").set_index("sample_id").file.map(lambda f: flowjo_name(Path(f)))
    ours["file"] = ours.sample_id.map(files)
    theirs = flowkit_counts(out / "cytomnt.wsp", fcs_dir)
    assert set(theirs.file) == set(ours.file), (sorted(set(theirs.file)), sorted(set(ours.file)))
    m = ours.merge(theirs, on=["file", "path"], how="left", suffixes=("", "_flowkit"))
    assert m.count_flowkit.notna().all(), m[m.count_flowkit.isna()][["file", "path"]]
    assert (m["count"] == m.count_flowkit).all(), m[m["count"] != m.count_flowkit][["file", "path", "count",
                                                                                    "count_flowkit"]]
    return len(m)


def tables(out: Path) -> dict[str, pd.DataFrame]:
    pops = pd.read_csv(out / "populations.csv").drop(columns=["car_pos_t_reaching", "removes_car_pos_t_pct",
                                                              "car_neg_t_reaching", "removes_car_neg_t_pct"])
    samples = pd.read_csv(out / "samples.csv")
    # what the gates hold; the CAR estimate net of background needs cytomnt's reference, which a
    # workspace does not carry (re-applied, the gates are the reviewer's call: car_t = car_t_gross)
    counts = ["sample_id", "events", "singlets", "live", "lymphocytes", "t_cells", "t_cd4", "t_cd8", "car_t_gross",
              "car_cd4_gross", "car_cd8_gross", "t_cd4_cd8_ratio"]
    return {"populations": pops, "statistics": pd.read_csv(out / "statistics.csv"), "samples": samples[counts]}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("review")
    manifest = make_demo_set(base / "data")
    out = base / "out"
    cytomnt.analyze([base / "data" / "fcs"], manifest=manifest, out=out, jobs=2)
    return base, manifest, out


def test_demo_workspace_counts_and_reimport(demo, tmp_path):
    base, manifest, out = demo
    assert assert_flowkit_agrees(out, base / "data" / "fcs") >= 100
    again = tmp_path / "again"
    df = cytomnt.analyze([base / "data" / "fcs"], manifest=manifest, strategy=out / "cytomnt.wsp", out=again)
    assert (df.status == "ok").all(), df.error.tolist()
    for gml in (again / "gates").glob("*.xml"):          # the workspace's gates, written back as valid Gating-ML
        read_gatingml(gml)
    for name, table in tables(out).items():
        assert_frame_equal(tables(again)[name], table, check_exact=False, rtol=1e-12, obj=name)


def test_activation_real_workspace_counts_and_reimport(tmp_path):
    d = shared("activation_real") / "Activation"
    panel = TESTDATA / "activation_panel.yaml"
    out = tmp_path / "out"
    cytomnt.analyze([d], panel=panel, out=out)
    assert assert_flowkit_agrees(out, d) >= 40
    again = tmp_path / "again"
    cytomnt.analyze([d], panel=panel, strategy=out / "cytomnt.wsp", out=again)
    for name, table in tables(out).items():
        assert_frame_equal(tables(again)[name], table, check_exact=False, rtol=1e-12, obj=name)


def test_a_moved_gate_comes_back_as_a_change(demo, tmp_path):
    base, manifest, out = demo
    review = tmp_path / "out"
    shutil.copytree(out, review)
    wsp = (review / "cytomnt.wsp").read_text()
    # the reviewer raises the CD4 CAR cut of one sample (the second one in the workspace)
    sample = re.findall(r'<SampleNode name="([^"]+)"', wsp)[1]
    start = wsp.index(f'<SampleNode name="{sample}"')
    cut = re.compile(r'(<Population name="car_cd4".*?gating:min=")([^"]+)(")', re.S)
    m = cut.search(wsp, start)
    old_cut = float(m.group(2))
    reviewed = wsp[:m.start(2)] + repr(old_cut * 1.5) + wsp[m.end(2):]
    (tmp_path / "reviewed.wsp").write_text(reviewed)
    cytomnt.analyze([base / "data" / "fcs"], manifest=manifest, strategy=tmp_path / "reviewed.wsp", out=review)
    changes = pd.read_csv(review / "changes.csv", keep_default_na=False)
    sid = Path(sample).stem
    assert set(changes.sample_id) == {sid}, changes
    calls = changes[changes.path == "samples.csv"].set_index("population")
    assert calls.loc["car_basis"].new_value == "user gates"          # the reviewer's gate: the reviewer's call
    row = changes[changes.path != "samples.csv"].set_index("population").loc["car_cd4"]
    before = pd.read_csv(out / "populations.csv").set_index(["sample_id", "population"])["count"]
    now = pd.read_csv(review / "populations.csv").set_index(["sample_id", "population"])["count"]
    assert int(row.old_count) == before[(sid, "car_cd4")] and int(row.new_count) == now[(sid, "car_cd4")] < int(row.old_count)
    assert f"min {old_cut:.6g} -> {old_cut * 1.5:.6g}" in row.gate_change
    others = [s for s in now.index.get_level_values(0).unique() if s != sid]
    assert (now.loc[others] == before.loc[others]).all()
    # samples nobody touched keep their whole row (their CAR call against the tube's own background)
    rows_before = pd.read_csv(out / "samples.csv", dtype=str).set_index("sample_id").drop(index=sid)
    rows_now = pd.read_csv(review / "samples.csv", dtype=str).set_index("sample_id").drop(index=sid)
    assert_frame_equal(rows_now, rows_before)
    from cytomnt.exports.report import build_report
    html = build_report(review).read_text()
    assert "Changed since the previous results" in html and f"{int(row.old_count)}</td>" in html
    assert '<td class="num">internal</td><td class="num">user gates</td>' in html     # values, not counts


def test_aurora_sample_gates_on_renamed_files(tmp_path):
    d = shared("flowjo_workspaces") / "coereba_aurora"
    truth = pd.read_csv(d / "flowjo_counts.csv")
    assert len(truth) == 30
    # every fifth sample (6 of 30); all 30 under their own names: test_tired_user.py
    for i, row in enumerate(truth.iloc[::5].itertuples()):
        copy = tmp_path / f"renamed_{i:02d}.fcs"           # FlowJo's name for it no longer matches
        shutil.copy(d / "fcs" / row.sample_name, copy)
        got = counts_of(copy, strategy=d / "CytoML.wsp", wsp_sample=row.sample_name)
        assert got[row.population_path] == row.count, (row.sample_name, got, row.count)


def counts_of(fcs: Path, **options) -> dict[str, int]:
    out = fcs.with_suffix(".out")
    df = cytomnt.analyze([fcs], out=out, **options)
    assert df.status[0] == "ok", df.error[0]
    p = pd.read_csv(out / "populations.csv")
    return dict(zip(p.path, p["count"]))


def test_group_gates_on_any_file(tmp_path):
    d = shared("flowjo_workspaces") / "simple_line_example"
    copy = tmp_path / "new_day.fcs"
    shutil.copy(d / "data_set_simple_line_100.fcs", copy)
    group = counts_of(copy, strategy=d / "simple_poly_and_rect.wsp", wsp_group="my_group")
    theirs = flowkit_counts(d / "simple_poly_and_rect.wsp", d / "data_set_simple_line_100.fcs")
    assert group == dict(zip(theirs.path, theirs["count"])) and group


def test_wsp_choices_explain_themselves(tmp_path):
    d = shared("flowjo_workspaces") / "coereba_aurora"
    with pytest.raises(ConfigError, match="no sample named nope.fcs; its samples are 2025"):
        cytomnt.analyze([d / "fcs"], strategy=d / "CytoML.wsp", wsp_sample="nope.fcs")
    with pytest.raises(ConfigError, match="group All Samples .* holds no gates of its own.*--wsp-sample"):
        cytomnt.analyze([d / "fcs"], strategy=d / "CytoML.wsp", wsp_group="All Samples")
    with pytest.raises(ConfigError, match="no group Nope; its groups are All Samples, Compensation"):
        cytomnt.analyze([d / "fcs"], strategy=d / "CytoML.wsp", wsp_group="Nope")
    with pytest.raises(ConfigError, match="is not a .wsp"):
        cytomnt.analyze([d / "fcs"], wsp_group="All Samples")


def test_unedited_workspace_back_into_its_folder_changes_nothing(demo, tmp_path):
    """The review loop with no correction: every sample keeps its result; every table identical."""
    base, manifest, out = demo
    again = tmp_path / "out"
    shutil.copytree(out, again)
    cytomnt.analyze([base / "data" / "fcs"], manifest=manifest, strategy=out / "cytomnt.wsp", out=again)
    for name in ("samples.csv", "populations.csv", "statistics.csv"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    assert len(pd.read_csv(again / "changes.csv")) == 0


def test_channel_names_as_flowjo_writes_them(tmp_path):
    """FlowJo writes '/' in a channel name as '_': such a workspace's gates find the file's channel."""
    d = shared("flowjo_workspaces") / "simple_line_example"
    wsp = (d / "simple_poly_and_rect.wsp").read_text()
    channels = set(re.findall(r'data-type:name="([^"]+)"', wsp))
    assert channels, "no channel names in the workspace"
    import flowio
    fcs = flowio.FlowData(str(d / "data_set_simple_line_100.fcs"))
    renamed = {ch: ch.replace("_", "/") if "_" in ch else ch + "/x" for ch in channels}
    text = wsp
    for ch, new in renamed.items():
        text = text.replace(f'data-type:name="{ch}"', f'data-type:name="{new.replace("/", "_")}"')
    (tmp_path / "w.wsp").write_text(text)
    labels = [fcs.channels[k]["pnn"] for k in sorted(fcs.channels, key=int)]
    events = np.reshape(fcs.events, (-1, len(labels)))
    out_fcs = tmp_path / "data_set_simple_line_100.fcs"
    with open(out_fcs, "wb") as fh:
        flowio.create_fcs(fh, events.ravel(), [renamed.get(lab, lab) for lab in labels])
    got = counts_of(out_fcs, strategy=tmp_path / "w.wsp")
    theirs = flowkit_counts(d / "simple_poly_and_rect.wsp", d / "data_set_simple_line_100.fcs")
    assert got == dict(zip(theirs.path, theirs["count"])) and got


def test_back_to_the_unedited_workspace_restores_every_result(demo, tmp_path):
    """After a reviewed run (one sample on user gates), the unedited workspace again: every sample
    takes back its own result (not the reviewed run's), whatever --plots says."""
    base, manifest, out = demo
    folder = tmp_path / "out"
    shutil.copytree(out, folder)
    wsp = (folder / "cytomnt.wsp").read_text()
    second = wsp.index("<SampleNode", wsp.index("<SampleNode") + 1)
    m = re.compile(r'(<Population name="car_cd4".*?gating:min=")([^"]+)(")', re.S).search(wsp, second)
    (tmp_path / "reviewed.wsp").write_text(wsp[:m.start(2)] + repr(float(m.group(2)) * 1.5) + wsp[m.end(2):])
    (tmp_path / "original.wsp").write_text(wsp)
    cytomnt.analyze([base / "data" / "fcs"], manifest=manifest, strategy=tmp_path / "reviewed.wsp", out=folder)
    assert pd.read_csv(folder / "changes.csv").sample_id.nunique() == 1
    cytomnt.analyze([base / "data" / "fcs"], manifest=manifest, strategy=tmp_path / "original.wsp", out=folder,
                    plots=True)
    assert (folder / "samples.csv").read_bytes() == (out / "samples.csv").read_bytes()


def test_changes_compare_a_file_with_its_own_earlier_result(tmp_path):
    """Two files with one sample id (same name, two folders) are never compared with each other."""
    from .conftest import FIXTURES
    for folder, fixture in (("a", "csf_bd.fcs"), ("b", "blood_numbered.fcs")):
        (tmp_path / folder).mkdir()
        shutil.copy(FIXTURES / fixture, tmp_path / folder / "tube.fcs")
    out = tmp_path / "out"
    cytomnt.analyze([tmp_path / "a", tmp_path / "b"], out=out)
    cytomnt.analyze([tmp_path / "a", tmp_path / "b"], out=out, acquisition_qc=False)   # a new configuration
    changes = pd.read_csv(out / "changes.csv")
    # no change row compares the CSF tube with the blood tube (their counts differ by orders of magnitude)
    counts = changes.dropna(subset=["old_count", "new_count"])
    assert all(max(r.old_count, r.new_count) <= 3 * min(r.old_count, r.new_count) + 50 for r in counts.itertuples()), counts
