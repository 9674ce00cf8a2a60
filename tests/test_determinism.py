"""Same bytes whatever the row blocking, event order or BLAS thread count; FlowKit's membership
exactly, also for events lying on a bound; and the tolerance where FlowKit itself moves."""
import flowkit as fk
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import cytomnt
from gating import read_fcs, stable
from gating.formats.strategy import gate_sample
from gating.io.events import flowkit_sample
from gating.preprocess import compensated_events, compensation_for

from cytomnt.inputs.panel import Panel, channels_of
from cytomnt.inputs.strategies import load_strategy
from cytomnt.run.config import make_config
from cytomnt.sample.gate import gate
from cytomnt.sample.statistics import population_statistics

from .conftest import FIXTURES

# seeds and shapes this code was not developed on
RNG = np.random.default_rng(8675309)


def _spillover(d: int) -> np.ndarray:
    m = np.eye(d) + RNG.uniform(0.0, 0.35, (d, d)) * (RNG.random((d, d)) < 0.5)
    np.fill_diagonal(m, 1.0)
    return m


@pytest.mark.parametrize("d", [1, 3, 8, 17, 33])
def test_stable_inverse_is_an_inverse(d):
    m = _spillover(d)
    inv = stable.inverse(m)
    assert np.allclose(inv @ m, np.eye(d), atol=1e-12)
    assert np.allclose(inv, np.linalg.inv(m), rtol=1e-10, atol=1e-13)


def test_singular_matrix_is_refused():
    with pytest.raises(stable.SingularMatrixError):
        stable.inverse(np.array([[1.0, 2.0], [2.0, 4.0]]))


