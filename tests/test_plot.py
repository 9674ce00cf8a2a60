"""Gate plots: a PNG per sample for every kind of strategy."""
import matplotlib.image as mpimg

import cytomnt

from .conftest import FIXTURES, shared


def test_plots_written_for_auto_strategy(tmp_path):
    df = cytomnt.analyze([FIXTURES / "csf_bd.fcs", FIXTURES / "blood_numbered.fcs"], out=tmp_path, plots=True)
    assert (df.status == "ok").all()
    for sid in df.sample_id:
        img = mpimg.imread(tmp_path / "plots" / f"{sid}.png")
        assert img.shape[0] > 500 and img.shape[1] > 1000
        assert img[..., :3].std() > 0.05          # not a blank canvas


def test_plots_for_user_strategies(tmp_path):
    d = shared("flowjo_workspaces") / "simple_diamond_example"
    df = cytomnt.analyze([d / "test_data_diamond_01.fcs"], strategy=d / "simple_diamond_example_quad_gate.wsp",
                         out=tmp_path, plots=True)
    assert df.status[0] == "ok"
    assert (tmp_path / "plots" / "test_data_diamond_01.png").stat().st_size > 10_000


def test_no_plots_unless_asked(tmp_path):
    cytomnt.analyze([FIXTURES / "csf_bd.fcs"], out=tmp_path)
    assert not (tmp_path / "plots").exists()
