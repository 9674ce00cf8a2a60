"""Where a whole sample's time and memory go, cytomnt and FlowKit side by side on the same file
and gates (not a test: run by hand).

A generated tube (default 1M events) and its Gating-ML (the auto strategy's gates, exported).
Each stage is timed on a freshly read sample (no cache carried between runs), median of
``--runs``; peak memory per stage is measured in a separate pass with ``tracemalloc`` (numpy
reports its arrays to it), so it does not slow the timed runs.

- cytomnt: read (``read_fcs``), compensate (the float32 compensated channels gating and
  statistics share), gate (Gating-ML, FlowKit-exact), statistics (median, mean, rCV per
  population and channel), write (every default output of the run), and the whole
  ``cytomnt.analyze(..., jobs=1, out=...)``.
- FlowKit: read (``Sample``), compensate (``Sample.apply_compensation``), gate
  (``GatingStrategy.gate_sample``), and, for comparison only, the same statistics computed the
  way a FlowKit user would (numpy on ``get_events(source="comp")`` per population).

Counts must be identical gate by gate. The ratio of the bar is FlowKit's read + compensate +
gate against the whole ``cytomnt.analyze``.

    python benchmarks/bench_sample.py [--events 1000000] [--runs 5] [--keep DIR]
    python benchmarks/bench_sample.py --events 10000000 --runs 1
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path


def timed(fn, runs: int, setup=lambda: None) -> tuple[float, object]:
    """Median wall seconds of ``fn(setup())`` over ``runs`` (setup untimed), and the last result."""
    times, out = [], None
    for _ in range(runs):
        arg = setup()
        t = time.perf_counter()
        out = fn(arg)
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def peak_mib(fn, setup=lambda: None) -> float:
    """Peak traced memory (MiB) of ``fn(setup())`` above what ``setup`` left allocated."""
    arg = setup()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    fn(arg)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", help="generate into / reuse this folder instead of a temporary one")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    import flowkit as fk
    import numpy as np

    import cytomnt
    from cytomnt.run.config import make_config, run_record
    from cytomnt.sample.gate import gate
    from cytomnt.run.outputs import write_outputs
    from cytomnt.run.batch import analyze_sample
    from cytomnt.sample.statistics import RCV_HIGH, RCV_LOW, population_statistics
    from cytomnt.inputs.strategies import load_strategy
    from cytomnt.synth import TubeSpec, write_tube
    from gating import read_fcs
    from gating.preprocess import compensated_channels, compensation_for
    from gating.stable import inverse
    from gating.formats.strategy import gate_sample, read_gatingml, write_gatingml

    d = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench_sample_"))
    d.mkdir(parents=True, exist_ok=True)
    tube = d / f"tube_{a.events}.fcs"
    if not tube.exists():
        t = time.perf_counter()
        write_tube(tube, TubeSpec(events=a.events, car_frac_of_t=0.3), 4242)
        print(f"generated {tube} in {time.perf_counter() - t:.0f} s")
    cfg = make_config()
    s0 = read_fcs(tube).sample
    auto = gate(s0, compensation_for(s0), load_strategy("auto"), cfg.gating, tube.name, "tube")
    gml = write_gatingml(auto.strategy, d / f"gates_{a.events}.xml")
    strategy = read_gatingml(gml)
    gcfg = make_config(strategy=str(gml))
    del s0, auto

    def fresh():
        s = read_fcs(tube).sample
        return s, compensation_for(s)

    def comp_rows(sc):
        s, c = sc
        raw = s.get_events(source="raw")
        det = [s.get_channel_index(x) for x in c.matrix.detectors]
        return compensated_channels(raw, det, inverse(np.asarray(c.matrix.matrix, dtype=float)))

    def gated(sc):
        comp_rows(sc)                      # gating starts from compensated channels, as in analyze
        return sc

    def with_pops(sc):
        comp_rows(sc)
        return sc, gate_sample(strategy, sc[0])

    result = analyze_sample(tube, gcfg)
    runs_dir = Path(tempfile.mkdtemp(prefix="runs_", dir=d))     # every run writes to a new, empty folder

    def new_out() -> Path:
        return Path(tempfile.mkdtemp(dir=runs_dir))
    ours = {
        "read": (lambda _: read_fcs(tube), lambda: None),
        "compensate": (comp_rows, fresh),
        "gate": (lambda sc: gate_sample(strategy, sc[0]), lambda: gated(fresh())),
        "statistics": (lambda sp: population_statistics(sp[0][0], sp[0][1], sp[1], result_panel(sp[0][0])),
                       lambda: with_pops(fresh())),
        "write": (lambda out: write_outputs([result], out, run_record(gcfg), gcfg.learned), new_out),
    }

    def result_panel(sample):
        return gcfg.panel.resolve(cytomnt.inputs.panel.channels_of(sample, gcfg.panel), tube.name, strict=False)

    def fk_read(_):
        return fk.Sample(str(tube))

    def fk_comp(smp):
        smp.apply_compensation(strategy_matrix(smp))
        return smp

    def strategy_matrix(smp):
        meta = smp.get_metadata()
        return fk.Matrix(meta["spill"] if "spill" in meta else meta["spillover"],
                         [smp.pnn_labels[i] for i in smp.fluoro_indices],
                         [smp.pns_labels[i] for i in smp.fluoro_indices])

    def fk_stats(sr):
        smp, res = sr
        ev = smp.get_events(source="comp")[:, smp.fluoro_indices]
        for row in res.report.itertuples():
            m = res.get_gate_membership(row.gate_name, gate_path=tuple(row.gate_path))
            x = ev[m]
            if len(x):
                med = np.median(x, axis=0)
                np.mean(x, axis=0)
                lo, hi = np.percentile(x, [RCV_LOW, RCV_HIGH], axis=0, method="inverted_cdf")
                (hi - lo) / 2 / np.abs(med)

    theirs = {
        "read": (fk_read, lambda: None),
        "compensate": (fk_comp, lambda: fk_read(None)),
        "gate": (lambda smp: strategy.gate_sample(smp), lambda: fk_comp(fk_read(None))),
        "statistics": (fk_stats, lambda: (lambda smp: (smp, strategy.gate_sample(smp)))(fk_comp(fk_read(None)))),
    }
    rows = []
    for stage in ("read", "compensate", "gate", "statistics", "write"):
        fn, setup = ours[stage]
        t_ours, _ = timed(fn, a.runs, setup)
        m_ours = peak_mib(fn, setup)
        t_fk = m_fk = float("nan")
        if stage in theirs:
            fn, setup = theirs[stage]
            t_fk, _ = timed(fn, a.runs, setup)
            m_fk = peak_mib(fn, setup)
        rows.append((stage, t_ours, m_ours, t_fk, m_fk))
    t_all, _ = timed(lambda out: cytomnt.analyze([tube], config=gcfg, jobs=1, out=out), a.runs, new_out)
    m_all = peak_mib(lambda out: cytomnt.analyze([tube], config=gcfg, jobs=1, out=out), new_out)
    t_fk_core, fk_res = timed(lambda _: strategy.gate_sample(fk_comp(fk_read(None))), a.runs)

    pops = gate_sample(strategy, read_fcs(tube).sample)
    fk_counts = {(r.gate_name, tuple(r.gate_path)): int(r.count) for r in fk_res.report.itertuples()}
    mine = {(p.name, p.path): p.count for p in pops}
    same = mine == fk_counts

    print(f"\n{a.events:,} events, {len(pops)} gates, median of {a.runs} runs; peak = traced memory of the stage")
    print(f"{'stage':<12} {'cytomnt s':>10} {'peak MiB':>9} {'FlowKit s':>10} {'peak MiB':>9} {'ratio':>7}")
    for stage, to, mo, tf, mf in rows:
        ratio = f"{tf / to:.1f}x" if tf == tf else ""
        tf_s = f"{tf:.3f}" if tf == tf else "-"
        mf_s = f"{mf:.0f}" if mf == mf else "-"
        print(f"{stage:<12} {to:>10.3f} {mo:>9.0f} {tf_s:>10} {mf_s:>9} {ratio:>7}")
    print(f"{'analyze()':<12} {t_all:>10.3f} {m_all:>9.0f}   (every default output; the stages overlap on threads)")
    print(f"FlowKit Sample + compensation + gate_sample: {t_fk_core:.3f} s")
    print(f"counts identical gate by gate: {same}")
    print(f"ratio (FlowKit Sample+comp+gate_sample / cytomnt.analyze): {t_fk_core / t_all:.1f}x")
    shutil.rmtree(runs_dir, ignore_errors=True)
    if not a.keep:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
