"""The report's charts of one patient over days after infusion: CAR T-cell expansion (all, CD4,
CD8 per uL on a log axis, with the ALC, interventions and MNT onset), the ALC, the CAR share of
T cells and the CAR CD4:CD8 ratio. Each is a PNG data URI."""
from __future__ import annotations

import base64
import io

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cytomnt.patients.clinical import parse_date  # noqa: E402
from cytomnt.sample.metrics import MetricSettings  # noqa: E402

#: reason -> colour of an intervention's line
REASON_COLOURS = {"preemptive": "#ef6c00", "CRS": "#6d4c41", "ICANS": "#5e35b1", "MNT": "#c62828", "": "#757575"}


def png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _days(dates, day0):
    return [(d - day0).days for d in dates]


def _ratio_axis(ax, s, left_out: int) -> None:
    """A CD4:CD8 log axis readable at every value (0.25, 0.5, 1, 2, 4 ...), with the call's
    thresholds drawn: CD4- or CD8-predominant beyond the ratio (with 95% confidence), balanced
    inside the band; ``left_out``: samples whose ratio the call did not settle."""
    ax.set_yscale("log", base=2)
    lo, hi = ax.get_ylim()
    lo, hi = min(lo / 1.3, 1 / (2 * s.balanced_band)), max(hi * 1.3, 2 * s.balanced_band)
    ax.set_ylim(lo, hi)
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=2))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.axhspan(1 / s.balanced_band, s.balanced_band, color="#e0e0e0", alpha=0.5, lw=0)
    x0 = ax.get_xlim()[0]
    ax.text(x0, s.predominance_ratio * 1.05, " CD4-predominant above", color="#c62828", fontsize=7, va="bottom")
    ax.text(x0, s.predominance_ratio / 1.05, " CD8-predominant below", color="#c62828", fontsize=7, va="top")
    ax.text(x0, s.balanced_band, f" balanced band 1/{s.balanced_band:g}-{s.balanced_band:g}", color="#616161",
            fontsize=7, va="bottom")
    if left_out:
        ax.text(0.98, 0.02, f"{left_out} sample(s) with an undetermined ratio not drawn", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="#616161")


