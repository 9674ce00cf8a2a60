"""Issue 24: CAR-T kinetics per patient, treatments, landmark analysis, Firth models, cumulative
incidence. Hand calculations and independent solutions are written here, apart from the code."""
import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

from cytomnt.cli import main
from cytomnt.patients.expansion import expansion

D0 = dt.date(2026, 1, 1)
HEAD = ("patient_id,product,infusion_date,bridging_response,bmpc_pct,m_spike_g_dl,sflc_mg_l,ferritin_ng_ml,"
        "crs_max_grade,icans_max_grade,prior_bcma_bispecific\n")
DAYS = (0, 4, 7, 10, 14, 21, 28)


def _not_json(name):
    raise AssertionError(f"{name} is not JSON (a strict reader fails on it)")


def run_json(capsys, *argv):
    assert main(list(map(str, argv))) == 0
    return json.loads(capsys.readouterr().out, parse_constant=_not_json)


def hand_auc(days, values):
    """Linear-up/log-down, written out: sum over intervals; linear when rising or touching 0."""
    total = 0.0
    for i in range(len(days) - 1):
        t1, t2, c1, c2 = days[i], days[i + 1], values[i], values[i + 1]
        if c1 > 0 and c2 > 0 and c2 < c1:
            total += (t2 - t1) * (c1 - c2) / (math.log(c1) - math.log(c2))
        else:
            total += (t2 - t1) * (c1 + c2) / 2
    return total


def series_for(rng):
    """An expansion curve: rise to a peak on a random day, then fall; some zeros early."""
    peak_at = int(rng.choice([7, 10, 14]))
    peak = float(rng.uniform(20, 900))
    out = []
    for d in DAYS:
        if d == 0:
            out.append(0.0)
        elif d <= peak_at:
            out.append(round(peak * 2.0 ** ((d - peak_at) / rng.uniform(1.0, 2.5)), 3))
        else:
            out.append(round(peak * math.exp(-(d - peak_at) / rng.uniform(3, 12)), 3))
    return out


def test_cmax_tmax_auc_equal_a_hand_calculation_for_nine_series(tmp_path, capsys):
    rng = np.random.default_rng(24_0611)
    rows, truth = [], {}
    clinical = [f"PK{i},cilta-cel,{D0},PR,,,,,,," for i in range(3)]
    for i in range(3):
        pid = f"PK{i}"
        cd4, cd8 = series_for(rng), series_for(rng)
        allv = [round(a + b, 3) for a, b in zip(cd4, cd8)]
        truth[pid] = {"all": allv, "cd4": cd4, "cd8": cd8}
        for k, d in enumerate(DAYS):
            rows.append({"sample_id": f"{pid}_d{d}", "patient_id": pid, "collection_date": D0 + dt.timedelta(days=d),
                         "sample_type": "pb", "status": "ok", "car_t_per_ul": allv[k], "car_cd4_per_ul": cd4[k],
                         "car_cd8_per_ul": cd8[k]})
    (tmp_path / "clinical.csv").write_text(HEAD + "\n".join(clinical) + "\n")
    pd.DataFrame(rows).to_csv(tmp_path / "flow.csv", index=False)
    out = run_json(capsys, "risk", "--clinical", tmp_path / "clinical.csv", "--flow", tmp_path / "flow.csv",
                   "--as-of", D0 + dt.timedelta(days=40), "--json")
    checked = 0
    for a in out:
        for name, vals in truth[a["patient_id"]].items():
            k = a["car_kinetics"][name]
            cmax = max(vals)
            tmax = DAYS[vals.index(cmax)]
            auc = hand_auc(list(DAYS), vals)
            assert abs(k["cmax_per_ul"] - cmax) <= 1e-6 * cmax
            assert k["tmax_day"] == tmax
            assert abs(k["auc_0_28"] - auc) <= 1e-6 * auc, (a["patient_id"], name)
            assert k["n_samples"] == 7 and k["auc_to_day"] == 28
            checked += 1
    assert checked == 9


