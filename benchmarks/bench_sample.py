"""Where a whole sample's time goes, cytomnt and FlowKit side by side on the same file and gates
(not a test: run by hand).

A generated tube (default 1M events) and its Gating-ML (the auto strategy's gates, exported).
FlowKit: ``Sample`` + compensation + ``GatingStrategy.gate_sample``. cytomnt: each stage of
``cytomnt.analyze`` timed on its own (read, compensate, gate, statistics, write), then the whole
``cytomnt.analyze(..., jobs=1, out=...)`` with every default output. Counts must be identical.

    python benchmarks/bench_sample.py [--events 1000000] [--runs 3]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path


def best(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    import flowkit as fk

    import cytomnt
    from cytomnt.config import make_config
    from cytomnt.gate import gate
    from cytomnt.outputs import write_outputs
    from cytomnt.pipeline import analyze_sample
    from cytomnt.statistics import population_statistics
    from cytomnt.strategies import load_strategy
    from cytomnt.synth import TubeSpec, write_tube
    from gating import read_fcs
    from gating.preprocess import compensated_events, compensation_for
    from gating.strategy import gate_sample, read_gatingml, write_gatingml

    d = Path(tempfile.mkdtemp(prefix="bench_sample_"))
    tube = d / "tube.fcs"
    write_tube(tube, TubeSpec(events=a.events, car_frac_of_t=0.3), 4242)
    cfg = make_config()
    s = read_fcs(tube).sample
    auto = gate(s, compensation_for(s), load_strategy("auto"), cfg, tube.name, "tube")
    gml = write_gatingml(auto.strategy, d / "gates.xml")
    strategy = read_gatingml(gml)
    gcfg = make_config(strategy=str(gml))

    def flowkit_all():
        smp = fk.Sample(str(tube))
        res = strategy.gate_sample(smp)
        return {(r.gate_name, tuple(r.gate_path)): int(r.count) for r in res.report.itertuples()}

    rows = []
    t_fk, fk_counts = best(flowkit_all, a.runs)
    t_read, loaded = best(lambda: read_fcs(tube), a.runs)
    sample = loaded.sample
    comp = compensation_for(sample)
    t_comp, _ = best(lambda: compensated_events(sample, comp), a.runs)
    t_gate, pops = best(lambda: gate_sample(strategy, sample), a.runs)
    t_stats, _ = best(lambda: population_statistics(sample, comp, pops, auto.panel), a.runs)
    result = analyze_sample(tube, gcfg)
    t_write, _ = best(lambda: write_outputs([result], d / "w", gcfg), a.runs)
    t_all, df = best(lambda: cytomnt.analyze([tube], config=gcfg, jobs=1, out=d / f"o{time.perf_counter_ns()}"),
                     a.runs)
    ours = {(p.name, p.path): p.count for p in pops}
    same = all(ours.get(k) == v for k, v in fk_counts.items() if k in ours) and len(ours) == len(fk_counts)
    rows = [("read (FCS -> events)", t_read), ("compensate", t_comp), ("gate (FlowKit-exact)", t_gate),
            ("statistics", t_stats), ("write outputs", t_write)]
    print(f"{a.events} events, {len(pops)} gates; median of {a.runs} runs")
    print(f"{'stage':<26} {'cytomnt s':>10}")
    for name, t in rows:
        print(f"{name:<26} {t:>10.3f}")
    print(f"{'cytomnt.analyze (all)':<26} {t_all:>10.3f}")
    print(f"{'FlowKit Sample+comp+gate':<26} {t_fk:>10.3f}")
    print(f"counts identical: {same}")
    print(f"speed ratio (FlowKit / cytomnt.analyze): {t_fk / t_all:.1f}x")


if __name__ == "__main__":
    main()
