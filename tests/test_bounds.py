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
