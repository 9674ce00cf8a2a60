"""The MNT risk evaluator: inputs, ALC kinetics, factors as of a date, tiers, rules, plug-ins."""
import datetime as dt
import json
import textwrap

import pandas as pd
import pytest

from cytomnt.cli import main
from cytomnt.patients import kinetics
from cytomnt.patients.clinical import ClinicalDataError, load, read_clinical, read_labs
from cytomnt.patients.risk import Rules, RulesError, assess, logic, timeline
from cytomnt.patients.risk import factors as risk_factors

D0 = dt.date(2026, 1, 1)
HEAD = ("patient_id,product,infusion_date,bridging_response,bmpc_pct,m_spike_g_dl,sflc_mg_l,ferritin_ng_ml,"
        "crs_max_grade,icans_max_grade,prior_bcma_bispecific\n")


def files(tmp_path, clinical_rows, lab_rows):
    c = tmp_path / "clinical.csv"
    c.write_text(HEAD + "".join(r + "\n" for r in clinical_rows))
    lab = tmp_path / "labs.csv"
    lab.write_text("patient_id,date,alc_k_per_ul\n" + "".join(r + "\n" for r in lab_rows))
    return c, lab


def day(n):
    return D0 + dt.timedelta(days=n)


@pytest.fixture
def p1(tmp_path):
    c, lab = files(tmp_path, ["P1,cilta-cel,2026-01-01,PR,30,1,200,500,1,0,no",
                              "P2,ide-cel,2026-01-01,VGPR,10,1,100,300,1,0,yes"],
                   [f"P1,{day(d)},{v}" for d, v in ((4, 0.4), (8, 1.9), (12, 3.6), (19, 2.0))] +
                   [f"P2,{day(10)},3.0", f"P2,{day(14)},2.9"])
    return load(c, lab)


def test_no_look_ahead(p1):
    """ALC crossing 3.0 on day 12: unknown as of day 10 (the peak may still come), true as of day 14."""
    f10 = assess(p1, "P1", day(10)).factor("alc_max_gt_3")
    assert f10.present is None and "day 30" in f10.settle
    a14 = assess(p1, "P1", day(14))
    assert a14.factor("alc_max_gt_3").present is True and a14.factor("alc_max_gt_3").value == 3.6
    assert assess(p1, "P1", day(10)).data_used["alc_values"] == 2


def test_kinetics_are_part_of_the_assessment(p1):
    k = assess(p1, "P1", day(30)).kinetics
    assert (k["alc_max_k_per_ul"], k["alc_max_day"]) == (3.6, 12)
    assert k["rate_of_rise_k_per_ul_per_day"] == pytest.approx((3.6 - 1.9) / 4)
    assert k["alc_d10_k_per_ul"] is None                 # days 8 and 12 are 2 days from day 10
    assert assess(p1, "P1", day(9)).kinetics["alc_max_k_per_ul"] == 1.9


def test_peak_of_exactly_three_is_not_above_three(p1):
    f = assess(p1, "P2", day(31)).factor("alc_max_gt_3")           # day 31: the day 0-30 window has closed
    assert f.value == 3.0 and f.present is False
    assert assess(p1, "P2", day(31)).factor("alc_max_d0_14_ge_2_4").present is True   # >= 2.4
    assert assess(p1, "P2", day(30)).factor("alc_max_gt_3").present is None         # day 30 itself: still open


def test_alc_in_cells_per_ul_is_refused_naming_row_and_unit(tmp_path):
    c, lab = files(tmp_path, ["P1,cilta-cel,2026-01-01,PR,,,,,,,"], ["P1,2026-01-10,1.2", "P1,2026-01-14,3500"])
    with pytest.raises(ClinicalDataError, match=r"x10\^3 cells/uL.*row 3 \(P1, 2026-01-14: 3500\).*--alc-unit cells_per_ul"):
        load(c, lab)
    data = load(c, lab, alc_unit="cells_per_ul")          # declared unit: converted
    assert data.labs.alc_k_per_ul.tolist() == [0.0012, 3.5]
    assert main(["risk", "--clinical", str(c), "--labs", str(lab)]) == 2


