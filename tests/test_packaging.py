"""What the wheel holds: every data file the code reads must be declared as package data
(the tests import from the source tree, so a missing declaration would otherwise go unseen)."""
import fnmatch

try:
    import tomllib
except ImportError:                     # Python 3.10
    import pytest
    tomllib = pytest.importorskip("tomli")

from .conftest import ROOT


def test_every_data_file_is_package_data():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = conf["tool"]["setuptools"]["package-data"]["cytomnt"]
    files = [p.relative_to(ROOT / "cytomnt").as_posix() for p in (ROOT / "cytomnt" / "data").iterdir() if p.is_file()]
    assert files
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert missing == [], f"not in the wheel: {missing}"
