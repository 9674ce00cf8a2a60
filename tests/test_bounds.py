"""Whole-column bound tests: an event decided from its float32 value is decided as the exact
float64 value would be; only events near a bound are left undecided."""
import numpy as np
import pytest

from gating.evaluator.bounds import sure_and_near


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_sure_and_outside_agree_with_exact_values(seed):
    rng = np.random.default_rng(seed)
    v = np.concatenate([rng.normal(0, 1, 20_000), rng.lognormal(8, 3, 20_000), -rng.lognormal(3, 2, 20_000),
                        np.zeros(50), rng.uniform(-1e-6, 1e-6, 1000)])
    # the fast column: float32 of values that differ from the exact ones by a few ulp of float64
    column = (v * (1 + rng.uniform(-4e-16, 4e-16, v.size))).astype(np.float32)
    picks = rng.choice(v, 40)
    bounds = list(picks) + [0.0, -0.0, 1e-7, float(np.float32(picks[0])), float(np.nextafter(picks[1], np.inf))]
    for lo in bounds + [None]:
        for hi in rng.choice(bounds, 3).tolist() + [None]:
            sure, near = sure_and_near(column, lo, hi)
            inside = np.ones(v.size, bool)
            if lo is not None:
                inside &= v >= lo
            if hi is not None:
                inside &= v < hi
            assert not (sure & ~inside).any()                 # surely in: really in
            assert not (~sure & ~near & inside).any()         # surely out: really out
            assert not (sure & near).any()
    # the band is narrow: few events are left for the exact path
    sure, near = sure_and_near(column, float(np.percentile(v, 70)), None)
    assert near.sum() < 50


def test_no_bounds_and_huge_bounds():
    column = np.array([-3e38, -1.0, 0.0, 1.0, 3e38], dtype=np.float32)
    sure, near = sure_and_near(column, None, None)
    assert sure.all() and not near.any()
    with np.errstate(over="ignore"):
        sure, near = sure_and_near(column, -1e300, 1e300)
    assert sure.all() and not near.any()
    nan = np.array([np.nan, 1.0], dtype=np.float32)          # NaN is in no range (FlowKit's lo <= v < hi)
    for lo, hi in ((0.0, None), (None, 2.0), (0.0, 2.0), (1.0, 1.0)):
        sure, near = sure_and_near(nan, lo, hi)
        assert not sure[0] and not near[0]


def _ellipse_strategy(names, center, cov, d2, parent_gate=None):
    import flowkit as fk
    dims = [fk.Dimension(n, compensation_ref="uncompensated") for n in names]
    strategy = fk.GatingStrategy()
    path = ("root",)
    if parent_gate is not None:
        strategy.add_gate(parent_gate, path)
        path = ("root", parent_gate.gate_name)
    strategy.add_gate(fk.gates.EllipsoidGate("ell", dims, list(center), np.asarray(cov).tolist(), d2), path)
    return strategy, path


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_ellipses_on_raw_values_are_flowkits_event_for_event(seed):
    """2-D ellipses on raw scatter (tested on their bounding box's events only): rotated, narrow
    and wide, under a parent gate or not, the events of FlowKit's own ``gate_sample``."""
    import flowkit as fk

    from gating import read_fcs
    from gating.evaluator.evaluate import Evaluator

    from .conftest import FIXTURES
    s = read_fcs(FIXTURES / "blood_bd.fcs").sample
    raw = s.get_events(source="raw")
    names = [s.pnn_labels[0], s.pnn_labels[2]]
    xy = raw[:, [0, 2]]
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    spread = np.diag(rng.uniform(0.2, 1.0, 2) * xy.std(axis=0)) ** 2
    cov = rot @ spread @ rot.T
    center = xy[rng.integers(len(xy))]
    lo = np.quantile(xy, 0.1, axis=0)
    parent = fk.gates.RectangleGate("big", [fk.Dimension(names[0], compensation_ref="uncompensated", range_min=float(lo[0])),
                                            fk.Dimension(names[1], compensation_ref="uncompensated", range_min=float(lo[1]))])
    fks = fk.Sample(raw, channel_labels=s.pnn_labels, sample_id="x")
    for d2 in (0.5, 2.0, 9.0):
        for with_parent in (False, True):
            strategy, path = _ellipse_strategy(names, center, cov, d2, parent if with_parent else None)
            ours = Evaluator(strategy).evaluate(s).membership[("ell", path)]
            ref = strategy.gate_sample(fks).get_gate_membership("ell", gate_path=path)
            assert np.array_equal(ours, ref), (d2, with_parent)
            assert 0 < ours.sum() < len(ours)


