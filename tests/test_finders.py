import numpy as np
import pytest

from gating.auto import finders


def rng():
    return np.random.default_rng(0)


def test_valley_between_two_populations():
    r = rng()
    x = np.concatenate([r.normal(0.25, 0.05, 8000), r.normal(0.65, 0.05, 2000)])
    c = finders.positive_cut(x, zero=0.11)
    assert c.method == "valley" and 0.38 < c.value < 0.52


def test_tail_when_positives_are_rare():
    r = rng()
    x = np.concatenate([r.normal(0.25, 0.05, 5000), r.normal(0.65, 0.05, 15)])
    c = finders.positive_cut(x, zero=0.11)
    assert c.method == "tail"
    assert (x > c.value).sum() == pytest.approx(15, abs=3)


def test_all_positive_is_not_split_between_dim_and_bright():
    r = rng()
    x = np.concatenate([r.normal(0.58, 0.03, 6000), r.normal(0.72, 0.03, 3000)])  # CD45 dim and bright
    c = finders.positive_cut(x, zero=0.11)
    assert c.value < 0.48 and (x >= c.value).mean() > 0.999


def test_debris_cut_keeps_both_cell_peaks():
    r = rng()
    x = np.concatenate([r.exponential(9000, 3000) + 2000, r.normal(70e3, 6e3, 3000), r.normal(115e3, 10e3, 6000)])
    c = finders.debris_cut(x)
    assert c.method == "valley" and 25e3 < c.value < 50e3


def test_ratio_band_excludes_doublets():
    r = rng()
    a = r.normal(80e3, 8e3, 5000)
    h = a * r.normal(0.86, 0.02, 5000)
    da = r.normal(160e3, 10e3, 300)
    dh = da * 0.55
    lo, hi = finders.ratio_band(np.concatenate([a, da]), np.concatenate([h, dh]))
    assert 0.6 < lo.value < 0.8 < 0.86 < hi.value


def test_low_population_cut_between_lymphocytes_and_monocytes():
    r = rng()
    x = np.concatenate([r.normal(25e3, 4e3, 4000), r.normal(70e3, 10e3, 1000), r.normal(135e3, 20e3, 6000)])
    c = finders.low_population_cut(x)
    assert c.method == "valley" and 35e3 < c.value < 55e3


def test_empty_inputs_give_empty_cut():
    assert finders.positive_cut(np.array([0.2]), zero=0.1).method == "empty"
    with pytest.raises(ValueError):
        finders.percentile_cut(np.array([]), 99)
