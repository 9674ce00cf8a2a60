"""Batch runs, cytomnt against FlowKit's Session.analyze_samples(use_mp=True), same files, same gates.

Generates N tubes of E events (default 200 x 200k), exports the gates of one tube (the auto
CAR-T strategy) as Gating-ML, and runs each in its own process, alternating, timed with
nothing else running; then once more each while the peak resident memory of the whole process
tree is sampled every 50 ms (the sampler's CPU would slow a timed run on a small machine):

- cytomnt: `cytomnt analyze DIR --strategy gates.xml --jobs J --out OUT` (fast evaluator,
  results store, tables);
- FlowKit: `Session(gates.xml, DIR)` then `analyze_samples(use_mp=True)` and
  `get_analysis_report()`.

Counts are compared gate by gate. With --flat it also runs cytomnt on the first 50 files to
show memory does not grow with the number of files. With --flowio the tubes are FlowIO-written
(13 channels, float32, $SPILLOVER) and the strategy FlowKit-written with two polygons, four
rectangles and a quadrant gate (``flowio_tube.py``): files and gates cytomnt did not make.

    python benchmarks/bench_batch.py [--files 200] [--events 200000] [--jobs 2] [--flat] [--keep DIR] [--repeat N]
    python benchmarks/bench_batch.py --flowio --files 100 --repeat 3

The last line printed is the wall-time ratio.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import pandas as pd
import psutil

FLOWKIT_SCRIPT = r'''
import sys, warnings
warnings.simplefilter("ignore")
import flowkit as fk
if __name__ == "__main__":
    s = fk.Session(gating_strategy=sys.argv[1], fcs_samples=sys.argv[2])
    s.analyze_samples(use_mp=True)
    s.get_analysis_report().to_csv(sys.argv[3], index=False)
'''


def run_timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and exit code, nothing else running in this process (on a 2-core machine a
    memory sampler walking /proc every 50 ms takes CPU from the run it measures)."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode not in (0, 1):
        print(p.stderr.decode()[-2000:], file=sys.stderr)
    return time.perf_counter() - t0, p.returncode


def run_measured(cmd: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MiB) of the process and all its children, exit code."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    proc = psutil.Process(p.pid)
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            try:
                rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.05)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    _, err = p.communicate()
    done.set()
    th.join()
    if p.returncode not in (0, 1):
        print(err.decode()[-2000:], file=sys.stderr)
    return time.perf_counter() - t0, peak / 2**20, p.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--flat", action="store_true", help="also run cytomnt on 50 files (memory flat in file count)")
    ap.add_argument("--keep", help="generate into / reuse this folder instead of a temporary one")
    ap.add_argument("--flowio", action="store_true", help="FlowIO-written tubes and a polygon strategy (flowio_tube.py)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run cytomnt and FlowKit this many times, alternating; the median wall time is compared "
                         "(shared machines vary by several percent between identical runs)")
    a = ap.parse_args()
    warnings.simplefilter("ignore")
    from cytomnt.sample.autogate import auto_gate
    from cytomnt.inputs.panel import Panel, channels_of
    from cytomnt.synth import TubeSpec, write_tube
    from gating import read_fcs
    from gating.preprocess import compensation_for
    from gating.formats.strategy import write_gatingml

    base = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench_batch_"))
    data = base / "fcs"
    data.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    sys.path.insert(0, str(Path(__file__).parent))
    import flowio_tube
    for i in range(a.files):
        f = data / f"tube_{i:04d}.fcs"
        if not f.exists():
            if a.flowio:
                flowio_tube.write_tube(f, a.events, 7000 + i)
            else:
                write_tube(f, TubeSpec(events=a.events, car_frac_of_t=0.02 + 0.6 * (i % 17) / 17,
                                       style="bd"), 5000 + i)
    print(f"{a.files} files of {a.events} events in {data} ({time.perf_counter() - t:.0f}s to generate)")
    if a.flowio:
        gml = flowio_tube.write_strategy(base / "gates.xml")
    else:
        first = read_fcs(data / "tube_0000.fcs").sample
        g = auto_gate(first, Panel.default().resolve(channels_of(first)), compensation_for(first))
        gml = write_gatingml(g.strategy, base / "gates.xml")

    rows = []
    out = base / "out_cytomnt"
    script = base / "flowkit_session.py"
    script.write_text(FLOWKIT_SCRIPT)
    fk_report = base / "flowkit_report.csv"
    ours_cmd = [sys.executable, "-m", "cytomnt.cli", "analyze", str(data), "--strategy", str(gml), "--jobs",
                str(a.jobs), "--out", str(out), "--no-report"]
    theirs_cmd = [sys.executable, str(script), str(gml), str(data), str(fk_report)]
    ours_runs, theirs_runs = [], []
    for _ in range(a.repeat):                      # alternating, so drift in the machine hits both
        shutil.rmtree(out, ignore_errors=True)
        ours_runs.append(run_timed(ours_cmd))
        theirs_runs.append(run_timed(theirs_cmd))
    ours = sorted(ours_runs)[len(ours_runs) // 2]
    theirs = sorted(theirs_runs)[len(theirs_runs) // 2]
    # peak memory in runs of their own (the sampler would slow the timed runs)
    shutil.rmtree(out, ignore_errors=True)
    ours_mem = run_measured(ours_cmd)[1]
    theirs_mem = run_measured(theirs_cmd)[1]
    for wall, rc in ours_runs:
        rows.append(("cytomnt", a.files, wall, ours_mem, rc))
    if a.flat:
        sub = base / "fcs50"
        sub.mkdir(exist_ok=True)
        for i in range(min(50, a.files)):
            link = sub / f"tube_{i:04d}.fcs"
            if not link.exists():
                link.symlink_to(data / f"tube_{i:04d}.fcs")
        out50 = base / "out_cytomnt50"
        shutil.rmtree(out50, ignore_errors=True)
        rows.append(("cytomnt", min(50, a.files)) + run_measured(
            [sys.executable, "-m", "cytomnt.cli", "analyze", str(sub), "--strategy", str(gml), "--jobs", str(a.jobs),
             "--out", str(out50), "--no-report"]))
    for wall, rc in theirs_runs:
        rows.append(("FlowKit Session", a.files, wall, theirs_mem, rc))

    same = None
    if fk_report.exists() and (out / "populations.csv").exists():
        fr = pd.read_csv(fk_report)
        fr["sample_id"] = fr["sample_id"].astype(str).str.replace(".fcs", "", regex=False)
        ours_p = pd.read_csv(out / "populations.csv")
        m = fr.merge(ours_p, left_on=["sample_id", "gate_name"], right_on=["sample_id", "population"])
        same = len(m) == len(fr) == len(ours_p) and bool((m["count_x"] == m["count_y"]).all())
    print(f"{'run':<16} {'files':>5} {'wall s':>8} {'peak MiB':>9} {'exit':>4}")
    for name, n, wall, mem, rc in rows:
        print(f"{name:<16} {n:>5} {wall:>8.1f} {mem:>9.0f} {rc:>4}")
    print(f"identical counts for every gate of every file: {same}")
    if not a.keep:
        shutil.rmtree(base, ignore_errors=True)
    print(f"wall-time ratio (FlowKit / cytomnt, {a.files} files, median of {a.repeat}): {theirs[0] / ours[0]:.1f}x")


if __name__ == "__main__":
    main()
