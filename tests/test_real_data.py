"""Files written by other tools and labs (../shared/data): Gating-ML compliance suite, FlowJo
workspaces, a real experiment with an expert's gates, and malformed FCS files."""
import shutil
import warnings

import flowkit as fk
import numpy as np
import pandas as pd
import pytest
import yaml

import cytomnt
from gating import read_fcs
from gating.formats.opencyto import ChannelScale, read_opencyto_template
from gating.formats.strategy import StrategyError, gate_sample, gatingml_bytes, read_gatingml, write_gatingml

from cytomnt.inputs.strategies import load_strategy

from .conftest import TESTDATA, shared

pytestmark = pytest.mark.slow

#: gate ids whose truth file is named differently in the compliance suite
TRUTH_ALIAS = {"ParRectangle1": "ParQuadRect"}


def test_gatingml_compliance_event_for_event(tmp_path):
    d = shared("gatingml2_compliance")
    sample = read_fcs(d / "data1.fcs").sample
    checked, rejected = set(), []
    for doc in sorted((d / "gml").glob("*.xml")):
        try:
            strategy = load_strategy(str(doc))
        except Exception as exc:  # the suite holds one deliberately invalid document
            assert "not a valid Gating-ML 2.0 document" in str(exc) and "line" in str(exc)
            rejected.append(doc.name)
            continue
        pops = gate_sample(strategy, sample)
        again = gate_sample(read_gatingml(gatingml_bytes(strategy)), sample)  # our export, re-applied
        for p, q in zip(pops, again):
            truth = d / "truth" / f"Results_{TRUTH_ALIAS.get(p.name, p.name)}.txt"
            if truth.exists():
                expected = np.loadtxt(truth).astype(bool)
                assert np.array_equal(p.membership, expected), (doc.name, p.name)
                assert np.array_equal(q.membership, expected), (doc.name, p.name, "after export")
                checked.add(TRUTH_ALIAS.get(p.name, p.name))
    all_truth = {t.stem.removeprefix("Results_") for t in (d / "truth").glob("*.txt")}
    assert checked == all_truth
    assert rejected == ["gml_range_gate_attr_testing.xml"]


def test_gatingml_compliance_through_analyze(tmp_path):
    d = shared("gatingml2_compliance")
    for doc in ("gml_all_gates.xml", "gml_parent_quadrant_rect_gate.xml", "gml_matrix_poly4_gate.xml"):
        out = tmp_path / doc
        df = cytomnt.analyze([d / "data1.fcs"], strategy=d / "gml" / doc, out=out)
        assert df.status[0] == "ok", df.error[0]
        pops = pd.read_csv(out / "populations.csv")
        for row in pops.itertuples():
            truth = d / "truth" / f"Results_{TRUTH_ALIAS.get(row.population, row.population)}.txt"
            if truth.exists():
                assert row.count == int(np.loadtxt(truth).sum()), (doc, row.population)
        assert (out / "gates" / "data1.xml").exists()


@pytest.mark.parametrize("wsp", ["simple_diamond_example/simple_diamond_example_quad_gate.wsp",
                                 "simple_diamond_example/test_data_diamond_asinh_rect.wsp",
                                 "simple_diamond_example/test_data_diamond_asinh_rect2.wsp",
                                 "simple_diamond_example/test_data_diamond_biex_rect.wsp",
                                 "simple_line_example/simple_poly_and_rect.wsp",
                                 "simple_line_example/simple_poly_and_rect_v2_poly50.wsp",
                                 "simple_line_example/single_ellipse_51_events.wsp"])
def test_flowjo_workspace_gives_flowkits_counts(tmp_path, wsp):
    d = shared("flowjo_workspaces")
    path = d / wsp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = fk.Workspace(str(path), fcs_samples=str(path.parent))
        sid = ws.get_sample_ids()[0]
        ws.analyze_samples(sample_id=sid, use_mp=False)
        ref = ws.get_gating_results(sid).report
    out = tmp_path / "out"
    df = cytomnt.analyze([path.parent / sid], strategy=path, out=out)
    assert df.status[0] == "ok", df.error[0]
    pops = pd.read_csv(out / "populations.csv")
    assert sorted(pops["count"].tolist()) == sorted(ref["count"].tolist())
    # the Gating-ML written for the sample reproduces the same counts
    again = gate_sample(read_gatingml(out / "gates" / f"{df.sample_id[0]}.xml"), read_fcs(path.parent / sid).sample)
    assert sorted(p.count for p in again) == sorted(ref["count"].tolist())