@pytest.mark.parametrize("row, message", [
    ("P1,cilta-cel,03/04/2026,PR,,,,,,,", "day and month are ambiguous"),
    ("P1,cilta-cell,2026-01-01,PR,,,,,,,", "product.*'cilta-cell' is not one of"),
    ("P1,cilta-cel,2026-01-01,XR,,,,,,,", "bridging_response.*'XR'"),
    ("P1,cilta-cel,2026-01-01,PR,-5,,,,,,", "bmpc_pct: -5 is outside"),
    ("P1,cilta-cel,2026-01-01,PR,,,,,2.5,,", "grade 2.5 must be a whole number"),
    ("P1,cilta-cel,2026-01-01,PR,,,,,,,maybe", "must be yes or no"),
])
def test_clinical_errors_name_row_and_column(tmp_path, row, message):
    c, _ = files(tmp_path, [row], [])
    with pytest.raises(ClinicalDataError, match=rf"row 2, column .*{message}"):
        read_clinical(c)


def test_duplicate_patients_and_missing_columns(tmp_path):
    c, _ = files(tmp_path, ["P1,cilta-cel,2026-01-01,PR,,,,,,,", "P1,ide-cel,2026-01-01,PR,,,,,,,"], [])
    with pytest.raises(ClinicalDataError, match="row 3.*second row"):
        read_clinical(c)
    (tmp_path / "bad.csv").write_text("patient_id,product\nP1,ide-cel\n")
    with pytest.raises(ClinicalDataError, match="missing column"):
        read_clinical(tmp_path / "bad.csv")


def test_labs_errors(tmp_path):
    c, lab = files(tmp_path, ["P1,cilta-cel,2026-01-01,PR,,,,,,,"], ["P9,2026-01-02,1.0"])
    with pytest.raises(ClinicalDataError, match="P9.*not in the clinical file"):
        load(c, lab)
    c, lab = files(tmp_path, ["P1,cilta-cel,2026-01-01,PR,,,,,,,"], ["P1,2026-01-02,1.0", "P1,2026-01-02,2.0"])
    with pytest.raises(ClinicalDataError, match="different ALC values on 2026-01-02"):
        load(c, lab)
    c, lab = files(tmp_path, ["P1,cilta-cel,2026-01-01,PR,,,,,,,"], ["P1,2030-01-02,1.0"])
    with pytest.raises(ClinicalDataError, match="in the future"):
        read_labs(lab, today=dt.date(2026, 11, 26))


def test_kinetics():
    pts = [kinetics.AlcPoint(d, day(d), v) for d, v in ((0, 0.3), (9, 2.0), (11, 2.5), (14, 3.1), (35, 5.0))]
    assert kinetics.alc_max(pts).day == 14                      # day 35 is outside 0-30
    assert kinetics.alc_max(pts, (0, 40)).alc_k_per_ul == 5.0
    assert kinetics.alc_on_day(pts, 10, 1).day == 11            # equally near: the higher (2.5 vs 2.0), as the factor reads it
    assert kinetics.alc_on_day(pts, 20, 1) is None
    assert kinetics.rate_of_rise(pts) == pytest.approx(0.25)


def test_tiers_and_unknowns(p1):
    a = assess(p1, "P1", day(30))
    assert a.tier == "elevated" and "one risk factor" in a.reason
    # tumour burden and CRS known; no flow data: a phenotype rule could still raise the tier
    assert any(c.startswith("high:") for c in a.could_be_higher)
    assert a.factor("car_gt_60pct_of_t").present is None
    assert a.literature["alc_gt_3"]["ppv_counts"] == "46/201"
    assert "Research use only" in a.research_use and a.rules_version == Rules.default().version


def test_warning_for_prior_bispecific(p1):
    a = assess(p1, "P2", day(30))
    assert a.factor("prior_bcma_bispecific").present is True


