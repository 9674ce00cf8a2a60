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
