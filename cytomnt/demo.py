"""Demo and fixture data: two patients' blood and CSF tubes with a manifest, generated
deterministically, so ``cytomnt demo`` works from an installed wheel with no data files.
"""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from .synth import TubeSpec, write_tube

#: Two patients: one with a CD4-dominated, large CAR-T expansion, one CD8-dominated and modest.
DEMO_PATIENTS = (
    {"patient_id": "PT-A", "infusion": "2026-03-02", "style": "bd", "car_cd4_share": 0.78,
     "timepoints": [(7, 0.10, 1.1), (14, 0.68, 4.2), (21, 0.55, 2.6)], "csf_day": 28, "csf_car": 0.35},
    {"patient_id": "PT-B", "infusion": "2026-04-13", "style": "numbered", "car_cd4_share": 0.22,
     "timepoints": [(7, 0.05, 0.6), (14, 0.22, 1.4), (21, 0.15, 1.0)], "csf_day": 30, "csf_car": 0.08},
)


def make_demo_set(folder: str | Path, seed: int = 20260302, blood_events: int = 100_000,
                  csf_events: int = 1500) -> Path:
    """Write the demo tubes, their truth files and ``manifest.csv`` into ``folder``; return the manifest path."""
    folder = Path(folder)
    fcs_dir = folder / "fcs"
    rows = []
    k = 0
    for p in DEMO_PATIENTS:
        day0 = dt.date.fromisoformat(p["infusion"])
        for day, car, alc in p["timepoints"]:
            k += 1
            name = f"{p['patient_id']}_PB_d{day:02d}.fcs"
            spec = TubeSpec(sample_type="pb", events=blood_events, style=p["style"], car_frac_of_t=car,
                            car_cd4_share=p["car_cd4_share"], patient_id=p["patient_id"])
            write_tube(fcs_dir / name, spec, seed + k)
            rows.append([f"fcs/{name}", name[:-4], p["patient_id"], str(day0 + dt.timedelta(days=day)), "pb", alc])
        k += 1
        name = f"{p['patient_id']}_CSF_d{p['csf_day']:02d}.fcs"
        spec = TubeSpec(sample_type="csf", events=csf_events, style=p["style"], car_frac_of_t=p["csf_car"],
                        car_cd4_share=min(0.95, p["car_cd4_share"] + 0.1), t_cd4_share=0.67,
                        patient_id=p["patient_id"], debris_frac=0.08, dead_frac=0.06, doublet_frac=0.01)
        write_tube(fcs_dir / name, spec, seed + k)
        rows.append([f"fcs/{name}", name[:-4], p["patient_id"], str(day0 + dt.timedelta(days=p["csf_day"])), "csf", ""])
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["file", "sample_id", "patient_id", "collection_date", "sample_type", "alc_k_per_ul"])
        w.writerows(rows)
    return manifest


def write_fixtures(folder: str | Path, seed: int = 7) -> list[Path]:
    """The small files committed under ``fixtures/`` (regenerate with ``cytomnt generate --fixtures``)."""
    folder = Path(folder)
    specs = {
        "blood_bd.fcs": TubeSpec(events=30_000, style="bd", car_frac_of_t=0.30, car_cd4_share=0.75),
        "blood_numbered.fcs": TubeSpec(events=30_000, style="numbered", car_frac_of_t=0.12, car_cd4_share=0.25),
        "blood_beads.fcs": TubeSpec(events=30_000, style="bd", car_frac_of_t=0.2, bead_events=1500),
        "csf_bd.fcs": TubeSpec(sample_type="csf", events=1200, style="bd", car_frac_of_t=0.25,
                               car_cd4_share=0.8, t_cd4_share=0.67, debris_frac=0.08),
        "negative_control_bd.fcs": TubeSpec(events=30_000, style="bd", car_frac_of_t=0.0),
    }
    out = []
    for i, (name, spec) in enumerate(specs.items()):
        write_tube(folder / name, spec, seed + i)
        out.append(folder / name)
    return out