def patient_charts(pid: str, rows: pd.DataFrame, labs: pd.DataFrame | None, patient=None, settings=None,
                   treatments=()) -> list[dict]:
    """CAR T cells/uL (all, CD4, CD8) with ALC, interventions and MNT onset; ALC; CAR % of T
    cells; CAR CD4:CD8: over days after infusion (blood and CSF apart)."""
    settings = settings or MetricSettings()
    infusion = patient.infusion_date if patient is not None else None
    dated = rows[rows.collection_date.notna() & (rows.status == "ok")].copy()
    dated["date"] = [parse_date(d, f"sample {s}") if isinstance(d, str) and d else None
                     for d, s in zip(dated.collection_date, dated.sample_id)]
    dated = dated[dated.date.notna()]
    alc = labs[labs.patient_id == pid] if labs is not None and len(labs) else None
    if alc is None or alc.empty:
        src = dated[dated.alc_k_per_ul.notna()]
        alc = pd.DataFrame({"date": src.date, "alc_k_per_ul": src.alc_k_per_ul.astype(float)})
    all_dates = list(dated.date) + list(alc.date)
    if not all_dates:
        return []
    day0 = infusion or min(all_dates)
    xlabel = "days after infusion" if infusion else "days after the first sample"
    charts = [expansion_chart(pid, dated, alc, day0, xlabel, treatments,
                              patient.mnt_onset_date if patient is not None else None)]
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    if len(alc):
        ax.plot(_days(alc.date, day0), alc.alc_k_per_ul, "o-", color="#1f4e79")
    ax.axhline(3.0, color="#c62828", ls="--", lw=1)
    ax.text(ax.get_xlim()[0], 3.05, " 3.0 x10³/µL", color="#c62828", fontsize=8, va="bottom")
    ax.axvline(0, color="#555", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ALC (x10³/µL)")
    ax.set_title(f"{pid}: absolute lymphocyte count", fontsize=10)
    charts.append({"src": png(fig), "alt": f"ALC over time, {pid}"})
    for col, ylabel, line, title, log in (("car_pct_of_t", "CAR T cells, % of T cells", 60.0, "CAR share of T cells", False),
                                          ("car_cd4_cd8_ratio", "CAR CD4:CD8", 1.0, "CAR CD4:CD8", True)):
        fig, ax = plt.subplots(figsize=(4.6, 3.2))
        shown = dated[dated[col].notna()]
        if log:                  # only ratios the call settled: no 'indeterminate', no 0 or infinite ratios
            ratio = pd.to_numeric(shown[col], errors="coerce")
            shown = shown[shown.car_predominance.isin(["CD4", "CD8", "balanced"]) & (ratio > 0) & np.isfinite(ratio)]
        for stype, marker, colour, label in (("pb", "o-", "#1f4e79", "blood"), ("csf", "^", "#8e24aa", "CSF")):
            sub = shown[shown.sample_type == stype].sort_values("date")
            if len(sub):
                ax.plot(_days(sub.date, day0), sub[col].astype(float), marker, color=colour, label=label, ms=7)
        if col == "car_pct_of_t":
            for stype, colour in (("pb", "#1f4e79"), ("csf", "#8e24aa")):
                sub = dated[(dated.sample_type == stype) & dated[col].notna()]
                if len(sub):
                    ax.vlines(_days(sub.date, day0), sub.car_pct_of_t_ci_low.astype(float),
                              sub.car_pct_of_t_ci_high.astype(float), color=colour, lw=1)
        ax.axhline(line, color="#c62828", ls="--", lw=1)
        ax.axvline(0, color="#555", lw=1)
        if log:
            _ratio_axis(ax, settings, len(dated[dated[col].notna()]) - len(shown))
        else:
            ax.text(ax.get_xlim()[0], line, f" {line:g}%", color="#c62828", fontsize=8, va="bottom")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{pid}: {title}", fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        charts.append({"src": png(fig), "alt": f"{title} over time, {pid}"})
    return charts


def expansion_chart(pid: str, dated: pd.DataFrame, alc: pd.DataFrame, day0, xlabel: str, treatments=(),
                    mnt_onset=None) -> dict:
    """Blood CAR T cells/uL (all with its 95% interval, CD4, CD8) and the ALC in cells/uL on one
    log axis; interventions and MNT onset as vertical lines. Values of uncertain calls are absent
    (unknown), a 0 is drawn at the axis floor."""
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    blood = dated[dated.sample_type == "pb"].sort_values("date")
    floor = None
    series = (("car_t_per_ul", "o-", "#1f4e79", "CAR T"), ("car_cd4_per_ul", "s--", "#2e7d32", "CAR CD4"),
              ("car_cd8_per_ul", "^--", "#ad1457", "CAR CD8"))
    values = pd.concat([pd.to_numeric(blood.get(c, pd.Series(dtype=float)), errors="coerce") for c, *_ in series])
    positive = values[values > 0]
    floor = float(positive.min()) / 3 if len(positive) else 0.1
    for col, style, colour, label in series:
        if col not in blood.columns:
            continue
        v = pd.to_numeric(blood[col], errors="coerce")
        keep = v.notna()
        if keep.any():
            ax.plot(_days(blood.date[keep], day0), np.maximum(v[keep], floor), style, color=colour, label=label, ms=5)
    if "car_t_per_ul_ci_low" in blood.columns:
        lo = pd.to_numeric(blood.car_t_per_ul_ci_low, errors="coerce")
        hi = pd.to_numeric(blood.car_t_per_ul_ci_high, errors="coerce")
        keep = lo.notna() & hi.notna()
        if keep.any():
            ax.vlines(_days(blood.date[keep], day0), np.maximum(lo[keep], floor), np.maximum(hi[keep], floor),
                      color="#1f4e79", lw=1)
    if len(alc):
        ax.plot(_days(alc.date, day0), alc.alc_k_per_ul.astype(float) * 1000.0, ".-", color="#9e9e9e", label="ALC")
    ax.set_yscale("log")
    for t in treatments:                        # named in the legend: labels on the lines would overlap
        x = (t["date"] - day0).days
        ax.axvline(x, color=REASON_COLOURS.get(t["reason"], "#757575"), lw=1.2, ls=":",
                   label=f"day {x}: {t['treatment']}" + (f" ({t['reason']})" if t["reason"] else ""))
    if mnt_onset is not None:
        x = (mnt_onset - day0).days
        ax.axvline(x, color="#c62828", lw=2, alpha=0.6, label=f"MNT onset, day {x}")
    ax.axvline(0, color="#555", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cells/µL (log)")
    ax.set_title(f"{pid}: CAR T-cell expansion (blood)", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return {"src": png(fig), "alt": f"CAR T cells per uL (all, CD4, CD8) with ALC, interventions and MNT onset, {pid}"}
