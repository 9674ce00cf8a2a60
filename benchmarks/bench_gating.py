"""Fast evaluator vs FlowKit's GatingStrategy.gate_sample, side by side in one run (not a test).

A generated 1M-event, 13-channel blood tube and its CAR-T hierarchy (11 gates, found by the
auto strategy). For each: identical per-gate counts and memberships, time (median of 5 runs),
peak memory added during the call (tracemalloc; numpy reports its buffers to it).

    python benchmarks/bench_gating.py [--events 1000000] [--runs 5]

The last line printed is the speed ratio.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

from gating import read_fcs
from gating.evaluator.evaluate import Evaluator
from gating.preprocess import compensation_for

from cytomnt.inputs.panel import Panel, channels_of
from cytomnt.sample.autogate import auto_gate
from cytomnt.synth import TubeSpec, write_tube


def measure(fn, runs: int):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        del out
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    out = fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return statistics.median(times), peak, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "blood_1m.fcs"
        write_tube(path, TubeSpec(events=a.events), 2026)
        sample = read_fcs(path).sample
    rp = Panel.default().resolve(channels_of(sample))
    strategy = auto_gate(sample, rp, compensation_for(sample)).strategy
    ev = Evaluator(strategy)

    fk_time, fk_mem, fk_res = measure(lambda: strategy.gate_sample(sample), a.runs)
    our_time, our_mem, ours = measure(lambda: ev.evaluate(sample), a.runs)

    rows = []
    identical = True
    for r in fk_res.report.itertuples():
        m_fk = fk_res.get_gate_membership(r.gate_name, gate_path=tuple(r.gate_path))
        m_us = ours.membership[(r.gate_name, tuple(r.gate_path))]
        same = bool(np.array_equal(m_fk, m_us))
        identical &= same
        rows.append((r.gate_name, int(m_fk.sum()), int(m_us.sum()), same))
    print(f"{sample.event_count} events, {len(rows)} gates")
    print(f"{'gate':<12} {'FlowKit':>9} {'cytomnt':>9}  identical")
    for name, a_, b_, same in rows:
        print(f"{name:<12} {a_:>9} {b_:>9}  {same}")
    print(f"{'':<12} {'FlowKit':>12} {'cytomnt':>12} {'ratio':>8}")
    print(f"{'time (s)':<12} {fk_time:>12.3f} {our_time:>12.3f} {fk_time / our_time:>7.1f}x   (median of {a.runs})")
    print(f"{'peak MiB':<12} {fk_mem / 2**20:>12.1f} {our_mem / 2**20:>12.1f} {our_mem / fk_mem:>7.2f}    (added during the call)")
    print(f"memberships identical: {identical}")
    print(f"speed ratio (FlowKit / cytomnt): {fk_time / our_time:.1f}x")


if __name__ == "__main__":
    main()
