"""The fast evaluator gives FlowKit's per-event membership, on every kind of gate."""
import flowkit as fk
import numpy as np
import pytest

from gating import read_fcs
from gating.auto.build import xform_id
from gating.evaluator.evaluate import Evaluator
from gating.formats.strategy import gate_sample, read_gatingml
from gating.io.events import flowkit_sample
from gating.preprocess import compensation_for

from cytomnt.inputs.panel import Panel, channels_of
from cytomnt.sample.autogate import auto_gate

from .conftest import FIXTURES, shared, write_float64_fcs


def same_as_flowkit(strategy, sample):
    fast = {(p.name, p.path): p for p in gate_sample(strategy, sample, engine="fast")}
    ref = {(p.name, p.path): p for p in gate_sample(strategy, sample, engine="flowkit")}
    assert fast.keys() == ref.keys()
    for k in ref:
        assert np.array_equal(fast[k].membership, ref[k].membership), k
        assert fast[k].parent_count == ref[k].parent_count, k
    return ref


@pytest.mark.parametrize("name", ["blood_bd.fcs", "blood_numbered.fcs", "csf_bd.fcs", "blood_beads.fcs"])
def test_auto_strategies_on_fixtures(name):
    s = read_fcs(FIXTURES / name).sample
    g = auto_gate(s, Panel.default().resolve(channels_of(s)), compensation_for(s))
    same_as_flowkit(g.strategy, s)


def test_every_gate_kind_on_compensated_transformed_data():
    s = read_fcs(FIXTURES / "blood_bd.fcs").sample
    comp = compensation_for(s)
    gs = fk.GatingStrategy()
    gs.add_comp_matrix("spill", comp.matrix.to_flowkit())
    for ch in ("PE-A", "BV421-A", "PerCP-Cy5.5-A", "PE-Cy7-A"):
        gs.add_transform(xform_id(ch), fk.transforms.LogicleTransform(262144, 0.5, 4.5, 0))
    gs.add_transform("asinh", fk.transforms.AsinhTransform(262144, 4.0, 0.0))

    def d(ch, lo=None, hi=None, xf=True, comp_ref="spill"):
        return fk.Dimension(ch, compensation_ref=comp_ref, transformation_ref=xform_id(ch) if xf else None,
                            range_min=lo, range_max=hi)
    root = ("root",)
    gs.add_gate(fk.gates.RectangleGate("cd3", [d("BV421-A", 0.45)]), root)
    gs.add_gate(fk.gates.RectangleGate("not_cd3", [d("BV421-A", 0.45)], use_complement=True), root)
    gs.add_gate(fk.gates.PolygonGate("poly", [d("PerCP-Cy5.5-A"), d("PE-Cy7-A")],
                                     [[0.4, 0.0], [1.0, 0.0], [1.0, 0.45], [0.4, 0.5]]), ("root", "cd3"))
    gs.add_gate(fk.gates.EllipsoidGate("ell", [d("PerCP-Cy5.5-A"), d("PE-Cy7-A")], [0.6, 0.3],
                                       [[0.01, 0.0], [0.0, 0.01]], 4.0), ("root", "cd3"))
    gs.add_gate(fk.gates.RectangleGate("band", [d("PE-A", 0.3, 0.55), d("FSC-A", 30000, 120000, xf=False,
                                                                        comp_ref="uncompensated")]), ("root", "cd3"))
    gs.add_gate(fk.gates.RectangleGate("asinh", [fk.Dimension("PE-A", "spill", "asinh", range_min=0.2)]), root)
    gs.add_gate(fk.gates.RectangleGate("raw", [fk.Dimension("PE-A", "uncompensated", None, range_min=2000.0)]), root)
    divs = [fk.QuadrantDivider("d4", "PerCP-Cy5.5-A", "spill", [0.45], xform_id("PerCP-Cy5.5-A")),
            fk.QuadrantDivider("d8", "PE-Cy7-A", "spill", [0.48], xform_id("PE-Cy7-A"))]
    quads = [fk.gates.Quadrant("q4", ["d4", "d8"], [(0.45, None), (None, 0.48)]),
             fk.gates.Quadrant("q8", ["d4", "d8"], [(None, 0.45), (0.48, None)])]
    gs.add_gate(fk.gates.QuadrantGate("quad", divs, quads), ("root", "cd3"))
    gs.add_gate(fk.gates.RectangleGate("car_in_q4", [d("PE-A", 0.47)]), ("root", "cd3", "quad", "q4"))
    gs.add_gate(fk.gates.BooleanGate("poly_and_not_ell", "and",
                                     [{"ref": "poly", "path": ("root", "cd3"), "complement": False},
                                      {"ref": "ell", "path": ("root", "cd3"), "complement": True}]), ("root", "cd3"))
    ref = same_as_flowkit(gs, s)
    assert all(p.count > 0 for p in ref.values())


