"""A real FlowJo workspace, cytomnt against FlowKit, side by side: the shared 30-file Aurora
workspace (``../shared/data/flowjo_workspaces/coereba_aurora``: CytoML.wsp and its FCS files).

- cytomnt: ``cytomnt analyze FCS_DIR --strategy CytoML.wsp --jobs J --out NEW`` (every default
  output; start-up included);
- FlowKit: ``Workspace(CytoML.wsp, fcs_samples=FCS_DIR, filename_as_id=True)`` (samples loaded
  by file name), ``analyze_samples(use_mp=True)`` and ``get_analysis_report()``.

Each in its own process, alternating, medians of --runs; both sets of counts are compared with
FlowJo's own (flowjo_counts.csv).

    python benchmarks/bench_workspace.py [--runs 3] [--jobs 2]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
WS = (HERE.parent / ".." / "shared" / "data" / "flowjo_workspaces" / "coereba_aurora").resolve()
FLOWKIT = r'''
import sys, warnings
warnings.simplefilter("ignore")
import flowkit as fk
if __name__ == "__main__":
    w = fk.Workspace(sys.argv[1], fcs_samples=sys.argv[2], filename_as_id=True)
    w.analyze_samples(use_mp=True)
    w.get_analysis_report().to_csv(sys.argv[3], index=False)
'''


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode not in (0, 1):
        raise SystemExit(p.stderr.decode()[-2000:])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    if not (WS / "CytoML.wsp").exists():
        raise SystemExit(f"{WS}: the shared Aurora workspace is not here")
    d = Path(tempfile.mkdtemp(prefix="bench_ws_"))
    script = d / "flowkit_ws.py"
    script.write_text(FLOWKIT)
    cytomnt = [str(Path(sys.executable).with_name("cytomnt")), "analyze", str(WS / "fcs"), "--strategy",
               str(WS / "CytoML.wsp"), "--jobs", str(a.jobs), "--no-report"]
    t_fk, t_cy = [], []
    for i in range(a.runs):
        t_fk.append(timed([sys.executable, str(script), str(WS / "CytoML.wsp"), str(WS / "fcs"), str(d / f"fk{i}.csv")]))
        t_cy.append(timed(cytomnt + ["--out", str(d / f"cy{i}")]))
    truth = pd.read_csv(WS / "flowjo_counts.csv")
    pops = pd.read_csv(d / "cy0" / "populations.csv")
    ours = {(s, p): c for s, p, c in zip(pops.sample_id, pops.path, pops["count"])}
    fk_rep = pd.read_csv(d / "fk0.csv")
    theirs = {(s, g): c for s, g, c in zip(fk_rep.sample_id, fk_rep.gate_name, fk_rep["count"])}
    ours_ok = sum(ours.get((r.sample_name[:-4], r.population_path)) == r.count for r in truth.itertuples())
    fk_ok = sum(theirs.get((r.sample_name, r.population_path)) == r.count for r in truth.itertuples())
    mf, mc = statistics.median(t_fk), statistics.median(t_cy)
    print(f"Aurora workspace, {len(truth)} files; FlowJo's counts reproduced: cytomnt {ours_ok}/{len(truth)}, "
          f"FlowKit {fk_ok}/{len(truth)}")
    print(f"FlowKit Workspace.analyze_samples(use_mp=True): median {mf:.2f} s ({', '.join(f'{x:.2f}' for x in t_fk)})")
    print(f"cytomnt analyze --jobs {a.jobs} (every default output): median {mc:.2f} s "
          f"({', '.join(f'{x:.2f}' for x in t_cy)})")
    print(f"ratio: {mf / mc:.1f}x")


if __name__ == "__main__":
    main()
