"""Demo and fixture data: two patients' blood and CSF tubes with a manifest, generated
deterministically, so ``cytomnt demo`` works from an installed wheel with no data files.
"""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from cytomnt.synth import TubeSpec, write_tube

#: Clinical facts and ALC series (day: x10^3/uL) of the demo patients.
DEMO_CLINICAL = {
    "PT-A": {"product": "cilta-cel", "bridging_response": "SD", "bmpc_pct": 60, "m_spike_g_dl": 2.1,
             "sflc_mg_l": 900, "ferritin_ng_ml": 1800, "crs_max_grade": 2, "icans_max_grade": 0,
             "prior_bcma_bispecific": "no", "crs_day": 6, "mnt_day": 27,
             "treatments": [(6, "tocilizumab", "8 mg/kg", "CRS"), (27, "dexamethasone", "10 mg q6h", "MNT")],
             "alc": {0: 0.3, 3: 0.2, 7: 1.1, 10: 2.9, 14: 4.2, 17: 3.5, 21: 2.6, 28: 1.8}},
    "PT-B": {"product": "ide-cel", "bridging_response": "VGPR", "bmpc_pct": 20, "m_spike_g_dl": 0.8,
             "sflc_mg_l": 150, "ferritin_ng_ml": 420, "crs_max_grade": 1, "icans_max_grade": 0,
             "prior_bcma_bispecific": "no", "crs_day": 3,
             "alc": {0: 0.4, 7: 0.6, 10: 0.9, 14: 1.4, 21: 1.0, 28: 0.8}},
}

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


def write_demo_clinical(folder: str | Path) -> tuple[Path, Path, dt.date]:
    """clinical.csv, labs.csv and treatments.csv of the demo patients; returns the first two paths and the demo's as-of date
    (the day after the last data and after every patient's day 0-30 windows)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clinical, labs = folder / "clinical.csv", folder / "labs.csv"
    last = dt.date.min
    with open(clinical, "w", newline="") as fc, open(labs, "w", newline="") as fl:
        wc, wl = csv.writer(fc, lineterminator="\n"), csv.writer(fl, lineterminator="\n")
        wc.writerow(["patient_id", "product", "infusion_date", "bridging_response", "bmpc_pct", "m_spike_g_dl",
                     "sflc_mg_l", "ferritin_ng_ml", "crs_max_grade", "icans_max_grade", "prior_bcma_bispecific",
                     "crs_date", "icans_date", "ferritin_date", "mnt_onset_date"])
        wl.writerow(["patient_id", "date", "alc_k_per_ul"])
        for p in DEMO_PATIENTS:
            c = DEMO_CLINICAL[p["patient_id"]]
            day0 = dt.date.fromisoformat(p["infusion"])
            wc.writerow([p["patient_id"], c["product"], day0, c["bridging_response"], c["bmpc_pct"], c["m_spike_g_dl"],
                         c["sflc_mg_l"], c["ferritin_ng_ml"], c["crs_max_grade"], c["icans_max_grade"],
                         c["prior_bcma_bispecific"], day0 + dt.timedelta(days=c["crs_day"]), "",
                         day0 - dt.timedelta(days=6),       # baseline ferritin, before lymphodepletion
                         day0 + dt.timedelta(days=c["mnt_day"]) if "mnt_day" in c else ""])
            for day, alc in c["alc"].items():
                wl.writerow([p["patient_id"], day0 + dt.timedelta(days=day), alc])
            # as of the day after both the last data and the day 0-30 windows: every factor settled
            last = max(last, day0 + dt.timedelta(days=max(max(c["alc"]), p["csf_day"], 30) + 1))
    with open(folder / "treatments.csv", "w", newline="") as ft:
        w = csv.writer(ft, lineterminator="\n")
        w.writerow(["patient_id", "date", "treatment", "dose", "reason"])
        for p in DEMO_PATIENTS:
            day0 = dt.date.fromisoformat(p["infusion"])
            for day, what, dose, why in DEMO_CLINICAL[p["patient_id"]].get("treatments", ()):
                w.writerow([p["patient_id"], day0 + dt.timedelta(days=day), what, dose, why])
    return clinical, labs, last


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
    from cytomnt.patients.cohort import literature_cohort
    literature_cohort().to_csv(folder / "literature_alc_cohort.csv", index=False, lineterminator="\n")
    out.append(folder / "literature_alc_cohort.csv")
    return out


def run_demo(out: Path, jobs: int = 1) -> bool:
    """``cytomnt demo``: generate the demo set in ``out/data``, analyse it into ``out`` with gate
    plots, assess each patient's MNT risk, write summary.txt and the report, and print where
    everything is. True when every sample was analysed."""
    import sys
    import time

    from cytomnt.run.batch import analyze
    from cytomnt.patients.clinical import load
    from cytomnt.run.config import make_config
    from cytomnt.hints import risk_command
    from cytomnt.exports.report import build_report
    from cytomnt.patients.risk import assess, render_text
    from cytomnt.ruo import RUO
    from cytomnt.run.summary import summary_text
    t0 = time.monotonic()
    manifest = make_demo_set(out / "data")
    print(f"generated demo tubes for 2 patients in {out / 'data'}", file=sys.stderr)
    items = sorted((out / "data" / "fcs").glob("*.fcs"))
    df = analyze(items, config=make_config(manifest=manifest, plots=True), out=out, jobs=jobs, progress=True)
    text = summary_text(df, RUO)
    clinical, labs, as_of = write_demo_clinical(out / "data")
    treatments = clinical.with_name("treatments.csv")
    data = load(clinical, labs, out / "samples.csv", treatments=treatments)
    risk = "\n".join(render_text(assess(data, pid, as_of), evidence=False) for pid in sorted(data.patients))
    names = (clinical.relative_to(out), labs.relative_to(out), "samples.csv")
    tr = treatments.relative_to(out)
    # summary.txt may be read from anywhere: its command names the files relative to its own folder
    (out / "summary.txt").write_text(
        text + f"\nMNT risk (from the folder of this file: {risk_command(out, *names, as_of, cwd=out, treatments=tr)}):"
        f"\n\n" + risk)
    build_report(out, clinical, labs, as_of, treatments=treatments)
    print(text + f"\nMNT risk ({risk_command(out, *names, as_of, treatments=tr)}):\n\n" + risk)
    print(f"report: {out / 'report.html'}; tables: {out / 'samples.csv'}, {out / 'populations.csv'}, "
          f"{out / 'statistics.csv'}; FlowJo workspace: {out / 'cytomnt.wsp'}; gates: {out / 'gates'}/, "
          f"plots: {out / 'plots'}/ ({time.monotonic() - t0:.1f}s)")
    return bool((df["status"] == "ok").all())
