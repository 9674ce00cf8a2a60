"""Gate plots: a PNG per sample for every kind of strategy."""
import matplotlib.image as mpimg
import numpy as np

import cytomnt

from .conftest import FIXTURES, TESTDATA, shared


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


def test_logicle_axis_carries_decades_in_data_units():
    import flowkit as fk
    from gating.plot import axis_ticks
    xf = fk.transforms.LogicleTransform(262144, 0.5, 4.5, 0)
    pos, labels, minor = axis_ticks(xf, -0.05, 1.0)
    assert "0" in labels and "10³" in labels and "10⁵" in labels
    assert all(b - a >= 0.09 * 1.05 for a, b in zip(pos, pos[1:]))       # never crowded
    raw = xf.inverse(np.array(pos).reshape(-1, 1)).ravel()
    assert np.allclose(raw[labels.index("10³")], 1e3, rtol=1e-9)          # a tick sits at its value
    assert len(minor) > 10
    lin_pos, lin_labels, _ = axis_ticks(None, 0, 262144)
    assert "100K" in lin_labels or "120K" in lin_labels


def test_axis_range_ignores_artifacts_but_shows_the_gate():
    from gating.plot import robust_range
    rng = np.random.default_rng(11)
    fsc = np.concatenate([rng.normal(60_000, 15_000, 9_950), np.full(50, -4_685_690.0)])   # 0.5% artifacts
    lo, hi = robust_range(fsc)
    assert lo > -100_000 and hi < 150_000
    lo2, hi2 = robust_range(fsc, bounds=[180_000])                  # a gate beyond the bulk stays visible
    assert hi2 >= 180_000 and lo2 > -100_000
    assert robust_range(fsc, bounds=[-4_685_690.0])[0] > -400_000    # ... but not one at an artifact


def test_axis_names_the_marker_from_the_panel_table():
    from types import SimpleNamespace

    from gating.plot import axis_label
    sample = SimpleNamespace(pnn_labels=["Alexa Fluor 700-A"], pns_labels=[""])
    dim = SimpleNamespace(id="Alexa Fluor 700-A")
    assert axis_label(sample, dim) == "Alexa Fluor 700-A"
    assert axis_label(sample, dim, {"Alexa Fluor 700-A": "CD4"}) == "CD4 · Alexa Fluor 700-A"


def test_every_label_inside_its_axes_with_empty_gates(tmp_path, monkeypatch):
    """A real file whose CAR gate is empty: each gate's label inside its panel, nothing outside."""
    import matplotlib.pyplot as plt
    d = shared("activation_real")
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    df = cytomnt.analyze([d / "Activation" / "Activation_33.fcs"], panel=TESTDATA / "activation_panel.yaml",
                         out=tmp_path, plots=True)
    assert df.status[0] == "ok"
    fig = next(f for f in figures if f is not None and f.axes)
    texts = [(ax, t) for ax in fig.axes for t in ax.texts]
    assert any("0 (0.0%)" in t.get_text() for _, t in texts)             # an empty gate, labelled
    fig.canvas.draw()
    for ax, t in texts:
        box = t.get_window_extent().transformed(ax.transAxes.inverted())
        assert box.x0 >= -0.01 and box.y0 >= -0.01 and box.x1 <= 1.01 and box.y1 <= 1.01, t.get_text()