def test_expansion_says_what_it_could_not_know():
    k = expansion([0, 4, 7, 10], [0.0, 5.0, 40.0, 20.0])
    assert k.auc_to_day == 10 and "day 28 not sampled" in k.note
    assert k.doubling_time_days is None and "doubling time" in k.note     # 2 positive samples before Tmax
    k = expansion([1, 3, 5, 7, 9], [2.0, 8.0, 32.0, 128.0, 50.0])
    assert abs(k.doubling_time_days - 1.0) < 1e-9                         # x4 every 2 days
    k = expansion([0, 7, 14], [0.0, float("nan"), 10.0])                  # an uncertain call is not 0
    assert k.n_samples == 2 and k.cmax_per_ul == 10.0 and abs(k.auc_0_28 - 70.0) < 1e-12


def write_patients(tmp_path, n, seed):
    """n patients: ALC on a few days around day 10 (day 10 itself sometimes missing), MNT in some,
    onset days before and after day 11."""
    rng = np.random.default_rng(seed)
    clinical, labs, cohort, alc = [], [], [], {}
    for i in range(n):
        pid = f"L{i:02d}"
        clinical.append(f"{pid},cilta-cel,{D0},PR,,,,,,,")
        days = sorted(set(rng.choice([5, 8, 9, 10, 11, 12, 14, 20], size=int(rng.integers(1, 6)), replace=False)))
        alc[pid] = {}
        for d in days:
            v = round(float(rng.lognormal(0.6, 0.7)), 2)
            alc[pid][int(d)] = v
            labs.append(f"{pid},{D0 + dt.timedelta(days=int(d))},{v}")
        mnt = int(rng.random() < 0.3)
        onset = int(rng.integers(5, 60)) if mnt else ""
        if mnt and rng.random() < 0.1:
            onset = ""                                      # MNT without an onset day
        cohort.append(f"{pid},{mnt},{onset}")
    (tmp_path / "clinical.csv").write_text(HEAD + "\n".join(clinical) + "\n")
    (tmp_path / "labs.csv").write_text("patient_id,date,alc_k_per_ul\n" + "\n".join(labs) + "\n")
    (tmp_path / "cohort.csv").write_text("patient_id,mnt,mnt_onset_day\n" + "\n".join(cohort) + "\n")
    return alc, [c.split(",") for c in cohort]


def test_landmark_counts_equal_a_hand_count_of_sixty_patients(tmp_path, capsys):
    alc, cohort = write_patients(tmp_path, 60, 606_011)
    counts = dict(pos_n=0, pos_mnt=0, neg_n=0, neg_mnt=0, unknown_n=0, excluded_before_landmark=0)
    for pid, mnt, onset in cohort:
        if mnt == "1" and onset != "" and int(onset) <= 11:
            counts["excluded_before_landmark"] += 1
            continue
        if mnt == "1" and onset == "":
            continue                    # not known to be after the landmark (counted apart)
        # on day 11 the evaluator knows ALC on day 10 for sure; a day-9 or day-11 value alone may
        # still be replaced by a nearer one until day 11 has passed: unknown
        v = alc[pid].get(10)
        if v is None:
            counts["unknown_n"] += 1
        elif v > 3.0:
            counts["pos_n"] += 1
            counts["pos_mnt"] += mnt == "1"
        else:
            counts["neg_n"] += 1
            counts["neg_mnt"] += mnt == "1"
    out = run_json(capsys, "cohort", tmp_path / "cohort.csv", "--clinical", tmp_path / "clinical.csv",
                   "--labs", tmp_path / "labs.csv", "--factor", "alc_d10_gt_3", "--landmark", "11", "--json")
    (row,) = out["landmarks"]
    assert {k: row[k] for k in counts} == counts
    assert counts["pos_n"] and counts["neg_n"] and counts["unknown_n"] and counts["excluded_before_landmark"]
    assert row["ppv_ci"][0] <= row["ppv"] <= row["ppv_ci"][1]


