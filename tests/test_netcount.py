"""Positives net of background at several cut levels of a reference, with a bootstrap over the
population and the reference (gating.auto.netcount), on distributions with known truth."""
import numpy as np
import pytest

from gating.auto.netcount import (LEVELS, ReferenceTail, interval, net_count, rank_from_top, usable_levels)

SEED = 61_803            # never used while developing


def _tube(rng, n_neg, n_pos, pos_mean=6.0, scale=1.0):
    return np.r_[rng.normal(0, scale, n_neg), rng.normal(pos_mean, 1.0, n_pos)]


def test_reference_tail_keeps_what_the_cuts_need():
    rng = np.random.default_rng(SEED)
    v = rng.normal(0, 1, 5000)
    tail = ReferenceTail.of("r", v)
    for q in (90, 95, 99, 99.5, 99.9):
        k = rank_from_top(v.size, q)
        assert tail.cut(q) == np.sort(v)[-k]                  # the k-th highest of the full reference
        assert tail.share_above(tail.cut(q)) == pytest.approx(k / v.size)
    assert tail.median == pytest.approx(np.median(v)) and tail.p10 == pytest.approx(np.percentile(v, 10))
    # a small reference cannot place a 99.9th percentile: at least 10 events above each cut
    assert usable_levels(1000) == (99.0, 99.0, 99.0) and usable_levels(20_000) == LEVELS


def test_no_positives_gives_zero_inside_the_interval():
    """A subset with no positive event: the estimate's interval holds zero (at least 93 of 100 seeds)."""
    held = 0
    for i in range(100):
        rng = np.random.default_rng(SEED + i)
        nc = net_count(f"p{i}", rng.normal(0, 1, 4000), ReferenceTail.of(f"r{i}", rng.normal(0, 1, 3000)))
        lo, hi = interval(nc.rows())
        held += lo <= 0 <= hi
        assert abs(nc.point) < 30
    assert held >= 93, held


@pytest.mark.parametrize("n_pos", [40, 400])
def test_separated_positives_are_counted_and_covered(n_pos):
    """Well separated positives: the estimate is the count, the interval covers it at least 93% of the
    time, and the count does not depend on the cut level (no smear, no hidden positives)."""
    held, errs, widened = 0, [], 0
    for i in range(100):
        rng = np.random.default_rng(SEED + 1000 + i)
        nc = net_count(f"p{i}", _tube(rng, 5000, n_pos), ReferenceTail.of(f"r{i}", rng.normal(0, 1, 4000)))
        lo, hi = interval(nc.rows())
        held += lo <= n_pos <= hi
        errs.append(nc.point - n_pos)
        widened += nc.hidden > 0.5 * n_pos or nc.low_counts_more     # the smear tests' false alarms (2 sigma)
    assert held >= 93, held
    assert widened <= 6, widened
    assert abs(np.mean(errs)) < 0.1 * n_pos + 3


def test_a_dim_smear_widens_the_interval_upwards():
    """Positives whose distribution runs into the negatives: the count at the middle level misses some;
    the interval's upper end reaches the truth (hidden positives), its lower end stays a count."""
    covered = 0
    for i in range(40):
        rng = np.random.default_rng(SEED + 5000 + i)
        x = np.r_[rng.normal(0, 1, 8000), rng.normal(2.5, 1.2, 1500)]
        nc = net_count(f"d{i}", x, ReferenceTail.of(f"r{i}", rng.normal(0, 1, 6000)))
        lo, hi = interval(nc.rows())
        assert nc.point < 1500 and lo < nc.point < hi
        covered += lo <= 1500 <= hi
        assert nc.hidden > 0 or nc.low_counts_more
    assert covered >= 36, covered


def test_shared_reference_shares_its_replicates_and_runs_are_deterministic():
    rng = np.random.default_rng(SEED + 9)
    ref = ReferenceTail.of("internal:non_t", rng.normal(0, 1, 3000))
    a, b = rng.normal(0, 1, 2000), _tube(rng, 3000, 100)
    one, two = net_count("car_cd4", a, ref), net_count("car_cd4", a, ref)
    assert np.array_equal(one.boot, two.boot)                          # bit for bit, run to run
    other = net_count("car_cd8", b, ref)
    assert not np.array_equal(one.boot, other.boot)


def test_bootstrap_matches_a_plain_resampling_bootstrap():
    """The cheap replicates (binomial draws between cuts, multinomial top of the reference) have the
    spread of a plain bootstrap that resamples every event and recomputes everything."""
    rng = np.random.default_rng(SEED + 11)
    x, r = _tube(rng, 3000, 150, pos_mean=3.0), rng.normal(0, 1, 2000)
    nc = net_count("p", x, ReferenceTail.of("r", r), replicates=2000)
    plain = []
    for _ in range(1000):
        xs, rs = rng.choice(x, x.size), rng.choice(r, r.size)
        k = rank_from_top(rs.size, 99.5)
        cut = np.sort(rs)[-k]
        plain.append(np.count_nonzero(xs >= cut) - x.size * np.count_nonzero(rs >= cut) / rs.size)
    ours = nc.boot[nc.centre]
    assert np.std(ours) == pytest.approx(np.std(plain), rel=0.12)
    assert np.mean(ours) == pytest.approx(np.mean(plain), abs=0.15 * np.std(plain))
