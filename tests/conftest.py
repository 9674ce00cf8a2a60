"""Shared paths and fixtures. Tests on ../shared/data skip with a reason when it is absent."""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
TESTDATA = Path(__file__).resolve().parent / "data"
SHARED = (ROOT / ".." / "shared" / "data").resolve()

warnings.filterwarnings("ignore", module="flowkit")
warnings.filterwarnings("ignore", module="flowio")


def shared(sub: str) -> Path:
    """A folder of ../shared/data, or skip the test with the reason."""
    p = SHARED / sub
    if not p.exists():
        pytest.skip(f"{p} is absent (reference data lives beside the repository in ../shared/data)")
    return p


def assert_same_table(a, b) -> None:
    """Equal column names, dtypes and values; floats bit for bit (NaN and -0.0 included)."""
    assert list(a.columns) == list(b.columns) and list(a.dtypes) == list(b.dtypes)
    for c in a.columns:
        if a[c].dtype.kind == "f":
            assert a[c].to_numpy().tobytes() == b[c].to_numpy().tobytes(), c
        else:
            assert a[c].tolist() == b[c].tolist(), c


def truth_of(fcs: Path) -> dict:
    return json.loads(Path(str(fcs)[:-4] + ".truth.json").read_text())


@pytest.fixture(scope="session")
def fixture_files() -> dict[str, Path]:
    files = {p.name: p for p in FIXTURES.glob("*.fcs")}
    assert files, f"no fixtures in {FIXTURES}; regenerate with `cytomnt generate fixtures --fixtures`"
    return files


@dataclass(frozen=True)
class DemoRun:
    """`cytomnt demo` as a user runs it: its folder, what it printed, its exit code."""

    out: Path
    printed: str
    code: int


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    """`cytomnt demo` run once per session (the end-to-end and report tests read it; a test that
    changes anything works on a copy)."""
    from cytomnt.cli import main
    out = tmp_path_factory.mktemp("demo") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["demo", "--out", str(out)])
    return DemoRun(out, printed.getvalue(), code)


def write_float64_fcs(path, events: np.ndarray, names: list[str], keywords: dict | None = None):
    """A minimal FCS 3.1 file of float64 ($DATATYPE D) list-mode events (FlowIO writes float32 only)."""
    return write_list_fcs(path, events, names, "<f8", keywords)


def write_list_fcs(path, events: np.ndarray, names: list[str], dtype: str, keywords: dict | None = None):
    """A minimal FCS 3.1 list-mode file of ``events`` stored as numpy ``dtype``: '<f8'/'>f8'
    ($DATATYPE D), '<f4'/'>f4' (F), or unsigned integers '<u2', '>u4', 'u1' ... (I, $PnB the
    width, $PnR 2^width unless ``keywords`` say otherwise)."""
    dt = np.dtype(dtype)
    n, par = events.shape
    data = np.ascontiguousarray(events, dtype=dt).tobytes()
    kind = {"f": "F" if dt.itemsize == 4 else "D", "u": "I"}[dt.kind]
    kw = {"$BYTEORD": "4,3,2,1" if dt.byteorder == ">" else "1,2,3,4", "$DATATYPE": kind, "$MODE": "L",
          "$NEXTDATA": "0", "$PAR": str(par), "$TOT": str(n)}
    for i, name in enumerate(names, 1):
        kw.update({f"$P{i}N": name, f"$P{i}B": str(8 * dt.itemsize), f"$P{i}E": "0,0",
                   f"$P{i}R": str(2 ** (8 * dt.itemsize)) if kind == "I" else "262144"})
    kw.update(keywords or {})

    def text(begin):
        offsets = {"$BEGINANALYSIS": "0", "$ENDANALYSIS": "0", "$BEGINSTEXT": "0", "$ENDSTEXT": "0",
                   "$BEGINDATA": f"{begin:020d}", "$ENDDATA": f"{begin + len(data) - 1:020d}"}
        return ("|" + "".join(f"{k}|{v}|" for k, v in {**offsets, **kw}.items())).encode()
    begin = 58 + len(text(0))
    body = text(begin)
    header = b"FCS3.1    " + b"".join(f"{v:>8}".encode()
                                        for v in (58, 58 + len(body) - 1, begin, begin + len(data) - 1, 0, 0))
    Path(path).write_bytes(header + body + data)
    return path