def test_crs_counts_only_once_known(tmp_path):
    """An undated grade is never assumed known; a dated one counts from its date; a maximum below
    the threshold is settled only once the CRS/ICANS window (day 30) has closed."""
    c, lab = files(tmp_path, ["P1,cilta-cel,2026-01-01,PR,85,,,,3,0,no"], [])
    data = load(c, lab)
    for d in (5, 14, 60):
        f = assess(data, "P1", day(d)).factor("crs_ge_2_or_icans")
        assert f.present is None and "crs_date" in f.settle, d
    c.write_text(HEAD.replace("prior_bcma_bispecific\n", "prior_bcma_bispecific,crs_date\n")
                 + f"P1,cilta-cel,2026-01-01,PR,85,,,,3,0,no,{day(25)}\n")
    data = load(c, lab)
    assert assess(data, "P1", day(14)).factor("crs_ge_2_or_icans").present is None   # reached on day 25
    assert assess(data, "P1", day(25)).factor("crs_ge_2_or_icans").present is True
    c.write_text(HEAD + "P1,cilta-cel,2026-01-01,PR,85,,,,1,0,no\n")
    data = load(c, lab)
    assert assess(data, "P1", day(20)).factor("crs_ge_2_or_icans").present is None   # grade 1 so far
    assert assess(data, "P1", day(31)).factor("crs_ge_2_or_icans").present is False


def test_timeline_first_fired(p1):
    t = timeline(p1, "P1")
    ff = t.first_fired()
    assert ff["alc_max_gt_3"] == day(12)
    assert ff["tier_elevated"] == day(0)                # cilta-cel is a risk factor from infusion on
    assert [s.as_of for s in t.steps][:4] == [day(0), day(4), day(8), day(12)]
    assert day(31) in [s.as_of for s in t.steps]        # the day the day 0-30 window has closed


def test_flow_factors_and_csf_against_car_negative(tmp_path):
    c, lab = files(tmp_path, ["P1,cilta-cel,2026-01-01,PR,,,,,,,no"], [f"P1,{day(12)},3.5"])
    flow = pd.DataFrame([
        {"sample_id": "b14", "patient_id": "P1", "collection_date": day(14), "sample_type": "pb", "status": "ok",
         "qc_flags": "", "car_pct_of_t": 70.0, "car_pct_of_t_ci_low": 66.0, "car_pct_of_t_ci_high": 74.0,
         "car_predominance": "CD4", "car_cd4_cd8_ratio": 3.0, "carneg_cd4_cd8_ratio": 1.5, "car_cd4_enrichment": 2.0},
        {"sample_id": "c20", "patient_id": "P1", "collection_date": day(20), "sample_type": "csf", "status": "ok",
         "qc_flags": "", "car_pct_of_t": 20.0, "car_pct_of_t_ci_low": 14.0, "car_pct_of_t_ci_high": 27.0,
         "car_predominance": "CD4", "car_cd4_cd8_ratio": 1.8, "carneg_cd4_cd8_ratio": 2.4, "car_cd4_enrichment": 0.75,
         "car_cd4": 90, "car_cd8": 50, "carneg_cd4": 480, "carneg_cd8": 200},
        {"sample_id": "b30", "patient_id": "P1", "collection_date": day(30), "sample_type": "pb", "status": "ok",
         "qc_flags": "LOW_EVENT_COUNT", "car_pct_of_t": 95.0, "car_pct_of_t_ci_low": 80.0, "car_pct_of_t_ci_high": 99.0,
         "car_predominance": "CD8", "car_cd4_cd8_ratio": 0.2,
         "carneg_cd4_cd8_ratio": 1.0, "car_cd4_enrichment": 0.2}])
    data = load(c, lab, flow)
    a = assess(data, "P1", day(40))
    assert a.factor("car_gt_60pct_of_t").value == 70.0            # the LOW_EVENT_COUNT sample is not used
    assert a.factor("car_cd4_predominant").present is True
    # CSF CAR CD4:CD8 1.8 is CD4-predominant but below the tube's CAR-negative 2.4 (odds ratio 0.75,
    # interval 0.5-1.1): not beyond the tube's own CD4 richness, and not clearly below it either
    assert a.factor("csf_car_cd4_predominant").present is None
    assert a.tier == "high"
    assert assess(data, "P1", day(13)).factor("car_gt_60pct_of_t").present is None   # sample not yet taken