def test_bounds_exactly_on_event_values():
    """Bounds placed on actual event values: the exact path must decide them as FlowKit does."""
    s = read_fcs(FIXTURES / "csf_bd.fcs").sample
    comp = compensation_for(s)
    xf = fk.transforms.LogicleTransform(262144, 0.5, 4.5, 0)
    vals = np.asarray(xf.apply(comp.matrix.to_flowkit().apply(flowkit_sample(s))[:, [s.get_channel_index("PE-A")]])).ravel()
    gs = fk.GatingStrategy()
    gs.add_comp_matrix("spill", comp.matrix.to_flowkit())
    gs.add_transform("xf", xf)
    for i, v in enumerate(np.sort(vals)[::97]):
        gs.add_gate(fk.gates.RectangleGate(f"g{i}", [fk.Dimension("PE-A", "spill", "xf", range_min=float(v),
                                                                  range_max=float(v) + 0.05)]), ("root",))
    same_as_flowkit(gs, s)


def test_quadrants_on_event_values_share_their_dividers_exactly():
    """Quadrant gates whose dividers sit on actual event values (one value per divider: four
    quadrants; two values: nine regions), at the root and under a parent: each divider's range is
    decided once and shared by the quadrants using it, and every quadrant is FlowKit's."""
    s = read_fcs(FIXTURES / "blood_bd.fcs").sample
    comp = compensation_for(s)
    xf = fk.transforms.LogicleTransform(262144, 0.5, 4.5, 0)
    fkm = comp.matrix.to_flowkit()
    comped = fkm.apply(flowkit_sample(s))

    def value_at(ch, q):
        v = np.sort(np.asarray(xf.apply(comped[:, [s.get_channel_index(ch)]])).ravel())
        return float(v[int(q * (v.size - 1))])
    gs = fk.GatingStrategy()
    gs.add_comp_matrix("spill", fkm)
    gs.add_transform("xf", xf)
    gs.add_gate(fk.gates.RectangleGate("big", [fk.Dimension("FSC-A", "uncompensated", None, range_min=20000.0)]), ("root",))
    for parent in (("root",), ("root", "big")):
        a, b = value_at("PerCP-Cy5.5-A", 0.4), value_at("PE-Cy7-A", 0.6)
        divs = [fk.QuadrantDivider("dx", "PerCP-Cy5.5-A", "spill", [a], "xf"),
                fk.QuadrantDivider("dy", "PE-Cy7-A", "spill", [b], "xf")]
        quads = [fk.gates.Quadrant(f"q{i}{len(parent)}", ["dx", "dy"], [rx, ry])
                 for i, (rx, ry) in enumerate([((a, None), (b, None)), ((None, a), (b, None)),
                                               ((None, a), (None, b)), ((a, None), (None, b))])]
        gs.add_gate(fk.gates.QuadrantGate(f"quad{len(parent)}", divs, quads), parent)
        xs = sorted({value_at("PerCP-Cy5.5-A", 0.3), value_at("PerCP-Cy5.5-A", 0.7)})
        ys = sorted({value_at("PE-Cy7-A", 0.25), value_at("PE-Cy7-A", 0.75)})
        divs = [fk.QuadrantDivider("mx", "PerCP-Cy5.5-A", "spill", xs, "xf"),
                fk.QuadrantDivider("my", "PE-Cy7-A", "spill", ys, "xf")]
        cuts_x = [(None, xs[0]), (xs[0], xs[1]), (xs[1], None)]
        cuts_y = [(None, ys[0]), (ys[0], ys[1]), (ys[1], None)]
        regions = [fk.gates.Quadrant(f"r{i}{j}{len(parent)}", ["mx", "my"], [rx, ry])
                   for i, rx in enumerate(cuts_x) for j, ry in enumerate(cuts_y)]
        gs.add_gate(fk.gates.QuadrantGate(f"nine{len(parent)}", divs, regions), parent)
    ref = same_as_flowkit(gs, s)
    quads = [p for k, p in ref.items() if k[0].startswith(("q", "r"))]
    assert len(quads) == 26 and sum(p.count > 0 for p in quads) >= 20


