"""Files under OUT always match the tables: no stale plot, Gating-ML or report after a re-run
with another configuration; a template edited in the same process is read again."""
import base64
import re
import shutil

import pandas as pd
import pytest

import cytomnt
from cytomnt.cli import main
from cytomnt.inputs.strategies import load_strategy

from .conftest import FIXTURES


def _report_plots(out) -> list[bytes]:
    html = (out / "report.html").read_text()
    return [base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]


def test_no_stale_plot_after_a_rerun_with_another_panel(tmp_path, capsys):
    out = tmp_path / "out"
    tube = FIXTURES / "csf_bd.fcs"
    assert main(["analyze", str(tube), "--out", str(out), "--plots"]) == 0
    plot = out / "plots" / "csf_bd.png"
    first_png = plot.read_bytes()
    assert first_png in _report_plots(out)
    # another panel, no --plots: T cells taken from the CD38 decoy channel give other numbers
    panel = tmp_path / "panel.yaml"
    panel.write_text("roles:\n  t_cell: [CD38]\n")
    assert main(["analyze", str(tube), "--out", str(out), "--panel", str(panel)]) in (0, 1)
    df = pd.read_csv(out / "samples.csv")
    assert not plot.exists(), "the first run's plot shows numbers the table no longer holds"
    assert first_png not in _report_plots(out)
    # the first configuration again: reused from the store, and its plot and report come back
    assert main(["analyze", str(tube), "--out", str(out), "--plots"]) == 0
    assert plot.read_bytes() == first_png and first_png in _report_plots(out)
    again = pd.read_csv(out / "samples.csv")
    assert again.t_cells[0] != df.t_cells[0] or again.car_t[0] != df.car_t[0]
    assert "0 analysed, 1 reused from the store, 0 failed" in capsys.readouterr().err


def test_gatingml_of_a_failed_rerun_is_removed(tmp_path):
    out = tmp_path / "out"
    tube = tmp_path / "tube.fcs"
    shutil.copy(FIXTURES / "csf_bd.fcs", tube)
    cytomnt.analyze([tube], out=out)
    assert (out / "gates" / "tube.xml").exists()
    panel = tmp_path / "p.yaml"
    panel.write_text("roles:\n  car: [NotAMarker]\n")
    df = cytomnt.analyze([tube], out=out, panel=panel)
    assert df.status[0] == "error" and "NotAMarker" in df.error[0]
    assert not (out / "gates" / "tube.xml").exists()


def test_edited_template_is_read_again_in_the_same_process(tmp_path):
    from importlib import resources
    text = resources.files("cytomnt").joinpath("data/car_t_template.yaml").read_text()
    p = tmp_path / "t.yaml"
    p.write_text(text)
    first = load_strategy(str(p))
    assert load_strategy(str(p)) is first                     # unchanged content: cached
    p.write_text(text.replace("name: car-t", "name: car-t-edited"))
    second = load_strategy(str(p))
    assert second is not first and second.name != first.name
    a = cytomnt.analyze([FIXTURES / "csf_bd.fcs"], strategy=str(p), out=tmp_path / "o")
    p.write_text(text.replace("method: valley, args: {keep: above}", "method: tail, args: {tail_sds: 9}", 1)
                 if "method: valley, args: {keep: above}" in text else text + "\n# edited\n")
    b = cytomnt.analyze([FIXTURES / "csf_bd.fcs"], strategy=str(p), out=tmp_path / "o")
    assert a.status[0] == b.status[0] == "ok"
    from cytomnt.run.store import ResultStore
    st = ResultStore(tmp_path / "o" / "results.sqlite")
    assert len(st.keys()) == 2                                 # the edited template is a new configuration
    st.close()