def test_events_on_an_ellipse_are_decided_as_flowkit_decides_them(monkeypatch):
    """Events on the boundary itself (and one float step either side): decided by flowutils over all
    events, as FlowKit calls it, and equal to FlowKit's own result."""
    import flowkit as fk

    import gating.evaluator.bounds as bounds
    from gating.evaluator.evaluate import Evaluator
    sx, sy, cx, cy = 3000.0, 700.0, 50_000.0, 20_000.0
    on = np.array([[cx + sx, cy], [cx - sx, cy], [cx, cy + sy], [cx, cy - sy]])
    steps = np.vstack([on, np.nextafter(on, on * 2), np.nextafter(on, on / 2)])
    far = np.random.default_rng(4).normal([cx, cy], [4 * sx, 4 * sy], (5000, 2))
    events = np.column_stack([np.vstack([steps, far]), np.zeros(len(steps) + len(far))])
    names = ["FSC-A", "SSC-A", "Time"]
    fks = fk.Sample(events, channel_labels=names, sample_id="edge")
    strategy, path = _ellipse_strategy(names[:2], (cx, cy), np.diag([sx ** 2, sy ** 2]), 1.0)
    calls = []
    real = bounds.fu_gating.points_in_ellipsoid
    monkeypatch.setattr(bounds.fu_gating, "points_in_ellipsoid", lambda *a: calls.append(len(a[3])) or real(*a))
    ours = Evaluator(strategy).evaluate(fks).membership[("ell", path)]
    monkeypatch.undo()
    assert calls == [len(events)]                      # the band held events: flowutils over all of them, once
    assert np.array_equal(ours, strategy.gate_sample(fks).get_gate_membership("ell"))


def _random_polygon(rng, kind: str) -> np.ndarray:
    """A polygon of a given kind, vertices in arbitrary (lab-like) units."""
    k = int(rng.integers(3, 13))
    centre, size = rng.uniform(-5e4, 2e5, 2), rng.uniform(1e2, 1e5, 2)
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    if kind == "convex":
        r = np.ones(k)
    elif kind == "star":
        r = rng.uniform(0.2, 1.0, k)
    elif kind == "tangled":                          # crossing edges: holes and double windings
        ang = rng.uniform(0, 2 * np.pi, k)
        r = rng.uniform(0.1, 1.0, k)
    else:                                            # "thin": a diagonal band, events crowd its long edges
        t = np.array([0.0, 1.0, 1.0, 0.0])
        w = rng.uniform(0.01, 0.1)
        return np.column_stack([centre[0] + size[0] * t, centre[1] + size[1] * (t + np.array([0, 0, w, w]))])
    return np.column_stack([centre[0] + size[0] * r * np.cos(ang), centre[1] + size[1] * r * np.sin(ang)])


