"""--keywords: FCS keywords as samples.csv columns, for joining results to a LIMS."""
import warnings

import flowkit as fk
import pandas as pd
import pytest

import cytomnt
from cytomnt.errors import ConfigError

from .conftest import TESTDATA, shared


def test_keyword_columns_hold_the_files_values(tmp_path):
    d = shared("activation_real") / "Activation"
    df = cytomnt.analyze([d], panel=TESTDATA / "activation_panel.yaml", keywords="$DATE,$CYT, $BTIM ,TUBE NAME,$NOPE",
                         out=tmp_path)
    table = pd.read_csv(tmp_path / "samples.csv", dtype=str, keep_default_na=False)
    assert list(table.columns[-5:]) == ["$DATE", "$CYT", "$BTIM", "TUBE NAME", "$NOPE"]
    for row in table.itertuples():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            meta = fk.Sample(row.file).get_metadata()          # FlowKit's reading of the same TEXT
        got = table.set_index("sample_id").loc[row.sample_id]
        assert (got["$DATE"], got["$CYT"], got["$BTIM"], got["TUBE NAME"]) == (
            meta["date"], meta["cyt"], meta["btim"], meta["tube name"])
        assert got["$NOPE"] == ""
    assert list(df.columns[-5:]) == list(table.columns[-5:])


def test_keywords_refused_where_they_would_leak_or_clash(tmp_path):
    d = shared("activation_real") / "Activation"
    with pytest.raises(ConfigError, match=r"\$DATE: identifying"):
        cytomnt.analyze([d], keywords="$DATE,$CYT", deidentify=True, out=tmp_path)
    with pytest.raises(ConfigError, match="already a samples.csv column"):
        cytomnt.analyze([d], keywords="events", out=tmp_path)
