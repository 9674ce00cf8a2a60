"""Exact statistics by every route: selection, a sorted reference, and an ancestor's sorted
values minus the events a population lacks, against numpy on random data (ties included) and
on a gated tube's populations."""
import numpy as np
import pytest

from cytomnt.sample.orderstats import (RCV_HIGH, RCV_LOW, kth_after_removal, selection_statistics, sorted_reference,
                                statistics_after_removal, statistics_of_sorted)

from .conftest import FIXTURES


def _numpy(x: np.ndarray) -> tuple[float, float, float]:
    x = x.astype(float)
    med = np.median(x)
    lo, hi = np.percentile(x, [RCV_LOW, RCV_HIGH], method="inverted_cdf")
    return med, x.mean(), (100 * (hi - lo) / 2 / abs(med) if med != 0 else np.nan)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_every_route_equals_numpy_with_and_without_ties(seed):
    rng = np.random.default_rng(seed)
    for trial in range(400):
        n = int(rng.integers(1, 400))
        vals = (rng.integers(-4, 5, n) if trial % 3 == 0 else rng.lognormal(3, 2, n) - 30).astype(np.float32)
        gone = rng.choice(n, int(rng.integers(0, n)), replace=False)
        keep = np.ones(n, bool)
        keep[gone] = False
        kept = vals[keep]
        s, g = np.sort(vals), np.sort(vals[gone])
        assert [kth_after_removal(s, g, r) for r in range(kept.size)] == np.sort(kept).tolist()
        if not kept.size:
            continue
        expect = _numpy(kept)
        routes = (selection_statistics(vals, np.flatnonzero(keep)),
                  statistics_of_sorted(sorted_reference(vals, np.flatnonzero(keep))),
                  statistics_after_removal(vals, np.sort(gone), kept.size, sorted_reference(vals, np.arange(n))))
        for got in routes:
            assert got[0] == expect[0]
            assert got[1] == pytest.approx(expect[1], rel=1e-12, abs=1e-9)
            assert (np.isnan(got[2]) and np.isnan(expect[2])) or got[2] == pytest.approx(expect[2], rel=1e-12)


def test_a_gated_tubes_statistics_equal_numpy_per_population():
    """Every population of an auto-gated tube (several derive from an ancestor's sorted values):
    median and rCV equal numpy's on the same compensated values, the mean to 1e-12."""
    from cytomnt.run.config import make_config
    from cytomnt.sample.gate import gate
    from cytomnt.sample.statistics import DERIVE_MAX_REMOVED, fluorescence_by_channel, population_statistics
    from cytomnt.inputs.strategies import load_strategy
    from gating import read_fcs
    from gating.preprocess import compensation_for
    s = read_fcs(FIXTURES / "blood_bd.fcs").sample
    comp = compensation_for(s)
    g = gate(s, comp, load_strategy("auto"), make_config().gating, "blood_bd.fcs", "b")
    _, long = population_statistics(s, comp, g.populations, g.panel)
    x = fluorescence_by_channel(s, comp)
    counts = {p.name: p.count for p in g.populations}
    derived = [p for p in g.populations if p.parent in counts and p.count and
               counts[p.parent] - p.count <= DERIVE_MAX_REMOVED * counts[p.parent]]
    assert derived, "no population took the derived route"
    channels = list(dict.fromkeys(long.channel))
    for p in g.populations:
        if not p.count:
            continue
        rows = long[long.population == p.name]
        for j, ch in enumerate(channels):
            med, mean, rcv = _numpy(x[j][p.membership])
            r = rows[rows.channel == ch].iloc[0]
            assert r["median"] == med, (p.name, ch)
            assert r["mean"] == pytest.approx(mean, rel=1e-12, abs=1e-9), (p.name, ch)
            assert (np.isnan(rcv) and np.isnan(r["rcv_pct"])) or r["rcv_pct"] == pytest.approx(rcv, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_integer_keys_order_as_the_floats_and_give_them_back(dtype):
    """The integers selection works on sort exactly as their floats (-0.0 just before +0.0), and
    each comes back as its float bit for bit: subnormals, the extremes, signed zeros, ties."""
    from cytomnt.sample.orderstats import as_keys, from_key
    info = np.finfo(dtype)
    rng = np.random.default_rng(2027)
    special = np.array([0.0, -0.0, info.tiny, -info.tiny, info.smallest_subnormal, -info.smallest_subnormal,
                        info.max, -info.max, 1.0, -1.0, 1.0, -1.0], dtype=dtype)
    vals = np.concatenate([special, (rng.standard_cauchy(5000) * 1e3).astype(dtype), rng.integers(-3, 4, 500).astype(dtype)])
    keys = as_keys(vals.copy())
    order = np.argsort(keys, kind="stable")
    assert np.array_equal(vals[order], np.sort(vals))                 # the same order as the floats
    assert np.all(np.diff(keys[order]) >= 0)
    zeros = order[vals[order] == 0]
    assert np.signbit(vals[zeros[: np.count_nonzero(np.signbit(vals[zeros]))]]).all()   # -0.0 first
    back = np.array([from_key(k, np.dtype(dtype)) for k in keys], dtype=dtype)
    assert np.array_equal(back.view(keys.dtype), vals.view(keys.dtype))        # bit for bit
