"""A short, readable text summary of a samples table (what ``cytomnt demo`` prints)."""
from __future__ import annotations

import math

import pandas as pd

from cytomnt.sample.flags import meaning


def _text(v) -> str:
    """A text cell, '-' when empty (None, '', or NaN in a table read back from CSV)."""
    return "-" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) or v == "" else str(v)


def _fmt(v, spec="{:.1f}") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "-"
    return spec.format(v)


def summary_text(df: pd.DataFrame, ruo: str) -> str:
    """One line per sample: patient, date, type, T cells, CAR % of T (95% CI), CAR CD4:CD8, call, CAR/uL, flags."""
    head = (f"{'sample':<18} {'patient':<8} {'date':<10} {'type':<4} {'T cells':>8} {'CAR % of T (95% CI)':>22} "
            f"{'CAR CD4:CD8':>11} {'call':<13} {'CAR/uL':>7}  flags")
    lines = [head, "-" * len(head)]
    for r in df.itertuples(index=False):
        if r.status != "ok":
            lines.append(f"{r.sample_id:<18} ERROR: {r.error}")
            continue
        ci = f"{_fmt(r.car_pct_of_t)} ({_fmt(r.car_pct_of_t_ci_low)}-{_fmt(r.car_pct_of_t_ci_high)})"
        flags = ";".join(_shown_flags(r.qc_flags))
        lines.append(f"{r.sample_id:<18} {_text(r.patient_id):<8} {_text(r.collection_date):<10} "
                     f"{r.sample_type:<4} {_fmt(r.t_cells, '{:d}'):>8} {ci:>22} {_fmt(r.car_cd4_cd8_ratio, '{:.2f}'):>11} "
                     f"{_text(r.car_predominance):<13} {_fmt(r.car_t_per_ul, '{:.0f}'):>7}  {flags}")
        if getattr(r, "car_status", "ok") not in ("ok", None):
            lines.append(f"{'':<18} CAR {str(r.car_status).replace('_', ' ')}: {r.car_status_reason}")
    lines += flag_legend(r.qc_flags for r in df.itertuples(index=False) if r.status == "ok")
    lines += ["", ruo]
    return "\n".join(lines) + "\n"


def _shown_flags(cell) -> list[str]:
    """The flags of a ``qc_flags`` cell the summary shows (NO_VALLEY, a detail of gating, left out)."""
    if not isinstance(cell, str):         # empty (None, or NaN in a table read back from CSV)
        return []
    return [f for f in cell.split(";") if f and not f.startswith("NO_VALLEY")]


def flag_legend(flag_cells) -> list[str]:
    """One line per QC flag shown in the table (``qc_flags`` cells): what it means, so a flag in a
    summary is never a code to look up."""
    codes = dict.fromkeys(f.split(":", 1)[0] for cell in flag_cells for f in _shown_flags(cell))
    known = [(code, meaning(code)) for code in codes if meaning(code)]
    return [""] + [f"{code}: {text}" for code, text in known] if known else []


def car_call_notes(rows: list[dict]) -> list[str]:
    """What a run's console should say about its CAR calls: the samples without one, grouped by
    why, with what would fix it (a strategy that gates no T cells; no usable reference...)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    unsure = [r for r in ok if r.get("car_status") == "uncertain"]
    if not unsure:
        return []
    by_reason: dict[str, list[str]] = {}
    for r in unsure:
        reason = str(r.get("car_status_reason") or "")
        key = ("the strategy gates no T cells" if reason.startswith("T cells were not gated") else
               "too few T cells" if "T cells; at least" in reason else "no usable negative reference")
        by_reason.setdefault(key, []).append(str(r.get("sample_id")))
    fixes = {"the strategy gates no T cells": "map its gates to roles with --gate-map 't_cell=GATE,cd4=GATE,"
                                              "cd8=GATE,car=GATE' (the populations are in populations.csv)",
             "too few T cells": "a tube with more T cells",
             "no usable negative reference": "a CAR-negative control tube (--negative-control, FMO); each row's "
                                             "car_status_reason says more"}
    notes = []
    for key, ids in by_reason.items():
        names = ", ".join(ids[:4]) + (f" and {len(ids) - 4} more" if len(ids) > 4 else "")
        notes.append(f"no CAR call in {len(ids)} of {len(ok)} sample(s) ({names}): {key}; what would give one: "
                     f"{fixes[key]}")
    return notes


def keyword_notes(rows: list[dict], asked) -> list[str]:
    """Keywords asked for (--keywords) that no analysed file has: a misspelling ('$SCR' for
    '$SRC'), or a list separated by ';' instead of ','."""
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok or not asked:
        return []
    empty = [k for k in asked if not any((r.get("keywords") or {}).get(k) for r in ok)]
    return [f"--keywords {k}: no analysed file has it (its column is empty); check the spelling and separate "
            f"keywords with ','" for k in empty]
