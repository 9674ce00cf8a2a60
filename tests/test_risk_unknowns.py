"""Unknown is never absent: open windows, intervals across a threshold, undated events, uncertain
flow calls; tiers whose reasons agree with the factors; one as-of default for risk and report."""
import datetime as dt
import json
import re

import pandas as pd
import pytest

from cytomnt.cli import main
from cytomnt.demo import DEMO_PATIENTS, write_demo_clinical
from cytomnt.patients.clinical import load
from cytomnt.patients.risk import assess, timeline

HEAD = ("patient_id,product,infusion_date,bridging_response,bmpc_pct,m_spike_g_dl,sflc_mg_l,ferritin_ng_ml,"
        "crs_max_grade,icans_max_grade,prior_bcma_bispecific")
D0 = dt.date(2026, 2, 1)


def day(n):
    return D0 + dt.timedelta(days=n)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    clinical, labs, as_of = write_demo_clinical(d)
    return load(clinical, labs), {p["patient_id"]: dt.date.fromisoformat(p["infusion"]) for p in DEMO_PATIENTS}


def test_open_window_is_unknown_then_settled(demo):
    data, inf = demo
    a10 = assess(data, "PT-A", inf["PT-A"] + dt.timedelta(days=10))      # ALC 2.9 and rising; peak 4.2 on day 14
    f = a10.factor("alc_max_gt_3")
    assert f.present is None and f.value == 2.9 and "day 30" in f.settle
    assert a10.factor("alc_max_d0_14_ge_2_4").present is True              # 2.9 >= 2.4 already settles it
    b31 = assess(data, "PT-B", inf["PT-B"] + dt.timedelta(days=31))      # PT-B peaks at 1.4
    assert b31.factor("alc_max_gt_3").present is False
    assert assess(data, "PT-B", inf["PT-B"] + dt.timedelta(days=30)).factor("alc_max_gt_3").present is None
    a3 = assess(data, "PT-A", inf["PT-A"] + dt.timedelta(days=3))
    assert a3.tier != "low" and a3.highest_possible_tier == "high"


def test_low_tier_says_it_can_still_rise(demo):
    data, inf = demo
    b3 = assess(data, "PT-B", inf["PT-B"] + dt.timedelta(days=3))
    assert b3.tier == "low" and b3.highest_possible_tier == "high"
    assert "no risk factor present" not in b3.reason and "still unknown" in b3.reason
    assert all(f.settle for f in b3.factors if f.present is None)


def _clin(tmp_path, row, extra_cols=""):
    c = tmp_path / "clinical.csv"
    c.write_text(HEAD + extra_cols + "\n" + row + "\n")
    lab = tmp_path / "labs.csv"
    lab.write_text("patient_id,date,alc_k_per_ul\n")
    return c, lab


def test_cilta_cel_with_crs_3_is_not_no_risk_factor(tmp_path):
    c, lab = _clin(tmp_path, f"P1,cilta-cel,{D0},VGPR,10,1,100,300,3,0,no,{day(5)}", ",crs_date")
    a = assess(load(c, lab), "P1", day(40))
    assert a.tier == "elevated"
    assert "no risk factor" not in a.reason and "cilta_cel" in a.reason and "crs_ge_2_or_icans" in a.reason


def _csf(tmp_path, car4, car8, neg4, neg8, call):
    c, lab = _clin(tmp_path, f"P1,ide-cel,{D0},PR,,,,,,,no")
    flow = pd.DataFrame([{"sample_id": "csf1", "patient_id": "P1", "collection_date": day(20), "sample_type": "csf",
                          "status": "ok", "qc_flags": "", "car_status": "ok", "car_status_reason": "",
                          "car_pct_of_t": 40.0, "car_pct_of_t_ci_low": 30.0, "car_pct_of_t_ci_high": 50.0,
                          "car_predominance": call, "car_cd4_cd8_ratio": (car4 / car8) if car8 else float("nan"),
                          "car_cd4": car4, "car_cd8": car8, "carneg_cd4": neg4, "carneg_cd8": neg8,
                          "carneg_cd4_cd8_ratio": (neg4 / neg8) if neg8 else float("nan"),
                          "car_cd4_enrichment": float("nan")}])
    return assess(load(c, lab, flow), "P1", day(40)).factor("csf_car_cd4_predominant")


