"""The generated-blood-tube bar on seeds of your choice (not a test: run by hand, for issue notes).

``python -m tests.truthsets OUT 424242,777777`` writes twelve ``random_spec`` blood tubes per seed,
analyses them (no control) and prints, for the tubes with CAR >= 1% of T cells, how many have the CAR
share within 2 points, CAR CD4:CD8 within 10%, the predominance call right and the truth inside the
interval. ``tests/test_truth_sets.py`` asserts the same on its own seeds.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import cytomnt
from cytomnt.sample.metrics import MetricSettings, predominance
from cytomnt.synth import random_spec, write_tube


def run(out: Path, seeds: list[int], tubes: int = 12) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        folder = out / f"s{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        truths = {f"pb{i:02d}": write_tube(folder / f"pb{i:02d}.fcs", random_spec(rng, "pb", style=("bd", "numbered")[i % 2]),
                                           seed + i) for i in range(tubes)}
        df = cytomnt.analyze([folder], jobs=2).set_index("sample_id")
        for sid, t in truths.items():
            r = df.loc[sid]
            ratio = t["car_cd4"] / t["car_cd8"] if t["car_cd8"] else np.inf
            rows.append({"seed": seed, "tube": sid, "truth": t["car_pct_of_t"], "pct": r.car_pct_of_t,
                         "lo": r.car_pct_of_t_ci_low, "hi": r.car_pct_of_t_ci_high, "truth_ratio": ratio,
                         "ratio": r.car_cd4_cd8_ratio, "truth_call": predominance(t["car_cd4"], t["car_cd8"], MetricSettings()),
                         "call": r.car_predominance, "status": r.car_status})
    return pd.DataFrame(rows)


def summary(x: pd.DataFrame) -> str:
    c = x[x.truth >= 1.0]
    return (f"tubes with CAR >= 1% of T: {len(c)}; share within 2 points: {int(((c.pct - c.truth).abs() <= 2).sum())}; "
            f"CD4:CD8 within 10%: {int(((c.ratio / c.truth_ratio - 1).abs() <= 0.1).sum())}; call right: "
            f"{int((c.call == c.truth_call).sum())}; truth inside the interval: "
            f"{int(((c.lo <= c.truth) & (c.truth <= c.hi)).sum())}")


if __name__ == "__main__":
    res = run(Path(sys.argv[1] if len(sys.argv) > 1 else "truthsets-out"),
              [int(s) for s in (sys.argv[2] if len(sys.argv) > 2 else "424242,777777").split(",")])
    pd.set_option("display.width", 200)
    print(res.to_string())
    print(summary(res))
