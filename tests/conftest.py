"""Shared paths and fixtures. Tests on ../shared/data skip with a reason when it is absent."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

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
