"""A sample's tables as Arrow bytes (cytomnt.sample.frames, cytomnt.sample.populations): built without pandas
they are the tables the pandas way built, bit for bit; a result pickled to the parent keeps them
packed until used; stacking packed, decoded and old-JSON tables gives pandas' concat."""
import json
import math
import pickle

import numpy as np
import pandas as pd

from gating import read_fcs
from gating.preprocess import compensation_for

from cytomnt.inputs.strategies import load_strategy
from cytomnt.run.config import make_config
from cytomnt.sample.frames import columns_doc, frame_doc, frame_from_doc, stacked
from cytomnt.sample.gate import gate
from cytomnt.sample.populations import PREGATE_COLUMNS, sample_table_docs
from cytomnt.sample.results import SampleResult, concat_tables, make_ids_unique
from cytomnt.sample.statistics import StatisticsJob, population_statistics

from .conftest import FIXTURES, assert_same_table


def _pandas_tables(sample, comp, gated, sid):
    """populations.csv and statistics.csv rows of one sample built with pandas, row by row."""
    n = int(sample.event_count)
    pops = pd.DataFrame([{"sample_id": sid, "population": p.name, "parent": p.parent,
                          "path": "/".join(p.path[1:] + (p.name,)), "count": p.count,
                          "pct_parent": 100.0 * p.count / p.parent_count if p.parent_count else np.nan,
                          "pct_total": 100.0 * p.count / n} for p in gated.populations])
    for col, get in PREGATE_COLUMNS.items():
        pops[col] = pops.population.map({e.gate: get(e) for e in gated.pregates}).astype(float)
    wide, long = population_statistics(sample, comp, gated.populations, gated.panel)
    long.insert(0, "sample_id", sid)
    return pd.concat([pops, wide], axis=1), long


def test_sample_tables_without_pandas_are_the_pandas_tables():
    for name in ("blood_bd.fcs", "csf_bd.fcs"):
        s = read_fcs(FIXTURES / name).sample
        comp = compensation_for(s)
        gated = gate(s, comp, load_strategy("auto"), make_config().gating, name, "x")
        assert gated.pregates and any(not math.isnan(e.removed_positive_pct) for e in gated.pregates)
        pops_doc, stats_doc = sample_table_docs(s, comp, gated, "x", StatisticsJob(s, comp))
        want_pops, want_stats = _pandas_tables(s, comp, gated, "x")
        assert_same_table(frame_from_doc(pops_doc), want_pops)
        assert_same_table(frame_from_doc(stats_doc), want_stats)
        assert pops_doc == frame_doc(want_pops) and stats_doc == frame_doc(want_stats)


def test_nothing_gated_gives_empty_tables():
    empty = columns_doc([])
    assert frame_from_doc(empty).shape == (0, 0)


def test_a_pickled_result_keeps_its_tables_packed_until_used():
    pops = pd.DataFrame({"sample_id": ["a", "a"], "population": ["p", "q"], "count": [3, 0],
                         "median": [-0.0, np.nan]})
    stats = pd.DataFrame({"sample_id": ["a"], "mean": [1 / 3]})
    res = SampleResult.from_docs({"sample_id": "a", "status": "ok"}, frame_doc(pops), frame_doc(stats), gatingml=b"<g/>")
    back = pickle.loads(pickle.dumps(res))
    assert "populations" not in back.__dict__ and back.frame_doc("populations") == frame_doc(pops)
    assert isinstance(back.held("statistics"), bytes) and "populations" in dir(back)
    assert_same_table(back.populations, pops)
    assert_same_table(back.statistics, stats)
    assert back.gatingml == b"<g/>" and back.plot_png is None and back.flowjo is None
    assert isinstance(back.held("populations"), pd.DataFrame)      # decoded once, then the frame


def test_a_table_assigned_or_changed_is_the_one_kept():
    """Replacing a packed table, or changing a decoded one (index, dtypes), is what a pickle
    and the store's doc then hold: never the stale bytes."""
    pops = pd.DataFrame({"sample_id": ["a"], "population": ["p"], "count": [3]})
    res = pickle.loads(pickle.dumps(SampleResult.from_docs({"sample_id": "a"}, frame_doc(pops), frame_doc(pops))))
    new = pd.DataFrame({"sample_id": ["a", "a"], "population": ["p", "q"], "count": [5, 6]})
    res.populations = new                                    # assigned before it was ever read
    assert res.frame_doc("populations") == frame_doc(new)
    back = pickle.loads(pickle.dumps(res))
    assert_same_table(back.populations, new)
    res.statistics = res.statistics.set_index("population").astype({"count": "Int64"})
    res.statistics["sample_id"] = res.statistics["sample_id"].astype("category")
    again = pickle.loads(pickle.dumps(res))
    pd.testing.assert_frame_equal(again.statistics, res.statistics)      # index and dtypes too


def test_duplicate_ids_reach_packed_tables():
    results = [SampleResult.from_docs({"sample_id": "a", "status": "ok", "sha256": h, "file": f"{h}.fcs",
                                       "qc_flags": ""},
                                      frame_doc(pd.DataFrame({"sample_id": ["a"], "count": [1]})),
                                      frame_doc(pd.DataFrame()))
               for h in ("1111aaaa", "2222bbbb")]
    make_ids_unique(results)
    table = concat_tables(results, "populations", ["sample_id", "count"])
    assert table["sample_id"].tolist() == ["a_1111aaaa", "a_2222bbbb"]


def test_stacking_packed_decoded_and_json_tables_is_pandas_concat():
    a = pd.DataFrame({"sample_id": ["b", "b"], "population": ["x", "y"], "count": [1, 2],
                      "median_cd4": [0.5, np.nan]})
    b = pd.DataFrame({"sample_id": ["a"], "population": ["x"], "count": [7], "median_cd8": [2.0]})
    old = json.dumps({"columns": ["sample_id", "population", "count"], "data": [["c", "x", 4]]})
    got = stacked([frame_doc(a), b, old, frame_doc(pd.DataFrame())], ["sample_id"])
    want = pd.concat([a, b, frame_from_doc(old)], ignore_index=True)
    assert_same_table(got, want)
    assert list(stacked([], ["sample_id", "count"]).columns) == ["sample_id", "count"]
