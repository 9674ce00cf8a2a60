"""Cohort validation: the published ALC table as a patient-level cohort, exact intervals, lead time."""
import json

import pytest
from scipy.stats import binomtest, fisher_exact

from cytomnt.cli import main
from cytomnt.patients.cohort import CohortError, literature_cohort, read_cohort, validate


@pytest.fixture
def lit(tmp_path):
    p = tmp_path / "cohort.csv"
    literature_cohort().to_csv(p, index=False)
    return p


def test_table1_rates_and_pooled_ppv_npv(lit, capsys):
    assert main(["cohort", str(lit), "--factor", "alc_k_per_ul", "--threshold", "3.0", "--by", "study"]) == 0
    out = capsys.readouterr().out
    for s in ("33 (4/12)", "0 (0/9)", "29 (19/65)", "3 (3/104)", "14 (15/104)", "4 (6/152)", "40 (8/20)",
              "10 (6/62)", "23 (46/201)", "5 (15/327)"):
        assert s in out, s
    pooled = next(r for r in validate(read_cohort(lit), [("alc_k_per_ul", 3.0)], "study") if r.group == "all")
    assert pooled.ppv == pytest.approx(46 / 201) and 0.22 < pooled.ppv < 0.24
    assert pooled.npv == pytest.approx(312 / 327) and 0.95 < pooled.npv < 0.96


def test_intervals_equal_scipys_exact_ones(lit):
    for r in validate(read_cohort(lit), [("alc_k_per_ul", 3.0)], "study"):
        for (k, n), ci in (((r.pos_mnt, r.pos_n), r.ppv_ci), ((r.neg_n - r.neg_mnt, r.neg_n), r.npv_ci),
                           ((r.pos_mnt, r.pos_mnt + r.neg_mnt), r.sensitivity_ci),
                           ((r.neg_n - r.neg_mnt, r.neg_n - r.neg_mnt + r.pos_n - r.pos_mnt), r.specificity_ci)):
            ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
            assert ci == pytest.approx((ref.low, ref.high), abs=1e-12)
        table = [[r.pos_mnt, r.pos_n - r.pos_mnt], [r.neg_mnt, r.neg_n - r.neg_mnt]]
        assert r.fisher_p == pytest.approx(fisher_exact(table)[1])


def test_several_factors_and_json(tmp_path, capsys):
    p = tmp_path / "c.csv"
    p.write_text("patient_id,alc_max,cd4_dominant,mnt\nA,4,1,1\nB,1,0,0\nC,3.5,0,0\nD,2,1,1\nE,,1,0\n")
    assert main(["cohort", str(p), "--factor", "alc_max", "--threshold", "3", "--factor", "cd4_dominant",
                 "--threshold", "-", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)["results"]
    alc = next(r for r in doc if r["factor"] == "alc_max")
    assert (alc["pos_n"], alc["pos_mnt"], alc["neg_n"], alc["neg_mnt"], alc["unknown_n"]) == (2, 1, 2, 1, 1)
    cd4 = next(r for r in doc if r["factor"] == "cd4_dominant")
    assert (cd4["pos_n"], cd4["pos_mnt"]) == (3, 2) and cd4["pos_rate"] == "67 (2/3)"


def test_cohort_errors(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("patient_id,alc,mnt\nA,4,2\n")
    with pytest.raises(CohortError, match="row 2, column mnt"):
        read_cohort(p)
    p.write_text("patient_id,alc,mnt\nA,high,1\n")
    with pytest.raises(CohortError, match="row 2, column alc: 'high' is not a number"):
        validate(read_cohort(p), [("alc", 3.0)])
    assert main(["cohort", str(p), "--factor", "nope", "--threshold", "1"]) == 2


def test_lead_time_from_timelines(tmp_path, capsys):
    (tmp_path / "clinical.csv").write_text(
        "patient_id,product,infusion_date,bridging_response,bmpc_pct,m_spike_g_dl,sflc_mg_l,ferritin_ng_ml,"
        "crs_max_grade,icans_max_grade,prior_bcma_bispecific\n"
        "A,cilta-cel,2026-01-01,PR,,,,,,,\nB,cilta-cel,2026-01-01,PR,,,,,,,\nC,cilta-cel,2026-01-01,PR,,,,,,,\n")
    (tmp_path / "labs.csv").write_text("patient_id,date,alc_k_per_ul\nA,2026-01-13,3.5\nB,2026-01-10,1.0\n"
                                       "C,2026-02-20,4.0\n")
    (tmp_path / "cohort.csv").write_text("patient_id,alc_max,mnt,mnt_onset_day\nA,3.5,1,41\nB,1.0,1,22\nC,4.0,1,30\n")
    assert main(["cohort", str(tmp_path / "cohort.csv"), "--factor", "alc_max", "--threshold", "3",
                 "--lead-time", "alc_max_gt_3", "--clinical", str(tmp_path / "clinical.csv"),
                 "--labs", str(tmp_path / "labs.csv")]) == 0
    out = capsys.readouterr().out
    assert "A: onset day 41, day 12, lead 29 days" in out
    assert "B: onset day 22, no alert before onset" in out
    assert "C: onset day 30, no alert before onset" in out      # day 50 is after onset (and outside 0-30)
    assert "alerted before onset: 1 of 3" in out