def test_csf_factor_from_the_2x2_table(tmp_path):
    # 30:0 CAR against 40:0 CAR-negative: CD4-only both, so nothing says CAR is beyond the tube's own
    # CD4 richness, and nothing says it is not: never absent
    f = _csf(tmp_path, 30, 0, 40, 0, "CD4")
    assert f.present is None and f.settle
    assert _csf(tmp_path, 60, 5, 100, 100, "CD4").present is True        # far more CD4-rich than its T cells
    assert _csf(tmp_path, 10, 60, 100, 50, "CD8").present is False
    assert _csf(tmp_path, 50, 45, 600, 300, "balanced").present is False


def test_no_value_before_its_date_in_a_replay(tmp_path):
    """An undated CRS grade 3 is never used; a grade dated day 25 is used from day 25 on."""
    c, lab = _clin(tmp_path, f"P1,ide-cel,{D0},PR,,,,,3,0,no")
    lab.write_text("patient_id,date,alc_k_per_ul\n" + "".join(f"P1,{day(d)},1.0\n" for d in (3, 7, 14, 21, 28)))
    t = timeline(load(c, lab), "P1")
    assert all(s.factor("crs_ge_2_or_icans").present is None for s in t.steps)
    c, lab = _clin(tmp_path, f"P1,ide-cel,{D0},PR,,,,,3,0,no,{day(25)}", ",crs_date")
    lab.write_text("patient_id,date,alc_k_per_ul\n" + "".join(f"P1,{day(d)},1.0\n" for d in (3, 7, 14, 21, 28)))
    t = timeline(load(c, lab), "P1")
    for s in t.steps:
        assert s.factor("crs_ge_2_or_icans").present is (True if s.as_of >= day(25) else None), s.as_of
    assert t.first_fired()["crs_ge_2_or_icans"] == day(25)


def test_ferritin_is_a_dated_baseline_and_imwg_responses_are_read(tmp_path):
    c, lab = _clin(tmp_path, f"P1,ide-cel,{D0},MR,,,,1500,,,no,{D0 - dt.timedelta(days=4)}", ",ferritin_date")
    data = load(c, lab)
    assert assess(data, "P1", day(1)).factor("ferritin_high").present is True
    assert assess(data, "P1", D0 - dt.timedelta(days=6)).factor("ferritin_high").present is None   # before its date
    assert assess(data, "P1", day(1)).factor("bridging_nonresponse").present is True                 # MR < PR
    c, lab = _clin(tmp_path, f"P1,ide-cel,{D0},sCR,,,,1500,,,no,{day(3)}", ",ferritin_date")
    with pytest.raises(ValueError, match="ferritin_date.*after the infusion date.*baseline"):
        load(c, lab)
    c, lab = _clin(tmp_path, f"P1,ide-cel,{D0},sCR,,,,,,,no")
    assert assess(load(c, lab), "P1", day(1)).factor("bridging_nonresponse").present is False


def test_risk_and_report_give_the_same_tier(tmp_path, capsys):
    import shutil

    from cytomnt.exports.report import build_report
    from .conftest import FIXTURES
    out = tmp_path / "out"
    m = tmp_path / "manifest.csv"
    shutil.copy(FIXTURES / "blood_bd.fcs", tmp_path / "b.fcs")
    m.write_text(f"file,sample_id,patient_id,collection_date,sample_type\nb.fcs,B1,P1,{day(9)},pb\n")
    assert main(["analyze", str(tmp_path / "b.fcs"), "--manifest", str(m), "--out", str(out), "--no-report"]) == 0
    c, lab = _clin(tmp_path, f"P1,cilta-cel,{D0},SD,30,1,200,500,1,0,no")
    lab.write_text("patient_id,date,alc_k_per_ul\n" + f"P1,{day(9)},3.4\n")
    for as_of in (day(9), day(40), None):
        args = ["risk", "--clinical", str(c), "--labs", str(lab), "--store", str(out / "results.sqlite"), "--json"]
        assert main(args + (["--as-of", str(as_of)] if as_of else [])) == 0
        tier = json.loads(capsys.readouterr().out)[0]["tier"]
        html = build_report(out, c, lab, as_of).read_text()
        shown = re.search(r'class="tier (\w+)"', html).group(1)
        assert shown == tier, (as_of, shown, tier)


