"""End to end on the committed fixtures: counts against truth, Gating-ML round trip, errors."""
import shutil

import numpy as np
import pandas as pd
import pytest

import cytomnt
from gating import read_fcs
from gating.formats.strategy import gate_sample, read_gatingml

from cytomnt.errors import ConfigError
from cytomnt.sample.results import SAMPLE_COLUMNS

from .conftest import FIXTURES, truth_of


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    files = [FIXTURES / n for n in ("blood_bd.fcs", "blood_numbered.fcs", "csf_bd.fcs")]
    df = cytomnt.analyze(files, out=out)
    return df, out


def test_columns_and_one_row_per_file(run):
    df, out = run
    assert list(df.columns) == list(SAMPLE_COLUMNS)
    assert len(df) == 3 and (df.status == "ok").all()
    on_disk = pd.read_csv(out / "samples.csv")
    assert list(on_disk.columns) == list(SAMPLE_COLUMNS)


@pytest.mark.parametrize("name", ["blood_bd", "blood_numbered", "csf_bd"])
def test_counts_match_truth(run, name):
    df, _ = run
    r = df.set_index("sample_id").loc[name]
    t = truth_of(FIXTURES / f"{name}.fcs")
    assert abs(r.car_pct_of_t - t["car_pct_of_t"]) < 2.0
    assert r.car_cd4_cd8_ratio == pytest.approx(t["car_cd4"] / t["car_cd8"], rel=0.10)
    assert r.t_cells == pytest.approx(t["t_cells"], rel=0.03)
    assert r.car_pct_of_t_ci_low <= r.car_pct_of_t <= r.car_pct_of_t_ci_high


def test_gatingml_reapplied_reproduces_counts(run):
    df, out = run
    pops = pd.read_csv(out / "populations.csv")
    for sid in df.sample_id:
        strategy = read_gatingml(out / "gates" / f"{sid}.xml")
        sample = read_fcs(FIXTURES / f"{sid}.fcs").sample
        again = {p.name: p.count for p in gate_sample(strategy, sample)}
        mine = pops[pops.sample_id == sid].set_index("population")["count"].to_dict()
        assert again == mine
        row = df.set_index("sample_id").loc[sid]
        assert again["car_t"] == row.car_t_gross and again["t_cells"] == row.t_cells
        assert row.car_status != "ok" or 0 < row.car_t <= row.car_t_gross + row.car_background_expected


def test_populations_table(run):
    _, out = run
    pops = pd.read_csv(out / "populations.csv")
    for col in ("sample_id", "population", "parent", "count", "pct_parent", "pct_total", "median_car", "median_t_cell"):
        assert col in pops.columns
    car = pops[(pops.sample_id == "blood_bd") & (pops.population == "car_t")].iloc[0]
    t = pops[(pops.sample_id == "blood_bd") & (pops.population == "t_cells")].iloc[0]
    assert car.parent == "t_cells" and car.pct_parent == pytest.approx(100 * car["count"] / t["count"], rel=1e-5)
    assert car.median_car > t.median_car      # CAR+ cells are brighter in the CAR channel


def test_recorded_compensation_transform_and_type(run):
    df, _ = run
    r = df.set_index("sample_id").loc["csf_bd"]
    assert r.compensation.startswith("$SPILLOVER") and "logicle" in r["transform"]
    assert r.sample_type == "csf" and r.sample_type_source == "inferred" and "SAMPLE_TYPE_INFERRED" in r.qc_flags


def test_bad_file_does_not_stop_batch(tmp_path):
    bad = tmp_path / "broken.fcs"
    bad.write_bytes(b"FCS3.1" + b" " * 100)
    empty = tmp_path / "empty.fcs"
    empty.write_bytes(b"")
    shutil.copy(FIXTURES / "csf_bd.fcs", tmp_path / "csf_bd.fcs")
    df = cytomnt.analyze([tmp_path], out=tmp_path / "out")
    by = df.set_index("sample_id")
    assert by.loc["csf_bd", "status"] == "ok"
    assert by.loc["broken", "status"] == "error" and "broken.fcs" in by.loc["broken", "error"]
    assert "too short" in by.loc["empty", "error"]
    assert (tmp_path / "out" / "gates" / "csf_bd.xml").exists()


