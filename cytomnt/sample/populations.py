"""Step 6 of a sample, its two tables: populations.csv rows (counts, percentages, what each
pre-gate removes, the medians) and statistics.csv rows, built as columns and encoded straight
to Arrow (:mod:`cytomnt.sample.frames`): no pandas on a worker's path, a few hundred microseconds a sample.
"""
from __future__ import annotations

import math

import numpy as np

from gating.formats.strategy import Population

from cytomnt.sample.frames import Columns, columns_doc
from cytomnt.sample.statistics import StatisticsJob, count_columns, statistics_columns

#: populations.csv's pre-gate columns, and the PregateEffect value each holds.
PREGATE_COLUMNS = {"car_pos_t_reaching": lambda e: e.positives_in,
                   "removes_car_pos_t_pct": lambda e: e.removed_positive_pct,
                   "car_neg_t_reaching": lambda e: e.negatives_in,
                   "removes_car_neg_t_pct": lambda e: e.removed_negative_pct}


def population_columns(pops: list[Population], sample_id: str, total: int) -> Columns:
    """``sample_id, population, parent, path, count, pct_parent, pct_total`` (percent 0-100)."""
    return [("sample_id", [sample_id] * len(pops)),
            ("population", [p.name for p in pops]),
            ("parent", [p.parent for p in pops]),
            ("path", ["/".join(p.path[1:] + (p.name,)) for p in pops]),
            *count_columns(pops, total)]


def pregate_columns(pops: list[Population], effects) -> Columns:
    """What each pre-gate removes of the CAR+ and of the CAR- T cells (how many reach it, and the
    percent of those it removes); empty for other populations and for user strategies."""
    out = []
    for col, get in PREGATE_COLUMNS.items():
        by_gate = {e.gate: get(e) for e in effects}
        out.append((col, np.array([by_gate.get(p.name, math.nan) for p in pops], dtype=float)))
    return out


def sample_table_docs(sample, comp, gated, sample_id: str, job: StatisticsJob | None) -> tuple[bytes, bytes]:
    """(populations doc, statistics doc) of a gated sample; empty tables when nothing was gated."""
    pops = gated.populations
    if not pops:
        return columns_doc([]), columns_doc([])
    wide, long = statistics_columns(sample, comp, pops, gated.panel, job)
    populations = (population_columns(pops, sample_id, int(sample.event_count))
                   + pregate_columns(pops, gated.pregates) + wide)
    return columns_doc(populations), columns_doc([("sample_id", [sample_id] * len(long[0][1]))] + long)