def _with_labs(tmp_path, row, labs, extra=""):
    c, lab = _clin(tmp_path, row, extra)
    lab.write_text("patient_id,date,alc_k_per_ul\n" + "".join(f"P1,{day(d)},{v}\n" for d, v in labs))
    return load(c, lab)


def test_a_peak_nobody_measured_stays_unknown(tmp_path):
    """One ALC on day 0 says nothing about the peak on days 7-21: unknown even after day 30."""
    data = _with_labs(tmp_path, f"P1,ide-cel,{D0},VGPR,,,,,0,0,no", [(0, 0.3)])
    f = assess(data, "P1", day(36)).factor("alc_max_gt_3")
    assert f.present is None and "7-14" in f.detail and f.settle
    data = _with_labs(tmp_path, f"P1,ide-cel,{D0},VGPR,,,,,0,0,no", [(0, 0.3), (9, 1.1), (16, 1.4), (25, 0.8)])
    assert assess(data, "P1", day(36)).factor("alc_max_gt_3").present is False


def test_day_10_value_is_final_only_when_it_can_be(tmp_path):
    data = _with_labs(tmp_path, f"P1,ide-cel,{D0},VGPR,,,,,0,0,no", [(9, 2.0), (11, 3.5)])
    assert assess(data, "P1", day(9)).factor("alc_d10_gt_3").present is None       # day 10 may still come
    f = assess(data, "P1", day(12)).factor("alc_d10_gt_3")
    assert f.present is True and f.value == 3.5                                     # equally near: the higher


def test_replays_do_not_show_future_values(tmp_path):
    c, lab = _clin(tmp_path, f"P1,ide-cel,{D0},VGPR,,,,1500,3,0,no,{D0 - dt.timedelta(days=2)},{day(6)}",
                   ",ferritin_date,crs_date")
    data = load(c, lab)
    early = assess(data, "P1", D0 - dt.timedelta(days=5))
    assert "1500" not in early.factor("ferritin_high").detail
    assert "grade 3" not in assess(data, "P1", day(3)).factor("crs_ge_2_or_icans").detail


def test_input_mistakes_are_messages(tmp_path, capsys):
    c, lab = _clin(tmp_path, f"P1,ide-cel,{D0},VGPR,,,,,0,0,no")
    lab.write_text(f"patient_id,date,alc_k_per_ul\nP1,{day(3)},-1\n")
    assert main(["risk", "--clinical", str(c), "--labs", str(lab)]) == 2
    err = capsys.readouterr().err
    assert "alc_k_per_ul" in err and "row 2" in err and "Traceback" not in err
    c.write_text(HEAD + f"\nP1,ide-cel,{D0},VGPR,,,,,0,0,no\nP2,ide-cel,{D0},VGPR,,,,,0,0,no\n")
    lab.write_text(f"patient_id,date,alc_k_per_ul\nP1,{day(3)},1.0\n")      # P2 has no ALC at all
    assert main(["risk", "--clinical", str(c), "--labs", str(lab), "--as-of", str(day(40))]) == 0


def test_conflicting_same_day_alc_names_the_rows(tmp_path):
    c, lab = _clin(tmp_path, f"P1,ide-cel,{D0},VGPR,,,,,0,0,no")
    lab.write_text(f"patient_id,date,alc_k_per_ul\nP1,{day(3)},1.0\nP1,{day(5)},1.2\nP1,{day(3)},1.4\n")
    with pytest.raises(ValueError, match=r"different ALC values on .*: row 2 \(1\), row 4 \(1.4\)"):
        load(c, lab)


def test_higher_tiers_name_the_unknown_factors_they_need(demo):
    data, inf = demo
    b3 = assess(data, "PT-B", inf["PT-B"] + dt.timedelta(days=3))
    assert b3.could_be_higher
    for c in b3.could_be_higher:
        assert "(if " in c and "out present)" in c and "alc_max_gt_3" in c or "crs_ge_2_or_icans" in c, c
