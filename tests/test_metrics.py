import math

import pytest
from scipy.stats import binomtest

from cytomnt.sample.metrics import Counts, MetricSettings, exact_ci, phenotype, predominance


def test_ci_is_scipys_clopper_pearson():
    for k, n in ((0, 10), (3, 17), (250, 800), (800, 800)):
        ci = binomtest(k, n).proportion_ci(method="exact")
        assert exact_ci(k, n) == pytest.approx((ci.low, ci.high))
    assert all(math.isnan(v) for v in exact_ci(0, 0))


def test_predominance_calls_need_confidence():
    s = MetricSettings()
    assert predominance(30, 10, s) == "CD4"
    assert predominance(10, 30, s) == "CD8"
    assert predominance(200, 180, s) == "balanced"       # ratio 1.11, interval 0.90-1.37, inside 1/1.5-1.5
    assert predominance(20, 18, s) == "indeterminate"    # the same ratio on 38 events: interval too wide
    assert predominance(14, 8, s) == "indeterminate"     # 1.75 but the interval (0.7-4.9) crosses 1
    assert predominance(10, 5, s) == "indeterminate"     # 15 < 22 events
    assert predominance(30, 0, s) == "CD4"
    assert predominance(43, 128, s) == "CD8"             # the activation expert's CD69+ split


def test_predominance_threshold_comes_from_the_rules_file():
    from cytomnt.patients.risk import Rules
    rules = Rules.default()
    s = MetricSettings.from_rules(rules.flow_calls)
    assert s.predominance_ratio == rules.flow_calls["predominance_ratio"]
    stricter = MetricSettings.from_rules({**rules.flow_calls, "predominance_ratio": 3.0})
    assert predominance(60, 30, s) == "CD4" and predominance(60, 30, stricter) == "indeterminate"
    with pytest.raises(ValueError, match="unknown flow_calls key"):
        MetricSettings.from_rules({"cd4_ratio": 2})


def test_no_predominance_without_a_trustworthy_car_count():
    from cytomnt.sample.carcall import CarCall, CarEstimate
    c = Counts(events=5000, t_cells=800, t_cd4=500, t_cd8=300, car_t=60, car_cd4=50, car_cd8=10)
    est = CarEstimate(5.0, 4.0, 1.0, (0.0, 14.0), (0.0, 1.75), (0.2, 1.0))
    m, f = phenotype(c, call=CarCall("not_detected", "control", "background", 55.0, est))
    assert m["car_predominance"] == "" and "CAR_NOT_DETECTED" in f and "CAR_BELOW_LOD" in f   # 5 net < 13
    assert m["car_t"] == 5 and m["car_t_gross"] == 60 and m["car_pct_of_t"] == pytest.approx(0.625)
    assert (m["car_pct_of_t_ci_low"], m["car_pct_of_t_ci_high"]) == (0.0, 1.75)
    m, f = phenotype(c, call=CarCall("uncertain", "shape", "no valley"))
    assert m["car_predominance"] == "indeterminate" and "CAR_UNCERTAIN" in f and m["car_status"] == "uncertain"
    # no number the tool does not stand behind: the main columns are empty, the gate's count stays
    assert m["car_t"] is None and math.isnan(m["car_pct_of_t"]) and math.isnan(m["car_cd4_cd8_ratio"])
    assert m["car_t_gross"] == 60 and m["carneg_cd4"] is None


def test_calls_come_from_the_interval():
    from cytomnt.sample.carcall import CarCall, CarEstimate
    c = Counts(events=50000, t_cells=5000, t_cd4=2500, t_cd8=2500, car_t=400, car_cd4=100, car_cd8=300)
    s = MetricSettings()
    for share_ci, call in (((0.15, 0.45), "CD8"), ((0.55, 0.8), "CD4"), ((0.45, 0.55), "balanced"),
                           ((0.3, 0.6), "indeterminate")):
        est = CarEstimate(380.0, 95.0, 285.0, (330.0, 430.0), (6.6, 8.6), share_ci)
        m, _ = phenotype(c, s, call=CarCall("ok", "control", "", 20.0, est))
        assert m["car_predominance"] == call, share_ci
        assert m["car_cd4_cd8_ratio_ci_low"] == pytest.approx(share_ci[0] / (1 - share_ci[0]))
        assert m["car_t"] == 380 and m["car_cd4"] == 95 and m["car_cd8"] == 285 and m["car_t_gross"] == 400
        assert m["carneg_cd4"] == 2500 - 95 and m["car_pct_of_t"] == pytest.approx(7.6)


def test_lod_loq_and_low_count_flags():
    _, f = phenotype(Counts(events=1000, t_cells=80, car_t=12, car_cd4=6, car_cd8=6, t_cd4=50, t_cd8=30))
    assert "LOW_EVENT_COUNT" in f and "CAR_BELOW_LOD" in f and "CAR_BELOW_LOQ" not in f
    _, f = phenotype(Counts(events=1000, t_cells=500, car_t=20, car_cd4=10, car_cd8=10, t_cd4=300, t_cd8=200))
    assert f == ["CAR_BELOW_LOQ"]
    _, f = phenotype(Counts(events=1000, t_cells=0, car_t=0))
    assert "NO_T_CELLS" in f