def test_missing_role_is_a_row_error(tmp_path):
    (tmp_path / "p.yaml").write_text("roles:\n  car: [NoSuchMarker]\n")
    df = cytomnt.analyze([FIXTURES / "csf_bd.fcs"], panel=tmp_path / "p.yaml")
    assert df.status[0] == "error" and "'car'" in df.error[0] and "NoSuchMarker" in df.error[0]


def test_manifest_types_ids_and_alc(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("file,sample_id,patient_id,collection_date,sample_type,alc_k_per_ul\n"
                 "blood_bd.fcs,PT1-d14,PT1,2026-01-15,pb,2.5\n")
    df = cytomnt.analyze([FIXTURES / "blood_bd.fcs", FIXTURES / "csf_bd.fcs"], manifest=m, sample_type="csf")
    r = df.set_index("sample_id").loc["PT1-d14"]
    assert r.patient_id == "PT1" and r.sample_type == "pb" and r.sample_type_source == "manifest"
    assert r.car_t_per_ul_source == "alc" and r.car_t_per_ul == pytest.approx(2500 * r.car_t / r.lymphocytes)
    assert df.set_index("sample_id").loc["csf_bd", "sample_type_source"] == "option"


def test_manifest_refuses_cells_per_ul(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("file,sample_id,patient_id,collection_date,sample_type,alc_k_per_ul\nblood_bd.fcs,a,P,2026-01-01,pb,3500\n")
    with pytest.raises(ConfigError, match="row 2.*3500.*cells/uL"):
        cytomnt.analyze([FIXTURES / "blood_bd.fcs"], manifest=m)


def test_negative_control_sets_car_cut(tmp_path):
    df = cytomnt.analyze([FIXTURES / "blood_bd.fcs"], negative_control=FIXTURES / "negative_control_bd.fcs")
    t = truth_of(FIXTURES / "blood_bd.fcs")
    assert df.strategy[0] == "auto+control"
    assert abs(df.car_pct_of_t[0] - t["car_pct_of_t"]) < 2.0


def test_beads_give_absolute_counts(tmp_path):
    (tmp_path / "p.yaml").write_text("beads:\n  beads_per_test: 50000\n  test_volume_ul: 50\n")
    df = cytomnt.analyze([FIXTURES / "blood_beads.fcs"], panel=tmp_path / "p.yaml")
    t = truth_of(FIXTURES / "blood_beads.fcs")
    assert df.beads[0] == t["bead_events"]
    assert df.car_t_per_ul[0] == pytest.approx(t["car_t"] / t["bead_events"] * 1000, rel=0.02)


def test_accepts_flowkit_samples_and_is_deterministic(tmp_path):
    s = read_fcs(FIXTURES / "csf_bd.fcs", "csf_from_api").sample
    df = cytomnt.analyze([s])
    assert df.sample_id[0] == "csf_from_api" and df.status[0] == "ok"
    cytomnt.analyze([FIXTURES / "csf_bd.fcs", FIXTURES / "blood_bd.fcs"], out=tmp_path / "a")
    cytomnt.analyze([FIXTURES / "blood_bd.fcs", FIXTURES / "csf_bd.fcs"], out=tmp_path / "b", jobs=2)
    for f in ("samples.csv", "populations.csv", "gates/csf_bd.xml"):
        a = (tmp_path / "a" / f).read_bytes().replace(str(tmp_path / "a").encode(), b"")
        b = (tmp_path / "b" / f).read_bytes().replace(str(tmp_path / "b").encode(), b"")
        assert a == b, f


def test_duplicate_names_get_distinct_ids(tmp_path):
    for d in ("x", "y"):
        (tmp_path / d).mkdir()
    shutil.copy(FIXTURES / "csf_bd.fcs", tmp_path / "x" / "tube.fcs")
    shutil.copy(FIXTURES / "blood_bd.fcs", tmp_path / "y" / "tube.FCS")
    df = cytomnt.analyze([tmp_path])
    assert len(df) == 2 and df.sample_id.nunique() == 2
    assert all("DUPLICATE_SAMPLE_ID" in f for f in df.qc_flags)


def test_unknown_strategy_and_bad_options():
    with pytest.raises(ConfigError, match="not found"):
        cytomnt.analyze([FIXTURES / "csf_bd.fcs"], strategy="nope.xml")
    with pytest.raises(ConfigError, match="unknown key"):
        cytomnt.analyze([FIXTURES / "csf_bd.fcs"], strategy="auto", gate_map="tcell=x")
    assert np.isfinite(1.0)