def test_several_landmarks_make_one_table(tmp_path, capsys):
    write_patients(tmp_path, 20, 7)
    assert main(["cohort", str(tmp_path / "cohort.csv"), "--clinical", str(tmp_path / "clinical.csv"), "--labs",
                 str(tmp_path / "labs.csv"), "--factor", "alc_d10_gt_3", "--landmark", "7,11,14"]) == 0
    text = capsys.readouterr().out
    assert all(f"day {d}" in text for d in (7, 11, 14))


def newton_firth(X, y, iters=100):
    """Firth's penalised likelihood solved independently: Newton on the modified score
    U*(b) = X'(y - p + h (1/2 - p)), h the hat diagonal of W^(1/2) X (X'WX)^-1 X' W^(1/2)."""
    X = np.column_stack([X, np.ones(len(X))])
    b = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-X @ b))
        w = p * (1 - p)
        info = X.T @ (X * w[:, None])
        inv = np.linalg.inv(info)
        h = np.einsum("ij,jk,ik->i", X * np.sqrt(w)[:, None], inv, X * np.sqrt(w)[:, None])
        step = inv @ (X.T @ (y - p + h * (0.5 - p)))
        b = b + step
        if np.max(np.abs(step)) < 1e-12:
            break
    return b


def test_firth_coefficients_equal_an_independent_newton_solution(tmp_path, capsys):
    rng = np.random.default_rng(80_2401)
    x1, x2 = rng.normal(size=80), rng.binomial(1, 0.4, size=80)
    y = (rng.random(80) < 1 / (1 + np.exp(-(-2.6 + 0.9 * x1 + 0.8 * x2)))).astype(int)
    assert 3 <= y.sum() <= 16                        # a rare outcome
    pd.DataFrame({"patient_id": [f"F{i}" for i in range(80)], "x1": x1.round(6), "x2": x2, "mnt": y}) \
        .to_csv(tmp_path / "c.csv", index=False)
    out = run_json(capsys, "cohort", tmp_path / "c.csv", "--model", "x1,x2", "--json")
    m = out["model"]
    assert m["method"] == "firth" and m["n"] == 80 and m["events"] == int(y.sum())
    ref = newton_firth(np.column_stack([x1.round(6), x2]), y)
    got = {t["name"]: t for t in m["terms"]}
    for name, b in zip(("x1", "x2", "intercept"), ref):
        assert abs(got[name]["coef"] - b) <= 1e-3, (name, got[name]["coef"], b)
        assert got[name]["ci_low"] < got[name]["coef"] < got[name]["ci_high"]
        assert 0 <= got[name]["p"] <= 1


def test_firth_reproduces_the_published_two_by_two_result(tmp_path, capsys):
    """Firth (1993); Heinze & Schemper (2002): with one binary covariate the estimate is the log
    odds ratio with 1/2 added to every cell, finite even under separation (0/6 vs 4/5)."""
    x = [0] * 6 + [1] * 5
    y = [0] * 6 + [1, 1, 1, 1, 0]
    pd.DataFrame({"x": x, "mnt": y}).to_csv(tmp_path / "s.csv", index=False)
    m = run_json(capsys, "cohort", tmp_path / "s.csv", "--model", "x", "--json")["model"]
    got = {t["name"]: t["coef"] for t in m["terms"]}
    assert abs(got["x"] - math.log((4.5 / 1.5) / (0.5 / 6.5))) < 1e-4
    assert abs(got["intercept"] - math.log(0.5 / 6.5)) < 1e-4


def test_subgroups_by_several_columns_and_preemptive_dexamethasone(tmp_path, capsys):
    alc, cohort = write_patients(tmp_path, 24, 11)
    (tmp_path / "treatments.csv").write_text(
        "patient_id,date,treatment,dose,reason\n"
        f"L01,{D0 + dt.timedelta(days=3)},dexamethasone,10 mg,preemptive\n"
        f"L02,{D0 + dt.timedelta(days=5)},tocilizumab,8 mg/kg,CRS\n")
    df = pd.read_csv(tmp_path / "cohort.csv")
    df["site"] = ["A", "B"] * 12
    df["alc10"] = [alc[p].get(10, "") for p in df.patient_id]
    df.to_csv(tmp_path / "cohort.csv", index=False)
    out = run_json(capsys, "cohort", tmp_path / "cohort.csv", "--factor", "alc10", "--threshold", "3",
                   "--by", "site,preemptive_dexamethasone", "--clinical", tmp_path / "clinical.csv",
                   "--labs", tmp_path / "labs.csv", "--treatments", tmp_path / "treatments.csv", "--json")
    groups = {r["group"] for r in out["results"]}
    assert {"site=A", "site=B", "preemptive_dexamethasone=yes", "preemptive_dexamethasone=no", "all"} <= groups
    yes = next(r for r in out["results"] if r["group"] == "preemptive_dexamethasone=yes")
    assert yes["pos_n"] + yes["neg_n"] + yes["unknown_n"] == 1


