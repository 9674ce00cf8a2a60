"""Every instrument's files read right, or refused with the reason: real files from many vendors
against an independent reader's numbers, and the layouts that fooled readers before."""
import shutil

import numpy as np
import pandas as pd
import pytest

from gating import FcsReadError, find_fcs_files, read_fcs
from gating.preprocess import compensation_for

from .conftest import FIXTURES, shared


def _used_dataset(notes) -> int:
    used = [n for n in notes if n.startswith("MULTI_DATASET")]
    return int(used[0].split("used_")[1]) if used else 1


@pytest.mark.slow
def test_vendor_files_give_the_independent_readers_numbers():
    d = shared("vendor_fcs")
    truth = pd.read_csv(d / "truth.csv")
    chans = pd.read_csv(d / "truth_channels.csv")
    checked = 0
    for f in sorted((d / "files").iterdir()):
        loaded = read_fcs(f)
        ds = _used_dataset(loaded.notes)
        t = truth[(truth.file == f.name) & (truth.dataset == ds)].iloc[0]
        ev = loaded.sample.get_events(source="raw")
        assert loaded.sample.event_count == t.n_events, f.name
        step = float(t.timestep) if pd.notna(t.timestep) else 1.0
        for c in chans[(chans.file == f.name) & (chans.dataset == ds)].itertuples():
            exp = np.array([c.scaled_min, c.scaled_max, c.scaled_mean]) * (step if str(c.name).lower() == "time" else 1)
            v = ev[:, c.index - 1]
            got = np.array([v.min(), v.max(), v.mean()])
            assert np.allclose(got, exp, rtol=1e-4, atol=1e-6), (f.name, c.name, got, exp)
        checked += 1
    assert checked == 12


def test_numbered_spillover_detectors_and_any_extension(tmp_path):
    d = shared("vendor_fcs") / "files"
    gallios = read_fcs(d / "cytoflow__Beckman Coulter - Gallios.LMD")
    assert "MULTI_DATASET:2:used_2" in gallios.notes
    assert compensation_for(gallios.sample).matrix is not None           # detectors '2,3,...' by number
    shutil.copy(d / "flowCore__0877408774.B08", tmp_path / "plate.B08")
    shutil.copy(FIXTURES / "csf_bd.fcs", tmp_path / "tube.001")
    (tmp_path / "notes.txt").write_text("not cytometry")
    found = {p.name for p in find_fcs_files([tmp_path])}
    assert found == {"plate.B08", "tube.001"}


def _fcs_bytes():
    return (FIXTURES / "csf_bd.fcs").read_bytes()


def _set_text(data: bytes, key: str, value: str) -> bytes:
    """Replace a keyword's value keeping the TEXT's length (padded with spaces)."""
    delim = data[int(data[10:18]):int(data[10:18]) + 1]
    k = b"$" + key.encode() + delim
    i = data.index(k) + len(k)
    j = data.index(delim, i)
    old = data[i:j]
    new = value.encode().ljust(len(old))
    assert len(new) == len(old)
    return data[:i] + new + data[j:]


def test_text_offsets_off_by_46_bytes_are_not_read(tmp_path):
    """A CyAn file's TEXT data offsets 46 bytes off, its HEADER right: the HEADER is taken, by
    evidence, and the numbers are the original's (before: shifted garbage, flagged only)."""
    data = _fcs_bytes()
    ds, de = int(data[26:34]), int(data[34:42])
    bad = _set_text(_set_text(data, "BEGINDATA", str(ds + 46)), "ENDDATA", str(de + 46))
    (tmp_path / "cyan.fcs").write_bytes(bad)
    got = read_fcs(tmp_path / "cyan.fcs")
    ref = read_fcs(FIXTURES / "csf_bd.fcs").sample.get_events(source="raw")
    assert np.array_equal(got.sample.get_events(source="raw"), ref)
    assert "FCS_OFFSETS_FROM_HEADER" in got.notes


def test_float_data_labelled_integer_is_refused(tmp_path):
    data = _set_text(_fcs_bytes(), "DATATYPE", "I")
    (tmp_path / "f2i.fcs").write_bytes(data)
    with pytest.raises(FcsReadError, match=r"f2i.fcs: parameter \d+ \(.*\): \d+% of its values exceed \$P\d+R"):
        read_fcs(tmp_path / "f2i.fcs")