ACT_W = {"7-AAD-A": 0.9149993062019348, "APC-Cy7-A": 0.7503164410591125, "Alexa Fluor 405-A": 0.6009230613708496,
         "Alexa Fluor 430-A": 0.37035253643989563, "Alexa Fluor 488-A": 0.6634582877159119,
         "Alexa Fluor 647-A": 0.6440890431404114, "Alexa Fluor 700-A": 0.7883983254432678,
         "PE-A": 0.7737621665000916, "PE-Cy7-A": 0.8970341086387634, "PE-Texas Red-A": 0.9212097525596619,
         "Qdot 605-A": 0.6545121669769287}
ACT_GATE_MAP = ("singlets=Single Cells,live=Live Cells,t_cell=T Cells,cd4=CD4 T Cells,cd8=CD8 T Cells,"
                "car_cd4=CD69+ CD4 T Cells,car_cd8=CD69+ CD8 T Cells")


@pytest.fixture(scope="module")
def expert_gml(tmp_path_factory):
    d = shared("activation_real")
    scales = {ch: ChannelScale(fk.transforms.LogicleTransform(262143, w, 4.5, 0), 4.5) for ch, w in ACT_W.items()}
    strategy = read_opencyto_template(d / "Activation-gatingTemplate.csv", scales)
    return write_gatingml(strategy, tmp_path_factory.mktemp("expert") / "expert.xml")


def test_expert_gates_reproduce_expert_counts(expert_gml, tmp_path):
    d = shared("activation_real")
    expert = pd.read_csv(d / "expert_counts.csv").set_index("file")
    df = cytomnt.analyze([d / "Activation"], strategy=expert_gml, gate_map=ACT_GATE_MAP,
                         panel=TESTDATA / "activation_panel.yaml", out=tmp_path).set_index("sample_id")
    pops = pd.read_csv(tmp_path / "populations.csv")
    cols = {"Cells": "cells", "Single_Cells": "single_cells", "Dead_Cells": "dead_cells", "Live_Cells": "live_cells",
            "Dendritic_Cells": "dendritic_cells", "T_Cells": "t_cells", "CD4_T_Cells": "cd4_t_cells",
            "CD8_T_Cells": "cd8_t_cells", "CD69pos_CD4_T_Cells": "cd69pos_cd4_t_cells",
            "CD69pos_CD8_T_Cells": "cd69pos_cd8_t_cells"}
    for f, e in expert.iterrows():
        sid = f.removesuffix(".fcs")
        got = pops[pops.sample_id == sid].set_index("population")["count"]
        for gate, col in cols.items():
            assert got[gate] == e[col], (f, gate)
        r = df.loc[sid]
        assert (r.t_cells, r.t_cd4, r.t_cd8, r.singlets, r.live) == (e.t_cells, e.cd4_t_cells, e.cd8_t_cells,
                                                                      e.single_cells, e.live_cells)
        expert_car = e.cd69pos_cd4_t_cells + e.cd69pos_cd8_t_cells
        assert r.car_t_gross == expert_car and "CAR_T_FROM_SUBSETS" in r.qc_flags
        # the reviewer's gates are the estimate (no reference to net against), unless too few T cells
        assert r.car_t == expert_car if r.car_status == "ok" else (r.car_status == "uncertain" and pd.isna(r.car_t))


def test_template_typo_in_parent_names_the_line(tmp_path):
    d = shared("activation_real")
    text = (d / "Activation-gatingTemplate.csv").read_text().replace(',Single Cells,"Alexa', ',Singel Cells,"Alexa', 1)
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(StrategyError, match=r"line 4.*'Singel Cells'"):
        read_opencyto_template(tmp_path / "t.csv", {})


