import hashlib

import numpy as np

from gating import read_fcs

from cytomnt.synth import TubeSpec, simulate, write_tube


def test_same_seed_same_bytes(tmp_path):
    a = write_tube(tmp_path / "a.fcs", TubeSpec(events=3000), 5)
    b = write_tube(tmp_path / "b.fcs", TubeSpec(events=3000), 5)
    assert a == b
    h = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.fcs", "b.fcs")]
    assert h[0] == h[1]
    c = write_tube(tmp_path / "c.fcs", TubeSpec(events=3000), 6)
    assert c["car_t"] != a["car_t"] or c["t_cells"] != a["t_cells"]


def test_truth_is_consistent_with_the_events():
    pnn, pns, ev, truth, kw = simulate(TubeSpec(events=20000, car_frac_of_t=0.3), 1)
    assert ev.shape == (20000, len(pnn))
    pops = truth["populations"]
    assert sum(pops.values()) == truth["events"] == 20000
    assert truth["t_cells"] == pops["t_cd4"] + pops["t_cd8"] + pops["t_dn"]
    assert truth["car_t"] == truth["car_cd4"] + truth["car_cd8"] + truth["car_dn"]
    assert 0.25 < truth["car_t"] / truth["t_cells"] < 0.35


def test_both_naming_styles_and_decoy(tmp_path):
    for style, t_label in (("bd", "CD3"), ("numbered", "CD3 BV421")):
        write_tube(tmp_path / f"{style}.fcs", TubeSpec(events=2000, style=style), 1)
        s = read_fcs(tmp_path / f"{style}.fcs").sample
        assert t_label in s.pns_labels
        assert any("CD38" in p for p in s.pns_labels)
        assert "spillover" in s.metadata
        assert s.metadata["fil"] if "fil" in s.metadata else True


def test_csf_tube_is_small_and_lymphocyte_rich():
    _, _, ev, truth, kw = simulate(TubeSpec(sample_type="csf", events=800), 3)
    assert ev.shape[0] == 800 and kw["SRC"] == "CSF"
    assert truth["lymphocytes"] > 0.6 * truth["live_leukocytes"]
    assert np.isfinite(ev).all()
