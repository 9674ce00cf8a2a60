"""A command's start (cytomnt.startup): FlowKit imported with its plotting modules deferred works
as FlowKit does, loads them on first use, leaves everybody else the real modules, and falls back
to the ordinary import when a FlowKit would not import with placeholders. Each case runs in a
fresh interpreter (the test process has FlowKit imported already)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from tests.conftest import FIXTURES, ROOT


def _python(code: str, *, defer: bool = True, path: str | None = None) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (FlowKit's plotting deferred first unless ``defer`` is
    False), ``path`` ahead of everything on its import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (path, str(ROOT), env.get("PYTHONPATH")) if p)
    head = "from cytomnt.startup import defer_flowkit_plotting; defer_flowkit_plotting()\n" if defer else ""
    return subprocess.run([sys.executable, "-c", head + textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_flowkit_imported_without_its_plotting_modules_still_plots_and_transforms():
    fcs = FIXTURES / "csf_bd.fcs"
    r = _python(f"""
        import json, sys
        import flowkit as fk
        loaded = {{m: m in sys.modules for m in ("bokeh", "contourpy", "scipy.stats", "scipy.interpolate")}}
        s = fk.Sample({str(fcs)!r})
        x, y = s.pnn_labels[0], s.pnn_labels[2]
        hist = s.plot_histogram(x, source="raw")          # bokeh
        contour = s.plot_contour(x, y, source="raw")      # scipy.stats' gaussian_kde, contourpy, bokeh
        biex = fk.transforms.WSPBiexTransform(max_value=262144, positive=4.42, width=-10, negative=0)  # scipy.interpolate
        values = biex.apply(s.get_events(source="raw")[:50, :3]).ravel().tolist()
        import bokeh, scipy.stats
        print(json.dumps(dict(loaded=loaded, hist=type(hist).__module__, contour=type(contour).__module__,
                              bokeh=bokeh.__version__, norm=float(scipy.stats.norm.cdf(0.0)), biex=values)))
    """)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["loaded"] == {"bokeh": False, "contourpy": False, "scipy.stats": False, "scipy.interpolate": False}
    assert out["hist"].startswith("bokeh.") and out["contour"].startswith("bokeh.")
    assert out["bokeh"] and out["norm"] == 0.5
    import flowkit as fk                            # this process: the ordinary import
    s = fk.Sample(str(fcs))
    biex = fk.transforms.WSPBiexTransform(max_value=262144, positive=4.42, width=-10, negative=0)
    expected = biex.apply(s.get_events(source="raw")[:50, :3]).ravel()
    assert np.array_equal(np.array(out["biex"]), expected)


def test_a_gating_ml_analysis_from_the_command_line_never_loads_flowkits_plotting(tmp_path):
    import flowkit as fk
    from gating.io.fcs import read_fcs
    fcs = FIXTURES / "csf_bd.fcs"
    sample = read_fcs(fcs).sample
    fsc, ssc = sample.pnn_labels[0], sample.pnn_labels[2]
    strategy = fk.GatingStrategy()
    strategy.add_gate(fk.gates.RectangleGate("cells", [fk.Dimension(fsc, range_min=1000.0),
                                                       fk.Dimension(ssc, range_min=100.0)]), ("root",))
    gml = tmp_path / "gates.xml"
    with open(gml, "wb") as fh:
        fk.export_gatingml(strategy, fh)
    out = tmp_path / "out"
    r = _python(f"""
        import sys
        from cytomnt.cli import main
        code = main(["analyze", {str(fcs)!r}, "--strategy", {str(gml)!r}, "--out", {str(out)!r}, "--jobs", "1",
                     "--no-report"])         # the report's risk tables use scipy.stats
        print(code, sorted(m for m in ("bokeh", "contourpy", "scipy.stats", "scipy.interpolate") if m in sys.modules))
    """, defer=False)                               # the command line defers them itself
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(maxsplit=1) == ["0", "[]\n"], r.stdout
    assert (out / "samples.csv").is_file()


def test_a_flowkit_that_needs_a_plotting_class_while_importing_is_imported_the_ordinary_way(tmp_path):
    pkg = tmp_path / "flowkit"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from bokeh.models import Title

        class Heading(Title):          # a class made from a bokeh class while importing
            pass

        from . import part
        OK = Heading.__mro__[1] is Title
    """))
    (pkg / "part.py").write_text("VALUE = 7\n")
    r = _python("""
        import sys, flowkit, bokeh.models
        print(flowkit.OK, flowkit.part.VALUE, type(sys.modules["bokeh"]).__name__, flowkit.Heading.__mro__[1] is bokeh.models.Title)
    """, path=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "7", "module", "True"]


def test_a_flowkit_that_cannot_be_imported_says_why_as_before(tmp_path):
    pkg = tmp_path / "flowkit"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('flowkit is broken here')\n")
    r = _python("""
        try:
            import flowkit
        except ImportError as exc:
            print("ImportError:", exc)
    """, path=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ImportError: flowkit is broken here"