def test_preemptive_dexamethasone_is_noted_and_a_bad_reason_is_one_line(tmp_path, capsys):
    write_patients(tmp_path, 3, 5)
    t = tmp_path / "treatments.csv"
    t.write_text(f"patient_id,date,treatment,dose,reason\nL00,{D0 + dt.timedelta(days=6)},Dexamethasone,10 mg,"
                 f"preemptive\n")
    out = run_json(capsys, "risk", "--clinical", tmp_path / "clinical.csv", "--labs", tmp_path / "labs.csv",
                   "--treatments", t, "--as-of", D0 + dt.timedelta(days=20), "--json")
    a = next(x for x in out if x["patient_id"] == "L00")
    assert a["treatments"][0]["treatment"] == "Dexamethasone" and "suppressed" in a["notes"][0]
    assert not next(x for x in out if x["patient_id"] == "L01")["notes"]
    t.write_text(f"patient_id,date,treatment,dose,reason\nL00,{D0},dexamethasone,10 mg,because\n")
    assert main(["risk", "--clinical", str(tmp_path / "clinical.csv"), "--treatments", str(t)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "row 2, column reason" in err[0] and "preemptive" in err[0]


def test_cumulative_incidence_is_one_minus_kaplan_meier_by_hand(tmp_path, capsys):
    # days: MNT at 5, 10; censored at 7, 20, 30 -> S(5) = 4/5, S(10) = 4/5 * 2/3
    pd.DataFrame({"patient_id": list("abcde"), "mnt": [1, 0, 1, 0, 0], "mnt_onset_day": [5, "", 10, "", ""],
                  "followup_day": ["", 7, "", 20, 30]}).to_csv(tmp_path / "c.csv", index=False)
    out = run_json(capsys, "cohort", tmp_path / "c.csv", "--incidence", "--figure", tmp_path / "ci.png", "--json")
    (curve,) = out["incidence"]
    inc = dict(zip(curve["days"], curve["incidence"]))
    assert abs(inc[5.0] - 0.2) < 1e-12 and abs(inc[10.0] - (1 - 0.8 * 2 / 3)) < 1e-12
    assert curve["last_day"] == 30 and curve["at_risk"]["7"] == 4 and curve["at_risk"]["28"] == 1
    assert (tmp_path / "ci.png").stat().st_size > 1000
    assert main(["cohort", str(tmp_path / "c.csv"), "--incidence"]) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.strip().startswith("all"))
    assert row.split()[-1] == "-" and "beyond the group's last day of follow-up" in text      # day 365 > 30


def test_landmark_refuses_a_cohort_without_onset_days(tmp_path, capsys):
    write_patients(tmp_path, 10, 3)
    df = pd.read_csv(tmp_path / "cohort.csv").drop(columns="mnt_onset_day")
    df.to_csv(tmp_path / "cohort.csv", index=False)
    code = main(["cohort", str(tmp_path / "cohort.csv"), "--clinical", str(tmp_path / "clinical.csv"),
                 "--labs", str(tmp_path / "labs.csv"), "--factor", "alc_d10_gt_3", "--landmark", "11"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "mnt_onset_day" in err[0]


def test_a_rules_file_can_add_a_factor_on_car_kinetics(tmp_path):
    from cytomnt.patients.clinical import load
    from cytomnt.patients.risk import Rules, assess
    from cytomnt.inputs.rulesfile import built_in_text
    text = built_in_text().replace("factors:\n", "factors:\n  - id: car_cmax_gt_500\n    label: CAR T Cmax above 500/uL\n"
                                    "    kind: car_kinetics\n    params: {series: all, measure: cmax_per_ul}\n"
                                    "    op: \">\"\n    threshold: 500\n    unit: cells/uL\n", 1)
    rules = Rules.from_text(text, "test rules")
    (tmp_path / "clinical.csv").write_text(HEAD + f"K1,cilta-cel,{D0},PR,,,,,,,\nK2,cilta-cel,{D0},PR,,,,,,,\n")
    flow = pd.DataFrame({"patient_id": ["K1", "K1", "K2"], "sample_type": "pb", "status": "ok",
                         "collection_date": [D0 + dt.timedelta(days=7), D0 + dt.timedelta(days=14), D0 + dt.timedelta(days=14)],
                         "car_t_per_ul": [120.0, 640.0, 90.0]})
    flow.to_csv(tmp_path / "flow.csv", index=False)
    data = load(tmp_path / "clinical.csv", flow=tmp_path / "flow.csv")
    on_day_20 = D0 + dt.timedelta(days=20)
    assert assess(data, "K1", on_day_20, rules).factor("car_cmax_gt_500").present is True       # present at once
    assert assess(data, "K2", on_day_20, rules).factor("car_cmax_gt_500").present is None       # may still rise
    assert assess(data, "K2", D0 + dt.timedelta(days=40), rules).factor("car_cmax_gt_500").present is False


def test_cohort_input_errors_are_one_line(tmp_path, capsys):
    pd.DataFrame({"x": [1, 2, 3, 4], "mnt": [0, 1, 0, 0]}).to_csv(tmp_path / "c.csv", index=False)
    pd.DataFrame({"x": [1, 2, 3, 4], "mnt": [0, 1, 0, 0], "mnt_onset_day": ["", 9, "", ""],
                  "followup_day": [30, "", 40, 50], "site": list("abab")}).to_csv(tmp_path / "d.csv", index=False)
    for cohort, argv, says in (
            ("c", ["--model", "nosuch"], "nosuch"), ("c", ["--factor", "x", "--landmark", "7"], "--clinical"),
            ("c", ["--incidence"], "followup_day"),
            ("c", ["--factor", "alc_d10_gt_3", "--landmark", "x,y", "--clinical", str(tmp_path / "c.csv")], "whole days"),
            ("d", ["--incidence", "--by", "sitee"], "did you mean site?"),
            ("d", ["--x", "--factor", "x", "--threshold", "2", "--by", "sitee"][1:], "did you mean site?"),
            ("d", ["--incidence", "--figure", str(tmp_path)], "is a folder"),
            ("d", ["--incidence", "--figure", str(tmp_path / "ci.txt")], ".png"),
            ("d", ["--incidence", "--figure", "/proc/nope/ci.png"], "cannot make the folder")):
        code = main(["cohort", str(tmp_path / f"{cohort}.csv"), *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "Traceback" not in err[0] and says in err[0], (argv, err)


def test_cohort_kinetics_columns_use_the_samples_the_evaluator_uses(tmp_path):
    """A blood sample the evaluator leaves out (QC flag NO_T_CELLS) is left out of the cohort's
    kinetics columns too."""
    from cytomnt.patients.clinical import load
    from cytomnt.patients.groups import patient_columns
    (tmp_path / "clinical.csv").write_text(HEAD + f"G1,cilta-cel,{D0},PR,,,,,,,\n")
    pd.DataFrame({"patient_id": "G1", "sample_type": "pb", "status": "ok",
                  "collection_date": [D0 + dt.timedelta(days=7), D0 + dt.timedelta(days=14)],
                  "car_t_per_ul": [120.0, 9000.0], "qc_flags": ["", "NO_T_CELLS"]}).to_csv(tmp_path / "f.csv", index=False)
    cols = patient_columns(load(tmp_path / "clinical.csv", flow=tmp_path / "f.csv")).iloc[0]
    assert cols.car_cmax_per_ul == 120.0
