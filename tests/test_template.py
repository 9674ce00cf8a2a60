"""Gating templates as data: validation with line numbers, methods, plug-ins, batch-learned cuts."""
import sys
import textwrap
from importlib import resources

import numpy as np
import pandas as pd
import pytest

import cytomnt
from gating import read_fcs
from gating.auto import methods
from gating.auto.engine import LearnedCuts
from gating.auto.template import TemplateError, load_template
from gating.preprocess import compensation_for

from cytomnt.errors import ConfigError
from cytomnt.inputs.panel import ROLES, Panel, channels_of
from cytomnt.inputs.strategies import default_template
from cytomnt.sample.autogate import auto_gate

from .conftest import FIXTURES, truth_of

BUILTIN = resources.files("cytomnt").joinpath("data/car_t_template.yaml").read_text()


def write(tmp_path, text, name="t.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_builtin_template_is_valid_and_ordered():
    t = default_template()
    pops = [g.population for g in t.gates]
    assert pops.index("beads") < pops.index("cells") < pops.index("singlets") < pops.index("t_cells")
    assert pops.index("t_cd4_cd8") < pops.index("car_cd4") < pops.index("car_t")
    assert pops.index("non_t") < pops.index("car_cd4")          # the internal reference comes first
    assert set(t.to_frame().columns) >= {"population", "parent", "dims", "method", "args"}


def test_typo_in_parent_names_the_line(tmp_path):
    p = write(tmp_path, BUILTIN.replace("parent: lymphocytes", "parent: lymphocyte"))
    line = next(i for i, s in enumerate(p.read_text().splitlines(), 1) if "population: t_cells" in s)
    with pytest.raises(TemplateError, match=rf"t.yaml, line {line}: parent 'lymphocyte' of population 't_cells'"):
        load_template(p, roles=ROLES)


@pytest.mark.parametrize("change, message", [
    (("method: low_population", "method: low_pop"), r"line \d+: unknown method 'low_pop'"),
    (("dims: [t_cell]", "dims: [tcell]"), r"line \d+: unknown role 'tcell'"),
    (("population: live\n", "population: cd45\n"), r"line \d+: population 'cd45' is already defined on line \d+"),
    (("    optional: true            # no FSC-H", "    colour: red\n    optional: true  # no FSC-H"),
     r"line \d+: unknown key\(s\) colour"),
])
def test_template_errors_name_the_line(tmp_path, change, message):
    p = write(tmp_path, BUILTIN.replace(*change, 1))
    with pytest.raises(TemplateError, match=message):
        load_template(p, roles=ROLES)


def test_cycle_is_reported(tmp_path):
    p = write(tmp_path, """
        gates:
          - {population: a, parent: b, dims: [cd4], method: valley}
          - {population: b, parent: a, dims: [cd8], method: valley}
        """)
    with pytest.raises(TemplateError, match="cycle among populations: a -> b -> a"):
        load_template(p, roles=ROLES)


def test_edited_template_runs_wherever_auto_does(tmp_path):
    # a lab's copy: CAR cut by a fixed tail rule instead of the valley, and a channel by name
    text = BUILTIN.replace("dims: [car]\n    method: valley", "dims: [car]\n    method: tail\n    args: {tail_sds: 3}")
    text = text.replace("dims: [ssc_a]", "dims: [{channel: SSC-A}]")
    p = write(tmp_path, text, "mine.yaml")
    df = cytomnt.analyze([FIXTURES / "blood_bd.fcs"], strategy=p, out=tmp_path / "o")
    t = truth_of(FIXTURES / "blood_bd.fcs")
    assert df.status[0] == "ok" and df.strategy[0] == "template:mine.yaml"
    assert abs(df.car_pct_of_t[0] - t["car_pct_of_t"]) < 2.0
    assert (tmp_path / "o" / "gates" / "blood_bd.xml").exists()
    bad = write(tmp_path, BUILTIN.replace("method: debris", "method: nope"), "bad.yaml")
    with pytest.raises(ConfigError, match="bad.yaml, line .*unknown method 'nope'"):
        cytomnt.analyze([FIXTURES / "blood_bd.fcs"], strategy=bad)


def test_plugin_method_through_entry_point(tmp_path, monkeypatch):
    dist = tmp_path / "labgates-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: labgates\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[gating.methods]\nfixed_half = labgates_mod:fixed_half\n")
    (tmp_path / "labgates_mod.py").write_text(textwrap.dedent('''
        from gating.auto.methods import Outcome
        from gating.auto.finders import Cut
        def fixed_half(ctx, keep="above"):
            """Cut every tube at the middle of the scale."""
            return Outcome([ctx.rect([(0.5, None)])], {ctx.channels[0]: Cut(0.5, "fixed")})
        '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(methods, "_LOADED", None)
    assert "fixed_half" in methods.available()
    p = write(tmp_path, BUILTIN.replace("dims: [car]\n    method: positive\n    args: {internal: non_t}",
                                        "dims: [car]\n    method: fixed_half", 1))
    t = load_template(p, roles=ROLES)
    s = read_fcs(FIXTURES / "csf_bd.fcs").sample
    g = auto_gate(s, Panel.default().resolve(channels_of(s)), compensation_for(s), template=t)
    assert g.cuts["car_cd4"][g.channels["car_cd4"][0]].value == 0.5
    monkeypatch.setattr(methods, "_LOADED", None)
    sys.modules.pop("labgates_mod", None)


def test_batch_learned_cut_is_recorded_and_repeatable(tmp_path):
    # CD4/CD8 cuts of tiny CSF tubes learned once from the pooled batch
    text = BUILTIN.replace("args: {quadrants: {t_cd4: \"+-\", t_cd8: \"-+\"}}",
                           "args: {quadrants: {t_cd4: \"+-\", t_cd8: \"-+\"}}\n    learn: batch")
    p = write(tmp_path, text, "batch.yaml")
    files = [FIXTURES / "csf_bd.fcs", FIXTURES / "blood_bd.fcs", FIXTURES / "blood_beads.fcs"]
    a = cytomnt.analyze(files, strategy=p, out=tmp_path / "a")
    learned = LearnedCuts.from_yaml(tmp_path / "a" / "learned_cuts.yaml")
    assert set(learned.cuts["t_cd4_cd8"]) == {"cd4", "cd8"}
    assert "3 tubes" in learned.source["t_cd4_cd8"]
    assert all(s.endswith("+batch") for s in a.strategy)
    for f in files:
        t = truth_of(f)
        r = a.set_index("sample_id").loc[f.stem]
        assert r.status == "ok", r.error
        assert r.t_cd4 == pytest.approx(t["t_cd4"], rel=0.03) and r.t_cd8 == pytest.approx(t["t_cd8"], rel=0.03)
    b = cytomnt.analyze(files, strategy=p, out=tmp_path / "b", learned_cuts=tmp_path / "a" / "learned_cuts.yaml")
    cols = ["sample_id", "t_cd4", "t_cd8", "car_cd4", "car_cd8", "car_pct_of_t"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_negative_control_is_a_learned_cut(tmp_path):
    df = cytomnt.analyze([FIXTURES / "blood_bd.fcs"], negative_control=FIXTURES / "negative_control_bd.fcs",
                         out=tmp_path)
    learned = LearnedCuts.from_yaml(tmp_path / "learned_cuts.yaml")
    for subset in ("car_cd4", "car_cd8"):           # one cut per T-cell subset, with the control's counts
        assert "99.5" in learned.source[subset] and "negative_control_bd" in learned.source[subset]
        ref = learned.reference[subset]
        assert ref["n"] >= 100 and 0 < ref["above"] <= 0.01 * ref["n"] and ref["kind"] == "control"
        assert ref["tail"] == sorted(ref["tail"]) and len(ref["tail"]) >= 0.01 * ref["n"]   # the control's 99th+
        assert ref["p10"] < ref["median"] <= ref["lower"][-1]
    assert df.strategy[0] == "auto+control" and df.car_basis[0] == "control negative_control_bd.fcs"


def test_scatter_cluster_and_boolean_methods(tmp_path):
    p = write(tmp_path, """
        gates:
          - {population: lymph_cluster, parent: root, dims: [fsc_a, ssc_a], method: scatter_cluster,
             args: {n_components: 4, pick: lowest, coverage: 0.99}}
          - {population: cd3, parent: root, dims: [t_cell], method: valley}
          - {population: t_in_cluster, parent: root, method: boolean, args: {op: and, of: [lymph_cluster, cd3]}}
          - {population: not_t, parent: root, method: boolean, args: {op: not, of: [cd3]}}
        """)
    t = load_template(p, roles=ROLES)
    s = read_fcs(FIXTURES / "blood_bd.fcs").sample
    g = auto_gate(s, Panel.default().resolve(channels_of(s)), compensation_for(s), template=t)
    truth = truth_of(FIXTURES / "blood_bd.fcs")
    n_t = g.builder.count("t_in_cluster")
    assert n_t == pytest.approx(truth["t_cells"], rel=0.15)
    assert g.builder.count("not_t") + g.builder.count("cd3") == s.event_count
    assert np.all(g.builder.members("t_in_cluster") <= g.builder.members("lymph_cluster"))