def test_auto_gating_lands_near_the_expert():
    d = shared("activation_real")
    expert = pd.read_csv(d / "expert_counts.csv").set_index("file")
    df = cytomnt.analyze([d / "Activation"], panel=TESTDATA / "activation_panel.yaml").set_index("sample_id")
    assert (df.status == "ok").all()
    for f in ("Activation_1.fcs", "Activation_7.fcs"):
        r, e = df.loc[f[:-4]], expert.loc[f]
        assert r.t_cells == pytest.approx(e.t_cells, rel=0.15)
        assert r.t_cd4_cd8_ratio == pytest.approx(e.cd4_cd8_ratio_among_T, rel=0.15)
    unstained = df.loc["Activation_33"]
    assert unstained.car_t_gross <= 20 and unstained.car_t_gross / unstained.events < 0.001
    assert unstained.car_status == "uncertain" and pd.isna(unstained.car_t)        # 13 T cells: no CAR number
    assert "LOW_EVENT_COUNT" in unstained.qc_flags


def test_edge_case_files_read_or_fail_clearly(tmp_path):
    d = shared("fcs_edge_cases")
    for f in d.iterdir():
        shutil.copy(f, tmp_path / f.name)
    out = tmp_path / "out"
    df = cytomnt.analyze([tmp_path], out=out).set_index("sample_id")
    assert len(df) == 5
    for sid, r in df.iterrows():
        if r.status == "error":
            assert sid in r.error and any(w in r.error for w in ("panel role", "cannot", "is not a channel")), r.error
        assert r.events is not pd.NA or r.status == "error"
    # every file was read: the failures are about the panel, not the format
    reads = {f.stem: read_fcs(f) for f in tmp_path.glob("*") if f.is_file()}
    assert reads["coulter"].notes[0].startswith("MULTI_DATASET") and reads["coulter"].sample.event_count > 0
    assert "FCS_OFFSETS_FROM_TEXT" in reads["data_start_offset_discrepancy_example"].notes    # by evidence
    assert "FCS_OFFSET_OFF_BY_ONE" in reads["test_comp_example"].notes
    assert reads["index_sorted_example"].sample.event_count == 384
    assert (out / "samples.csv").exists()


@pytest.mark.slow
def test_opencyto_template_on_the_command_line(tmp_path, capsys):
    """``--strategy template.csv`` with its scales beside it (``template.scales.yaml``) gives the
    expert's counts; without the scales file the run does not start and says what to write."""
    from cytomnt.cli import main
    d = shared("activation_real")
    tpl = tmp_path / "expert.csv"
    shutil.copy(d / "Activation-gatingTemplate.csv", tpl)
    out = tmp_path / "out"
    assert main(["analyze", str(d / "Activation"), "--strategy", str(tpl), "--out", str(out), "--no-report"]) == 2
    assert "expert.scales.yaml" in capsys.readouterr().err and not out.exists()
    scales = {"default": {"transform": "logicle", "T": 262143, "M": 4.5, "A": 0, "divide_by": 4.5},
              "channels": {ch: {"W": w} for ch, w in ACT_W.items()}}
    scales["channels"].update({ch: {"transform": "linear"} for ch in ("FSC-A", "FSC-H", "SSC-A", "SSC-H")})
    (tmp_path / "expert.scales.yaml").write_text(yaml.safe_dump(scales))
    assert main(["analyze", str(d / "Activation"), "--strategy", str(tpl), "--gate-map", ACT_GATE_MAP,
                 "--panel", str(TESTDATA / "activation_panel.yaml"), "--out", str(out), "--no-report"]) == 0
    expert = pd.read_csv(d / "expert_counts.csv").set_index("file")
    df = pd.read_csv(out / "samples.csv").set_index("sample_id")
    for f, e in expert.iterrows():
        r = df.loc[f.removesuffix(".fcs")]
        assert (r.t_cells, r.t_cd4, r.t_cd8, r.live) == (e.t_cells, e.cd4_t_cells, e.cd8_t_cells, e.live_cells)
        assert r.strategy == "csv:expert.csv"