@pytest.mark.parametrize("seed", [7, 1913, 4242, 90210])
def test_polygons_decided_by_grid_cells_are_flowutils_event_for_event(seed):
    """in_polygon (bounding box, then a grid of cells wholly inside or outside, flowutils near the
    edges) against flowutils over every event: random convex, star-shaped, self-crossing and thin
    polygons; events spread over and around the box, crowded along the edges, exactly on edges and
    vertices and one float step either side, with and without a parent mask."""
    from flowutils import gating as fu_gating

    from gating.evaluator.bounds import in_polygon
    rng = np.random.default_rng(seed)
    for kind in ("convex", "star", "tangled", "thin"):
        v = _random_polygon(rng, kind)
        lo, hi = v.min(axis=0), v.max(axis=0)
        a, b = v, np.roll(v, -1, axis=0)
        t = rng.uniform(0, 1, (30_000, 1))
        e = rng.integers(0, len(v), 30_000)
        on_edges = a[e] + t * (b[e] - a[e])
        crowd = on_edges + rng.normal(0, 1e-3, on_edges.shape) * (hi - lo)
        exact = np.vstack([v, on_edges[:2000]])
        pts = np.vstack([rng.uniform(lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo), (60_000, 2)), crowd, exact,
                         np.nextafter(exact, np.inf), np.nextafter(exact, -np.inf), [[np.nan, lo[1]], [lo[0], np.inf]]])
        x, y = np.ascontiguousarray(pts[:, 0]), np.ascontiguousarray(pts[:, 1])
        want = fu_gating.points_in_polygon(v, pts)
        assert np.array_equal(in_polygon(v, x, y), want), kind
        parent = rng.random(x.size) < 0.7
        assert np.array_equal(in_polygon(v, x, y, parent), want & parent), kind


def test_polygon_grid_cells_are_what_their_events_are():
    """Every cell the grid calls inside (outside) holds only events flowutils puts inside (outside),
    sampled densely up to the cells' borders; the grid leaves few events to flowutils."""
    from flowutils import gating as fu_gating

    from gating.evaluator.bounds import INSIDE, NEAR, OUTSIDE, PolygonGrid
    rng = np.random.default_rng(31337)
    v = _random_polygon(rng, "star")
    grid = PolygonGrid(v, 128)
    lo, hi = v.min(axis=0), v.max(axis=0)
    pts = rng.uniform(lo, hi, (400_000, 2))
    cls = grid.classes(pts[:, 0].copy(), pts[:, 1].copy())
    inside = fu_gating.points_in_polygon(v, pts)
    assert inside[cls == INSIDE].all() and not inside[cls == OUTSIDE].any()
    assert (cls == NEAR).mean() < 0.25 and (cls == INSIDE).any() and (cls == OUTSIDE).any()


def test_degenerate_polygons_go_to_flowutils():
    """A polygon without width or height, or with a non-finite vertex, has no grid: flowutils decides."""
    from flowutils import gating as fu_gating

    from gating.evaluator.bounds import in_polygon, polygon_grid
    rng = np.random.default_rng(5)
    pts = np.vstack([rng.uniform(0, 10, (20_000, 2)), [[3.0, 5.0], [3.0, 2.0]]])
    for v in ([(3.0, 1.0), (3.0, 9.0), (3.0, 4.0)], [(1.0, 5.0), (9.0, 5.0), (4.0, 5.0)]):
        v = np.array(v)
        assert polygon_grid(tuple(map(tuple, v.tolist())), 128) is None
        assert np.array_equal(in_polygon(v, pts[:, 0].copy(), pts[:, 1].copy()), fu_gating.points_in_polygon(v, pts))
    assert polygon_grid(((0.0, 0.0), (1.0, np.inf), (2.0, 0.0)), 64) is None


@pytest.mark.parametrize("threads", [2, 3])
def test_polygons_in_row_shares_on_threads_are_flowutils(monkeypatch, threads):
    """A polygon decided in row shares on several threads (each share with the grid its own box
    count picks) gives flowutils' membership, with and without a parent."""
    from flowutils import gating as fu_gating

    from gating.evaluator import bounds
    from gating.parallel import sample_threads, set_sample_threads
    rng = np.random.default_rng(60606)
    monkeypatch.setattr(bounds, "THREADED_EVENTS", 1000)
    before = sample_threads()
    set_sample_threads(threads)
    try:
        for kind in ("star", "thin", "tangled"):
            v = _random_polygon(rng, kind)
            lo, hi = v.min(axis=0), v.max(axis=0)
            pts = rng.uniform(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), (50_001, 2))
            x, y = pts[:, 0].copy(), pts[:, 1].copy()
            want = fu_gating.points_in_polygon(v, pts)
            parent = rng.random(x.size) < 0.5
            assert np.array_equal(bounds.in_polygon(v, x, y), want), kind
            assert np.array_equal(bounds.in_polygon(v, x, y, parent), want & parent), kind
    finally:
        set_sample_threads(before)