@pytest.mark.parametrize("n,d", [(1, 5), (7, 3), (70_001, 13), (150_000, 9)])
def test_matmul_is_the_same_over_blocks_orders_and_threads(n, d, monkeypatch):
    x = RNG.lognormal(6, 2.5, (n, d)) - 300.0
    inv = stable.inverse(_spillover(d))
    ref = stable.matmul(x, inv)
    # against LAPACK's solve, to the rounding of the terms that are summed
    solved = np.linalg.solve(np.linalg.inv(inv).T, x.T).T
    scale = np.abs(x) @ np.abs(inv) + 1.0
    assert np.all(np.abs(ref - solved) <= 1e-12 * scale)
    perm = RNG.permutation(n)
    assert np.array_equal(stable.matmul(x[perm], inv), ref[perm])            # event order
    for start in (0, 1, n // 3):
        assert np.array_equal(stable.matmul(x[start:], inv), ref[start:])    # where the rows start
    monkeypatch.setattr(stable, "BLOCK_ROWS", 1000)
    assert np.array_equal(stable.matmul(x, inv), ref)                        # row blocking
    for threads in (1, 2, 4):
        with threadpool_limits(threads):
            assert np.array_equal(stable.matmul(x, inv), ref)                # BLAS threads


def test_statistics_do_not_depend_on_threads_or_blocks(monkeypatch):
    s = read_fcs(FIXTURES / "blood_numbered.fcs").sample
    cfg = make_config()
    comp = compensation_for(s)
    gated = gate(s, comp, load_strategy("auto"), cfg.gating, "blood_numbered.fcs", "x")
    with threadpool_limits(1):
        wide1, long1 = population_statistics(s, comp, gated.populations, gated.panel)
    monkeypatch.setattr(stable, "BLOCK_ROWS", 777)
    with threadpool_limits(2):
        wide2, long2 = population_statistics(s, comp, gated.populations, gated.panel)
    assert wide1.equals(wide2) and long1.equals(long2)


def test_auto_gates_do_not_depend_on_blas_threads():
    s = read_fcs(FIXTURES / "blood_bd.fcs").sample
    comp = compensation_for(s)
    with threadpool_limits(1):
        one = compensated_events(s, comp)
        a = cytomnt.analyze([s])
    with threadpool_limits(2):
        two = compensated_events(s, comp)
        b = cytomnt.analyze([s])
    assert np.array_equal(one, two)
    assert a.to_csv() == b.to_csv()


def test_flowkit_own_values_move_with_the_solve_shape_within_the_stated_tolerance():
    """FlowKit compensates all events in one LAPACK solve; the same event solved alone (or in a
    block of another size) may differ in its last bits, so FlowKit's membership of an event
    lying *exactly* on a bound is a property of that call, not of the event. The stated
    tolerance: at most 8 ulp of the largest term summed (here: seen 0-1 ulp)."""
    s = read_fcs(FIXTURES / "csf_bd.fcs").sample
    comp = compensation_for(s)
    m = np.asarray(comp.matrix.matrix, dtype=float)
    idx = [s.get_channel_index(d) for d in comp.matrix.detectors]
    raw = s.get_events(source="raw")[:, idx]
    full = comp.matrix.to_flowkit().apply(flowkit_sample(s))[:, idx]         # FlowKit's own call
    alone = np.array([np.linalg.solve(m.T, raw[i]) for i in range(200)])    # one event per call
    terms = np.abs(raw[:200]) @ np.abs(np.linalg.inv(m))
    assert np.all(np.abs(alone - full[:200]) <= 8 * np.spacing(terms + 1.0))


def test_bounds_on_flowkit_values_of_single_events():
    """Each gate holds one event exactly on its lower bound (FlowKit's value of that event):
    the evaluator must take FlowKit's decision, whichever way its arithmetic rounds."""
    s = read_fcs(FIXTURES / "csf_bd.fcs").sample
    comp = compensation_for(s)
    vals = comp.matrix.to_flowkit().apply(flowkit_sample(s))[:, s.get_channel_index("BV421-A")]
    gs = fk.GatingStrategy()
    gs.add_comp_matrix("spill", comp.matrix.to_flowkit())
    for i, ev in enumerate(RNG.choice(len(vals), 40, replace=False)):
        v = float(vals[ev])
        gs.add_gate(fk.gates.RectangleGate(f"on{i}", [fk.Dimension("BV421-A", "spill", None, range_min=v,
                                                                   range_max=v + 1e-9 * (1 + abs(v)))]), ("root",))
    fast = {p.name: p.membership for p in gate_sample(gs, s, engine="fast")}
    ref = {p.name: p.membership for p in gate_sample(gs, s, engine="flowkit")}
    for k in ref:
        assert np.array_equal(fast[k], ref[k]), k
        assert ref[k].sum() >= 1, k


def test_panel_markers_fill_statistics_marker_column(tmp_path):
    panel = tmp_path / "p.yaml"
    panel.write_text("markers: {BV421-A: CD3-from-table}\n")
    s = read_fcs(FIXTURES / "csf_bd.fcs").sample
    p = Panel.from_yaml(panel)
    chans = channels_of(s, p)
    assert chans[s.get_channel_index("BV421-A")].pns == "CD3-from-table"


@pytest.mark.slow
def test_demo_tables_identical_across_jobs_and_the_python_api(tmp_path):
    """The demo set analysed with ``--jobs 1``, ``--jobs 2`` and ``cytomnt.analyze`` (BLAS threads
    at their default in every case): byte-identical tables, CSV and Parquet."""
    from cytomnt.cli import main
    from cytomnt.demo import make_demo_set
    manifest = make_demo_set(tmp_path / "data")
    fcs = str(tmp_path / "data" / "fcs")
    for jobs in ("1", "2"):
        assert main(["analyze", fcs, "--manifest", str(manifest), "--out", str(tmp_path / f"j{jobs}"),
                     "--jobs", jobs, "--no-report"]) == 0
    cytomnt.analyze([fcs], manifest=manifest, out=tmp_path / "api", jobs=1)
    names = [f"{t}.{ext}" for t in ("samples", "populations", "statistics") for ext in ("csv", "parquet")]
    for name in names:
        ref = (tmp_path / "j1" / name).read_bytes()
        assert (tmp_path / "j2" / name).read_bytes() == ref, name
        assert (tmp_path / "api" / name).read_bytes() == ref, name
    gates = sorted(p.name for p in (tmp_path / "j1" / "gates").glob("*.xml"))
    assert len(gates) == 8
    for g in gates:
        assert (tmp_path / "j2" / "gates" / g).read_bytes() == (tmp_path / "j1" / "gates" / g).read_bytes(), g


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11, 1000, 12_345])
def test_row_statistics_equal_numpy(n):
    """Median, mean and robust CV by selection equal numpy's (median; inverted-CDF percentiles)."""
    from cytomnt.sample.statistics import RCV_HIGH, RCV_LOW, selection_statistics
    full = (RNG.lognormal(4, 1.5, (5, 3 * n)) - 20).astype(np.float32)
    rows = np.sort(RNG.choice(3 * n, n, replace=False))        # a population: some of the events
    x = full[:, rows]
    got = np.array([selection_statistics(r, rows) for r in full])
    st = {"median": got[:, 0], "mean": got[:, 1], "rcv": got[:, 2]}
    assert np.array_equal(st["median"], np.median(x.astype(float), axis=1))
    assert np.allclose(st["mean"], x.astype(float).mean(axis=1), rtol=1e-12)
    lo = np.percentile(x, RCV_LOW, axis=1, method="inverted_cdf").astype(float)
    hi = np.percentile(x, RCV_HIGH, axis=1, method="inverted_cdf").astype(float)
    med = np.median(x.astype(float), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        expect = np.where(med != 0, 100 * (hi - lo) / 2 / np.abs(med), np.nan)
    assert np.allclose(st["rcv"], expect, equal_nan=True)


@pytest.mark.parametrize("threads", [1, 3])
def test_statistics_the_same_with_any_thread_count_and_started_while_gating(threads, tmp_path):
    """Statistics computed on 1, 2 or 3 threads, started population by population while the
    gates are evaluated or all at the end (one thread: queued, then channel by channel), are
    the same tables bit for bit."""
    from cytomnt.sample.gate import gate
    from cytomnt.sample.statistics import StatisticsJob
    from cytomnt.inputs.strategies import load_strategy
    from gating.parallel import sample_threads, set_sample_threads
    from gating.formats.strategy import write_gatingml
    s = read_fcs(FIXTURES / "blood_bd.fcs").sample
    comp = compensation_for(s)
    cfg = make_config()
    auto = gate(s, comp, load_strategy("auto"), cfg.gating, "blood_bd.fcs", "b")
    ucfg = make_config(strategy=str(write_gatingml(auto.strategy, tmp_path / "g.xml")))
    before = sample_threads()
    try:
        set_sample_threads(2)
        ref = population_statistics(s, comp, auto.populations, auto.panel)
        set_sample_threads(threads)
        s2 = read_fcs(FIXTURES / "blood_bd.fcs").sample
        job = StatisticsJob(s2, comp)
        user = gate(s2, comp, load_strategy(ucfg.strategy), ucfg.gating, "blood_bd.fcs", "b", on_gate=job.start)
        got = population_statistics(s2, comp, user.populations, auto.panel, job)
    finally:
        set_sample_threads(before)
    assert [p.count for p in user.populations] == [p.count for p in auto.populations]
    for a, b in zip(ref, got):
        assert a.to_csv() == b.to_csv()
        num = a.select_dtypes("number")
        assert num.to_numpy().tobytes() == b[num.columns].to_numpy().tobytes()



@pytest.mark.parametrize("name", ["blood_bd.fcs", "blood_numbered.fcs", "csf_bd.fcs", "blood_beads.fcs"])
def test_close_values_lie_within_their_stated_distance_of_flowkits(name):
    """The evaluator's float64 tier: every event's multiply-add value lies within its stated bound
    of FlowKit's own solve over all events, on every channel (what lets it skip that solve)."""
    from gating.evaluator.compref import CompRef
    s = read_fcs(FIXTURES / name).sample
    comp = compensation_for(s)
    if comp.matrix is None:
        pytest.skip("no spillover")
    m = np.asarray(comp.matrix.matrix, dtype=float)
    idx = [s.get_channel_index(d) for d in comp.matrix.detectors]
    ref = CompRef(idx, m, stable.inverse(m), {ch: j for j, ch in enumerate(idx)})
    raw = s.get_events(source="raw")
    full = comp.matrix.to_flowkit().apply(flowkit_sample(s))                  # FlowKit's own call
    rows = np.arange(raw.shape[0])
    for ch in idx:
        v, err = ref.close(raw, rows, ch)
        assert np.all(np.abs(v - full[:, ch]) <= err), ch
        assert np.all(np.abs(v - full[:, ch]) <= err / 10), ch              # with room to spare


def test_flowkits_solve_is_made_only_for_events_on_a_bound(monkeypatch):
    """Ordinary bounds are settled without FlowKit's solve over all events; a bound on an event's
    own FlowKit value still gets FlowKit's decision."""
    import gating.evaluator.compref as compref
    s = read_fcs(FIXTURES / "blood_bd.fcs").sample
    comp = compensation_for(s)
    vals = comp.matrix.to_flowkit().apply(flowkit_sample(s))[:, s.get_channel_index("PE-A")]
    calls = []
    real = np.linalg.solve
    monkeypatch.setattr(compref.np.linalg, "solve", lambda *a: calls.append(1) or real(*a))
    xf = fk.transforms.LogicleTransform(262144, 0.5, 4.5, 0)
    gs = fk.GatingStrategy()
    gs.add_comp_matrix("spill", comp.matrix.to_flowkit())
    gs.add_transform("xf", xf)
    for i, b in enumerate(np.linspace(0.2, 0.8, 25)):
        gs.add_gate(fk.gates.RectangleGate(f"r{i}", [fk.Dimension("PE-A", "spill", "xf", range_min=float(b))]), ("root",))
    fast = {p.name: p.membership for p in gate_sample(gs, s, engine="fast")}
    assert not calls
    v = float(np.sort(vals)[len(vals) // 2])
    gs.add_gate(fk.gates.RectangleGate("on", [fk.Dimension("PE-A", "spill", None, range_min=v)]), ("root",))
    fast = {p.name: p.membership for p in gate_sample(gs, s, engine="fast")}
    monkeypatch.setattr(compref.np.linalg, "solve", real)
    ref = {p.name: p.membership for p in gate_sample(gs, s, engine="flowkit")}
    assert calls and all(np.array_equal(fast[k], ref[k]) for k in ref)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_population_with_the_members_of_another_takes_its_numbers(threads):
    """Two populations with the very same events (a quadrant equal to a rectangle) get the numbers
    the first one's computation gives, in every channel, bit for bit; a large twin still serves
    its descendants, and they get what a job without the twin gives them."""
    from cytomnt.sample.statistics import StatisticsJob
    from gating.parallel import sample_threads, set_sample_threads
    s = read_fcs(FIXTURES / "blood_bd.fcs").sample
    comp = compensation_for(s)
    rng = np.random.default_rng(91)
    n = s.event_count
    big = rng.random(n) < 0.9                       # large: sorted once a descendant derives from it
    child = big & (rng.random(n) < 0.85)
    small = rng.random(n) < 0.2
    pops = [(("big", ("root",)), big), (("big_twin", ("root",)), big.copy()),
            (("child", ("root", "big_twin")), child), (("small", ("root",)), small),
            (("small_twin", ("root",)), small.copy())]
    before = sample_threads()
    try:
        set_sample_threads(threads)
        job = StatisticsJob(s, comp)
        for key, mask in pops:
            job.start(key, mask)
        got = {key[0]: job.result(key, mask) for key, mask in pops}
        alone = StatisticsJob(s, comp)
        for key, mask in (pops[1], pops[2], pops[4]):
            alone.start(key, mask)
        ref = {key[0]: alone.result(key, mask) for key, mask in (pops[1], pops[2], pops[4])}
    finally:
        set_sample_threads(before)
    assert np.array(got["big"]).tobytes() == np.array(got["big_twin"]).tobytes()
    assert np.array(got["small"]).tobytes() == np.array(got["small_twin"]).tobytes()
    for name in ("big_twin", "child", "small_twin"):
        assert np.array(got[name]).tobytes() == np.array(ref[name]).tobytes(), name
    from cytomnt.sample.statistics import fluorescence_by_channel
    values = fluorescence_by_channel(s, comp)          # and the numbers are the events' own
    assert len(got["small"]) == len(values)
    for channel, (median, mean, _) in zip(values, got["small"]):
        x = channel[small].astype(np.float64)
        assert median == pytest.approx(np.median(x), rel=1e-12) and mean == pytest.approx(x.mean(), rel=1e-12)