def test_three_valued_logic():
    f = {"a": True, "b": None, "c": False}
    assert logic.evaluate("a and b", f) is None and logic.evaluate("a or b", f) is True
    assert logic.evaluate("c and b", f) is False and logic.evaluate("not b", f) is None
    assert logic.evaluate("count(a, b, c) >= 2", f) is None and logic.evaluate("count(a, b, c) >= 1", f) is True
    assert logic.evaluate("count(a, c) >= 2", f) is False
    with pytest.raises(logic.RuleSyntaxError):
        logic.evaluate("__import__('os')", f)


def test_rules_file_override_and_errors(tmp_path, p1):
    text = (Rules.default().source and None) or __import__("importlib.resources").resources.files("cytomnt") \
        .joinpath("data/mnt_rules.yaml").read_text()
    import re
    (tmp_path / "r.yaml").write_text(re.sub(r'version: "[^"]+"', 'version: "lab-7"', text, count=1)
                                     .replace("threshold: 3.0\n    unit", "threshold: 1.5\n    unit", 1))
    r = Rules.from_yaml(tmp_path / "r.yaml")
    a = assess(p1, "P1", day(10), r)
    assert a.rules_version == "lab-7" and a.factor("alc_max_gt_3").present is True
    (tmp_path / "bad.yaml").write_text(text.replace("kind: alc_on_day", "kind: alc_on_da"))
    with pytest.raises(RulesError, match="alc_d10_gt_3.*unknown kind 'alc_on_da'"):
        Rules.from_yaml(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text(text.replace("alc_max_gt_3 and bridging_nonresponse", "alc_max_gt3 and x"))
    with pytest.raises(RulesError, match="unknown factor"):
        Rules.from_yaml(tmp_path / "bad2.yaml")


def test_plugin_factor_kind(tmp_path, monkeypatch, p1):
    dist = tmp_path / "labrisk-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: labrisk\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[cytomnt.risk_factors]\nalc_count = labrisk_mod:alc_count\n")
    (tmp_path / "labrisk_mod.py").write_text(textwrap.dedent('''
        def alc_count(ctx):
            """How many ALC values were measured so far."""
            return len(ctx.alc), f"{len(ctx.alc)} values"
        '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(risk_factors, "_LOADED", False)
    text = __import__("importlib.resources").resources.files("cytomnt").joinpath("data/mnt_rules.yaml").read_text()
    text = text.replace("factors:\n", "factors:\n  - {id: many_alc, label: many ALC values, kind: alc_count, op: '>=', "
                                      "threshold: 3}\n", 1)
    (tmp_path / "r.yaml").write_text(text)
    a = assess(p1, "P1", day(30), Rules.from_yaml(tmp_path / "r.yaml"))
    assert a.factor("many_alc").present is True and a.factor("many_alc").value == 4
    risk_factors._KINDS.pop("alc_count", None)


def test_cli_risk_json_and_timeline(tmp_path, p1, capsys):
    c, lab = tmp_path / "clinical.csv", tmp_path / "labs.csv"
    assert main(["risk", "--clinical", str(c), "--labs", str(lab), "--as-of", str(day(10)), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {d["patient_id"] for d in doc} == {"P1", "P2"}
    f = next(x for x in doc[0]["factors"] if x["id"] == "alc_max_gt_3")
    assert f["status"] == "unknown" and f["threshold"] == 3.0 and f["sources"] and "day 30" in f["settle"]
    assert main(["risk", "--clinical", str(c), "--labs", str(lab), "--timeline", "--patient", "P1"]) == 0
    out = capsys.readouterr().out
    assert "first fired: alc_max_gt_3 2026-01-13" in out
    assert main(["risk", "--clinical", str(c), "--labs", str(lab), "--patient", "P9"]) == 2
