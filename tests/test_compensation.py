"""Compensation: $SPILLOVER by default, a user CSV on request, clear errors for bad matrices."""
import numpy as np
import pandas as pd
import pytest

import cytomnt
from gating import read_fcs
from gating.preprocess import CompensationError, compensation_for, parse_spill_keyword

from .conftest import FIXTURES


def spill_csv(tmp_path, scale=1.0):
    s = read_fcs(FIXTURES / "blood_bd.fcs").sample
    labels, values = parse_spill_keyword(s.metadata["spillover"], s, "t")
    off = values - np.eye(len(labels))
    df = pd.DataFrame(np.eye(len(labels)) + scale * off, index=labels, columns=labels)
    path = tmp_path / "spill.csv"
    df.to_csv(path)
    return path


def test_csv_matrix_equal_to_keyword_gives_same_numbers(tmp_path):
    a = cytomnt.analyze([FIXTURES / "blood_bd.fcs"])
    b = cytomnt.analyze([FIXTURES / "blood_bd.fcs"], spillover=spill_csv(tmp_path))
    assert b.compensation[0].endswith("spill.csv (9 detectors)") and a.compensation[0].startswith("$SPILLOVER")
    for col in ("t_cells", "car_t", "car_cd4", "car_cd8"):
        assert a[col][0] == b[col][0]


def test_recorded_matrix_changes_numbers_when_it_should(tmp_path):
    b = cytomnt.analyze([FIXTURES / "blood_bd.fcs"], spillover=spill_csv(tmp_path, scale=0.0), out=tmp_path / "o")
    assert b.status[0] == "ok"
    # the Gating-ML records the matrix actually used (identity here)
    assert b"spectrumMatrix" in (tmp_path / "o" / "gates" / "blood_bd.xml").read_bytes()


def test_bad_matrices_are_named_errors(tmp_path):
    s = read_fcs(FIXTURES / "blood_bd.fcs").sample
    bad = tmp_path / "bad.csv"
    pd.DataFrame([[1, 1], [1, 1]], index=["FITC-A", "PE-A"], columns=["FITC-A", "PE-A"]).to_csv(bad)
    with pytest.raises(CompensationError, match="singular"):
        compensation_for(s, bad, "blood_bd.fcs")
    pd.DataFrame([[1, 0], [0, 1]], index=["FITC-A", "XX-A"], columns=["FITC-A", "XX-A"]).to_csv(bad)
    with pytest.raises(CompensationError, match="XX-A.*does not have"):
        compensation_for(s, bad, "blood_bd.fcs")
    with pytest.raises(CompensationError, match="need"):
        parse_spill_keyword("3,FITC-A,PE-A,1,0", s, "blood_bd.fcs: $SPILLOVER")
    df = cytomnt.analyze([FIXTURES / "blood_bd.fcs"], spillover=tmp_path / "bad.csv")
    assert df.status[0] == "error" and "XX-A" in df.error[0]