def test_gatingml_compliance_through_fast_evaluator():
    d = shared("gatingml2_compliance")
    s = read_fcs(d / "data1.fcs").sample
    n = 0
    for doc in sorted((d / "gml").glob("*.xml")):
        if doc.name == "gml_range_gate_attr_testing.xml":
            continue
        ref = same_as_flowkit(read_gatingml(doc), s)
        n += len(ref)
    assert n >= 130


def test_evaluator_result_api():
    s = read_fcs(FIXTURES / "csf_bd.fcs").sample
    g = auto_gate(s, Panel.default().resolve(channels_of(s)), compensation_for(s))
    res = Evaluator(g.strategy).evaluate(s)
    assert res.get("car_t").sum() == g.builder.count("car_t")
    assert res.counts()[("t_cells", ("root", "singlets", "leukocytes", "live", "cd45", "lymphocytes"))] == \
        g.builder.count("t_cells")


def test_polygons_on_edges_and_vertices_in_float64_exactly_as_flowkit(tmp_path):
    """Points exactly on a polygon's edges and vertices and one ulp either side, in float64 (not
    representable in float32), with and without a parent, with a small and a large bounding box:
    the bounding-box shortcut and the column handling must keep FlowKit's membership."""
    rng = np.random.default_rng(20261206)
    verts = [(1.1, 1.3), (7.7, 2.2), (6.1, 8.9), (2.3, 5.5)]
    edge = np.array([(x1 + t * (x2 - x1), y1 + t * (y2 - y1))
                     for (x1, y1), (x2, y2) in zip(verts, verts[1:] + verts[:1]) for t in np.linspace(0, 1, 157)])
    edge = np.vstack([edge, np.nextafter(edge, 100.0), np.nextafter(edge, -100.0)])
    # and a hair (1e-9) off each edge, both sides: float64 tells the side, float32 could not
    normals = np.array([(y1 - y2, x2 - x1) for (x1, y1), (x2, y2) in zip(verts, verts[1:] + verts[:1])])
    normals /= np.linalg.norm(normals, axis=1)[:, None]
    normal = np.repeat(normals, 157, axis=0)
    base = edge[: len(normal)]
    edge = np.vstack([edge, base + 1e-9 * normal, base - 1e-9 * normal])
    pts = np.vstack([rng.uniform(0, 10, (40_000, 2)), rng.uniform(0, 100, (40_000, 2)), edge])
    events = np.column_stack([pts, rng.uniform(0, 10, len(pts))])
    s = read_fcs(write_float64_fcs(tmp_path / "f64.fcs", events, ["x", "y", "z"])).sample
    assert np.array_equal(s.get_events(source="raw"), events)          # float64 kept: not float32-representable
    gs = fk.GatingStrategy()
    dims = [fk.Dimension("x", compensation_ref="uncompensated"), fk.Dimension("y", compensation_ref="uncompensated")]
    gs.add_gate(fk.gates.PolygonGate("poly", dims, verts), ("root",))                       # box: a small share
    gs.add_gate(fk.gates.PolygonGate("big", dims, [(-1, -1), (101, -1), (101, 101), (-1, 101)]), ("root",))
    gs.add_gate(fk.gates.RectangleGate("left", [fk.Dimension("z", compensation_ref="uncompensated", range_max=6.0)]),
                ("root",))
    gs.add_gate(fk.gates.PolygonGate("poly_in_left", dims, verts), ("root", "left"))
    gs.add_gate(fk.gates.PolygonGate("not_poly", dims, verts, use_complement=True), ("root", "left"))
    ref = same_as_flowkit(gs, s)
    assert ref[("poly", ("root",))].count > 1000 and ref[("poly_in_left", ("root", "left"))].count > 500
