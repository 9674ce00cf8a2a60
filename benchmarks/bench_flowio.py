"""A whole sample, cytomnt against FlowKit, on a tube and a strategy neither made by cytomnt: a
FlowIO-written 13-channel float32 tube with $SPILLOVER, and a FlowKit-written Gating-ML strategy
of two polygons, four rectangles and a quadrant gate (``flowio_tube.py``).

- cytomnt: ``cytomnt.analyze([tube], strategy=gates.xml, jobs=1, out=NEW)``: every default output.
- FlowKit: ``Sample(tube)``, ``apply_compensation`` from its $SPILLOVER, ``gate_sample``.

Alternating runs, medians, each run on a fresh read (and cytomnt into a new, empty folder); the
counts are compared gate by gate. With --profile, where cytomnt's time goes (cProfile, top 25).

    python benchmarks/bench_flowio.py [--events 1000000] [--runs 5] [--keep DIR] [--profile]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from flowio_tube import write_strategy, write_tube  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep")
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    import flowkit as fk
    import pandas as pd

    import cytomnt
    d = Path(a.keep or tempfile.mkdtemp(prefix="bench_flowio_"))
    d.mkdir(parents=True, exist_ok=True)
    tube, gml = d / f"flowio_{a.events}.fcs", d / "polygons.xml"
    if not tube.exists():
        write_tube(tube, a.events, 25_2025)
    write_strategy(gml)
    strategy = fk.parse_gating_xml(str(gml))

    def flowkit_run():
        s = fk.Sample(str(tube))
        s.apply_compensation(s.metadata["spillover"])
        return strategy.gate_sample(s)

    runs_dir = Path(tempfile.mkdtemp(prefix="runs_", dir=d))

    def cytomnt_run():
        return cytomnt.analyze([tube], strategy=gml, jobs=1, out=Path(tempfile.mkdtemp(dir=runs_dir)))
    cytomnt_run(), flowkit_run()                 # first use: imports, caches
    t_fk, t_cy = [], []
    for _ in range(a.runs):
        for fn, times in ((flowkit_run, t_fk), (cytomnt_run, t_cy)):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
            if fn is flowkit_run:
                fk_result = out
    fk_counts = {r.gate_name: int(r["count"]) for _, r in fk_result.report.iterrows()}
    last = sorted(runs_dir.iterdir())[-1]
    pops = pd.read_csv(last / "populations.csv")
    ours = dict(zip(pops.population, pops["count"].astype(int)))
    same = all(ours.get(k) == v for k, v in fk_counts.items())
    print(f"tube: {tube.name}, {a.events:,} events, 13 channels (FlowIO, float32, $SPILLOVER); strategy: 2 polygons, "
          f"4 rectangles, 1 quadrant gate (FlowKit-written Gating-ML)")
    print(f"counts equal gate by gate: {same} ({len(fk_counts)} gates)")
    mf, mc = statistics.median(t_fk), statistics.median(t_cy)
    print(f"FlowKit Sample + compensation + gate_sample: median {mf:.3f} s  ({', '.join(f'{x:.2f}' for x in t_fk)})")
    print(f"cytomnt.analyze(jobs=1), every default output: median {mc:.3f} s  ({', '.join(f'{x:.2f}' for x in t_cy)})")
    print(f"ratio: {mf / mc:.1f}x")
    if a.profile:
        import cProfile
        import pstats
        pr = cProfile.Profile()
        pr.enable()
        cytomnt_run()
        pr.disable()
        pstats.Stats(pr).sort_stats("cumulative").print_stats(25)
    if not same:
        raise SystemExit(f"counts differ: {[(k, v, ours.get(k)) for k, v in fk_counts.items() if ours.get(k) != v]}")


if __name__ == "__main__":
    main()