def test_percentages_ratios_and_csf_background():
    m, _ = phenotype(Counts(events=5000, lymphocytes=1000, t_cells=800, t_cd4=500, t_cd8=250, car_t=200,
                            car_cd4=150, car_cd8=40))
    assert m["car_pct_of_t"] == 25.0
    assert m["car_pct_of_t_ci_low"] < 25 < m["car_pct_of_t_ci_high"]
    assert m["car_cd4_cd8_ratio"] == pytest.approx(3.75)
    assert m["carneg_cd4_cd8_ratio"] == pytest.approx(350 / 210)
    assert m["car_cd4_enrichment"] == pytest.approx(3.75 / (350 / 210))
    assert math.isnan(m["car_t_per_ul"])


def test_absolute_counts_from_beads_or_alc():
    c = Counts(events=5000, lymphocytes=1000, t_cells=800, car_t=200, car_cd4=100, car_cd8=100, beads=500)
    m, f = phenotype(c, alc_k_per_ul=2.0, beads_per_test=50000, test_volume_ul=50)
    assert m["car_t_per_ul_source"] == "beads" and m["car_t_per_ul"] == pytest.approx(200 / 500 * 1000)
    m, _ = phenotype(Counts(events=5000, lymphocytes=1000, t_cells=800, car_t=200), alc_k_per_ul=2.0)
    assert m["car_t_per_ul_source"] == "alc" and m["car_t_per_ul"] == pytest.approx(400.0)
    _, f = phenotype(c)
    assert "BEADS_WITHOUT_CONSTANTS" in f


def test_subset_concentrations_with_intervals_and_share_of_the_alc():
    from cytomnt.sample.carcall import CarCall, CarEstimate
    c = Counts(events=50000, lymphocytes=8000, t_cells=5000, t_cd4=2500, t_cd8=2500, car_t=400, car_cd4=100,
               car_cd8=300)
    est = CarEstimate(380.0, 95.0, 285.0, (330.0, 430.0), (6.6, 8.6), (0.15, 0.45), (70.0, 120.0), (250.0, 320.0))
    m, _ = phenotype(c, call=CarCall("ok", "control", "", 20.0, est), alc_k_per_ul=2.0)
    per_event = 2.0 * 1000 / 8000                              # cells/uL one lymphocyte event stands for
    assert m["car_t_per_ul"] == pytest.approx(380 * per_event) and m["car_t_per_ul_source"] == "alc"
    assert m["car_cd4_per_ul"] == pytest.approx(95 * per_event) and m["car_cd8_per_ul"] == pytest.approx(285 * per_event)
    assert (m["car_cd4_per_ul_ci_low"], m["car_cd4_per_ul_ci_high"]) == pytest.approx((70 * per_event, 120 * per_event))
    assert (m["car_t_per_ul_ci_low"], m["car_t_per_ul_ci_high"]) == pytest.approx((330 * per_event, 430 * per_event))
    assert m["car_pct_of_lymphocytes"] == pytest.approx(100 * 380 / 8000)
    assert m["car_pct_of_lymphocytes_ci_high"] == pytest.approx(100 * 430 / 8000)
    # user gates: exact counts, exact binomial intervals of each count among the T cells
    m, _ = phenotype(c, alc_k_per_ul=2.0)
    assert m["car_cd8_per_ul"] == pytest.approx(300 * per_event)
    assert m["car_cd8_per_ul_ci_low"] < m["car_cd8_per_ul"] < m["car_cd8_per_ul_ci_high"]
    # an uncertain call: no concentration, no share
    m, _ = phenotype(c, call=CarCall("uncertain", "shape", "no valley"), alc_k_per_ul=2.0)
    assert math.isnan(m["car_cd4_per_ul"]) and math.isnan(m["car_pct_of_lymphocytes"])


def test_subset_intervals_on_generated_tubes_contain_the_truth(tmp_path):
    """CAR CD4 and CD8 T cells/uL with their intervals, on tubes of known truth (seeds unseen in
    development): the true count, turned into cells/uL as the tube's are, lies inside."""
    import json

    import cytomnt
    from cytomnt.synth import TubeSpec, write_tube
    rows = ["file,sample_id,patient_id,collection_date,sample_type,alc_k_per_ul"]
    for k, (frac, share) in enumerate(((0.08, 0.35), (0.25, 0.7), (0.04, 0.5))):
        write_tube(tmp_path / f"t{k}.fcs", TubeSpec(events=60_000, car_frac_of_t=frac, car_cd4_share=share), 9_240_611 + k)
        rows.append(f"t{k}.fcs,t{k},P{k},2026-01-10,pb,1.5")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    df = cytomnt.analyze(sorted(tmp_path.glob("t*.fcs")), manifest=tmp_path / "m.csv")
    for r in df.itertuples():
        truth = json.loads((tmp_path / f"{r.sample_id}.truth.json").read_text())
        assert r.car_status == "ok" and r.car_t_per_ul_source == "alc"
        per_event = 1.5 * 1000 / r.lymphocytes
        for sub in ("car_cd4", "car_cd8"):
            lo, hi = getattr(r, f"{sub}_per_ul_ci_low"), getattr(r, f"{sub}_per_ul_ci_high")
            assert lo <= getattr(r, f"{sub}_per_ul") <= hi
            assert lo <= truth[sub] * per_event <= hi, (r.sample_id, sub, lo, truth[sub] * per_event, hi)
        assert r.car_pct_of_lymphocytes == pytest.approx(100 * r.car_t / r.lymphocytes)