def test_csv_cells_are_what_pandas_writes():
    """samples/populations/statistics.csv hold pandas' own ``to_csv(float_format="%.6g")`` bytes:
    floats (NaN, -0.0, inf, float32), integers, nullable integers, text with commas and quotes,
    mixed text/number columns, booleans, nullable floats, a one-row wide table, an empty one, and
    a long one whose repeated values are formatted once (0.0 and -0.0 kept apart)."""
    import numpy as np
    import pandas as pd

    from cytomnt.run.outputs import csv_bytes
    df = pd.DataFrame({"f": [1.0, np.nan, -0.0, np.inf, 1234567.891, 1e-9],
                       "i": np.arange(6, dtype=np.int64),
                       "I": pd.array([1, None, 3, 4, None, 6], dtype="Int64"),
                       "o": ["a", None, 2.5, np.nan, "x,y", 'q"uote'],
                       "b": [True, False, True, False, True, False],
                       "f32": np.array([1.5, 2.25, np.nan, 3, 4, 5], dtype=np.float32)})
    df["F"] = pd.array([1.5, None, 3, 4, None, -0.0], dtype="Float64")
    df["s"] = ["a", None, "b", np.nan, "a", "x,y"]
    wide = pd.DataFrame({f"c{i}": [v] for i, v in enumerate([0.1, "t", 3, None, np.nan, True] * 10)})
    long = pd.concat([df.assign(f=df.f * k) for k in (1.0, -1.0, 0.0)] * 10, ignore_index=True)   # -0.0 beside 0.0
    assert len(long) >= 64                            # each distinct value formatted once
    for table in (df, wide, df.iloc[:0], long):
        assert csv_bytes(table) == table.to_csv(index=False, float_format="%.6g", lineterminator="\n").encode()


def test_parquet_text_columns_are_strings_and_empty_cells_null():
    """Text columns come back as text (empty cells as None); a column mixing text with numbers comes
    back as the text of each value; nullable integers keep their type. The bytes are those of
    converting every text column value by value (the rule before text-only columns were passed
    to Arrow as they are)."""
    import io
    import math

    import numpy as np

    from cytomnt.run.outputs import parquet_bytes
    df = pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "marker": ["CD4", None, np.nan, "CD8"],
                       "mixed": [1, "x", None, 2.5], "empty": [None] * 4, "nan_text": pd.Series([np.nan] * 4, dtype=object),
                       "count": pd.array([1, None, 3, 4], dtype="Int64"), "median": [1.5, np.nan, -0.0, 2.0]})
    back = pd.read_parquet(io.BytesIO(parquet_bytes(df)))
    assert back["marker"].tolist() == ["CD4", None, None, "CD8"]
    assert back["mixed"].tolist() == ["1", "x", None, "2.5"]
    assert str(back["count"].dtype) == "Int64" and back["count"].isna().tolist() == [False, True, False, False]
    assert back["median"].equals(df["median"])
    every = {c: [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in df[c].tolist()]
             for c in df.columns if df[c].dtype == object}
    buf = io.BytesIO()
    df.assign(**every).to_parquet(buf, index=False)
    assert parquet_bytes(df) == buf.getvalue()


def test_summary_explains_each_flag_shown_and_shows_no_empty_ones(tmp_path):
    """A samples table read back from CSV (empty flags are NaN there): no 'nan' flag, and one line
    of meaning per flag code the table shows, none for a flag it leaves out (NO_VALLEY)."""
    from cytomnt.run.summary import summary_text
    cytomnt.analyze([FIXTURES / "csf_bd.fcs", FIXTURES / "blood_beads.fcs"], out=tmp_path)
    df = pd.read_csv(tmp_path / "samples.csv")
    df.loc[0, "qc_flags"] = float("nan")
    df.loc[1, "qc_flags"] = "QC_SATURATED:12;NO_VALLEY:cd4"
    text = summary_text(df, "RUO")
    assert "nan" not in text.lower().replace("(", " ").split()
    assert "\nQC_SATURATED: acquisition QC removed saturated events" in text and "NO_VALLEY" not in text


def test_atomic_write_makes_missing_folders_replaces_whole_and_leaves_no_temporary(tmp_path):
    from gating.io.files import atomic_write
    deep = tmp_path / "a" / "b" / "gates" / "s1.xml"
    assert atomic_write(deep, "<x/>") == deep and deep.read_text() == "<x/>"      # folders made on demand
    atomic_write(deep, b"<y/>")                                                  # replaced, bytes as given
    assert deep.read_bytes() == b"<y/>"
    assert sorted(p.name for p in deep.parent.iterdir()) == ["s1.xml"]           # no .tmp left behind
    (tmp_path / "file").write_text("")
    with pytest.raises((FileExistsError, NotADirectoryError)):                    # a file where a folder is needed
        atomic_write(tmp_path / "file" / "x.csv", "a")
