"""The HTML report: one self-contained file (images embedded as data URIs, no scripts, no
fonts or styles from the network), rebuilt from the results store.

A batch section (every sample with its QC flags, the failures) and a section per patient:
the MNT risk assessment with every factor's evidence (when clinical data are given), ALC over
time with the 3.0 x10^3/uL line and day 0 at infusion, CAR T cells as % of T cells and their
CD4:CD8 over time (blood and CSF marked apart), the samples, and each sample's gate plot.
"""
from __future__ import annotations

import base64
import datetime as dt
import math
import re
from importlib import resources
from pathlib import Path

import pandas as pd
from jinja2 import Environment, select_autoescape

from gating.io.files import atomic_write

from cytomnt.errors import ConfigError
from cytomnt import __version__
from cytomnt.patients.clinical import load, parse_date
from cytomnt.sample.flags import meaning
from cytomnt.sample.metrics import MetricSettings
from cytomnt.ruo import RUO
from cytomnt.patients.treatments import treatments_of
from cytomnt.run.store import ResultStore

BAD_FLAGS = ("NO_T_CELLS", "CAR_BELOW_LOD")
WARN_FLAGS = ("LOW_EVENT_COUNT", "CAR_BELOW_LOQ", "GATE_SKIPPED", "NO_VALLEY", "NO_COMPENSATION",
              "DUPLICATE_SAMPLE_ID", "FCS_", "MULTI_DATASET", "EMPTY_PARENT")


def _blob(png: bytes | None) -> str | None:
    return "data:image/png;base64," + base64.b64encode(png).decode() if png else None


def _fmt(v, spec="{:.1f}") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "-"
    try:
        return spec.format(v)
    except (ValueError, TypeError):
        return str(v)


def _anchor(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(s))


def _flags(text) -> list[dict]:
    """Each flag with its class (bad/warn) and its meaning (shown on hover and in the legend)."""
    out = []
    for f in str(text or "").split(";"):
        if not f:
            continue
        cls = "bad" if f.startswith(BAD_FLAGS) else ("warn" if f.startswith(WARN_FLAGS) else "")
        out.append({"code": f, "cls": cls, "meaning": meaning(f)})
    return out


def _flag_legend(samples: list[dict]) -> list[dict]:
    """Every flag code in the report (codes before ':'), once, with its meaning."""
    seen = {}
    for s in samples:
        for f in s["flags"]:
            seen.setdefault(f["code"].split(":", 1)[0], f)
    return [{"code": c, "cls": f["cls"], "meaning": f["meaning"]} for c, f in sorted(seen.items())]


def _amount(v) -> str:
    """A clinical value as written on a lab sheet: 1,800; 4.2; 0.27."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if not math.isfinite(v):
            return "-"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    return str(v)


def _with_unit(value, unit: str) -> str:
    """A factor's value with its unit when it is a number ('4.2 x10^3/uL'), '-' when unknown."""
    if value is None:
        return "-"
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f"{_amount(value)} {unit}".strip() if number else _amount(value)


def threshold_text(op: str, threshold, unit: str) -> str:
    """A rule's threshold in words: 'above 3.0 x10^3/uL', 'yes', 'one of MR, SD, PD'."""
    if isinstance(threshold, bool) or threshold in ("True", "False"):
        return "yes" if str(threshold) == "True" else "no"
    if isinstance(threshold, list):
        return "one of " + ", ".join(str(t) for t in threshold)
    if op == "in":
        return "one of " + str(threshold).replace("/", ", ")
    words = {">": "above", ">=": "at least", "<": "below", "<=": "at most", "==": "", "!=": "not"}.get(op, op)
    return " ".join(x for x in (words, _amount(threshold), unit) if x)


def _sample_view(r, plots: dict) -> dict:
    ci = f"{_fmt(r.car_pct_of_t)} ({_fmt(r.car_pct_of_t_ci_low)}-{_fmt(r.car_pct_of_t_ci_high)})" \
        if r.status == "ok" else "-"
    return {"sample_id": r.sample_id, "anchor": _anchor(r.sample_id), "patient_id": r.patient_id or "",
            "collection_date": r.collection_date or "", "sample_type": r.sample_type or "", "status": r.status,
            "error": r.error or "", "t_cells": _fmt(r.t_cells, "{:d}"), "car_pct": ci,
            "car_ratio": _fmt(r.car_cd4_cd8_ratio, "{:.2f}") if getattr(r, "car_status", "ok") == "ok" else "-",
            "car_predominance": r.car_predominance or "",
            "carneg_ratio": _fmt(r.carneg_cd4_cd8_ratio, "{:.2f}") if r.sample_type == "csf" else "",
            "car_per_ul": _fmt(r.car_t_per_ul, "{:.0f}"), "flags": _flags(r.qc_flags), "plot": _blob(plots.get(r.sample_id)),
            "car_status": _car_status(r), "car_status_cls": {"uncertain": "bad", "not_detected": "warn"}.get(
                str(getattr(r, "car_status", "") or ""), ""), "car_reason": str(getattr(r, "car_status_reason", "") or ""),
            "car_advice": car_advice(str(getattr(r, "car_status_reason", "") or ""),
                                     str(getattr(r, "car_basis", "") or ""))}


#: A plain first line for a lab tech, from the reason of an uncertain call: (key in the reason,
#: advice without a control tube, advice when a control tube was used).
ADVICE = (("T cells; at least", "Too few T cells to call CAR positivity.", "Too few T cells to call CAR positivity."),
          ("sit just above the cut",
           "Dim stain without a clear gap: the true CAR share may be much higher. A CAR-negative control tube "
           "(FMO) stained the same way, or a brighter CAR reagent, would settle it.",
           "Dim stain without a clear gap and too few events to show how many positives hide below the cut: "
           "a larger tube or a brighter CAR reagent would settle it."),
          ("wider than the unstained control",
           "", "An unstained tube cannot set this panel's background (spillover spreading from the other stains): "
               "run an FMO control (all stains but CAR)."),
          ("does not stand for this tube",
           "", "The control tube's negatives differ from this tube's: run a control stained and acquired like it."),
          ("needed to place its percentiles",
           "Too few reference events for this subset: a CAR-negative control tube (FMO) would settle it.",
           "Too few reference events for this subset: a larger control tube would settle it."),
          ("no valley", "No clear CAR+ population and no negative reference: run a CAR-negative control tube "
                        "(FMO or pre-infusion sample) with this panel.",
           "No clear CAR+ population and the control tube cannot serve this subset: see the reason."),
          ("every event lies above", "Every T cell looks CAR+: the negatives cannot be placed without a control tube.",
           "Every T cell looks CAR+ against the control tube."))


def car_advice(reason: str, basis: str = "") -> str:
    """One plain sentence for an uncertain or not-detected call (``basis``: the call's references,
    which say whether a control tube was used)."""
    with_control = "control" in basis
    return next((with_ if with_control else without for key, without, with_ in ADVICE if key in reason), "")


def _car_status(r) -> str:
    """'ok (control)', 'not detected (internal)', 'uncertain (shape)': the call and its reference."""
    status = str(getattr(r, "car_status", "") or "")
    if not status or r.status != "ok":
        return ""
    basis = str(getattr(r, "car_basis", "") or "")
    return status.replace("_", " ") + (f" ({basis})" if basis else "")


def _day(n: int | None) -> str | None:
    """'day +14', 'day -3' (before infusion), or None."""
    return None if n is None else f"day {'+' if n >= 0 else ''}{n}"


def _risk_view(a) -> dict:
    from cytomnt.patients.risk.render import car_kinetics_lines
    def thr(f):
        return threshold_text(f.op, f.threshold, f.unit)
    lits = [f"{x['label']}: PPV {100 * x['ppv']:.0f}% ({x['ppv_counts']}, 95% CI {100 * x['ppv_ci'][0]:.0f}-"
            f"{100 * x['ppv_ci'][1]:.0f}%), NPV {100 * x['npv']:.0f}% ({x['npv_counts']}, 95% CI "
            f"{100 * x['npv_ci'][0]:.0f}-{100 * x['npv_ci'][1]:.0f}%)" for x in a.literature.values()]
    k = a.kinetics
    kin = (f"ALC peak {k['alc_max_k_per_ul']:g} x10³/µL on day {k['alc_max_day']}; day +10: "
           f"{_fmt(k.get('alc_d10_k_per_ul'), '{:g}')}; steepest rise "
           f"{_fmt(k.get('rate_of_rise_k_per_ul_per_day'), '{:+.2f}')} x10³/µL per day"
           if k.get("alc_max_k_per_ul") is not None else "")
    return {"tier": a.tier, "as_of": a.as_of, "day": _day(a.day_after_infusion), "reason": a.reason,
            "could": a.could_be_higher, "provisional": a.highest_possible_tier != a.tier,
            "highest": a.highest_possible_tier, "kinetics": kin,
            "car_kinetics": [line.strip() for line in car_kinetics_lines(a.car_kinetics)],
            "notes": list(a.notes),
            "treatments": [f"{t['date']}: {t['treatment']} {t['dose']}".rstrip() + (f" ({t['reason']})" if t["reason"] else "")
                           for t in a.treatments],
            "unknown": [{"label": f.label, "settle": f.settle} for f in a.factors if f.present is None],
            "factors": [{"label": f.label, "status": f.status, "status_cls": {"present": "yes", "absent": "no"}.get(f.status, "unknown"),
                         "value": _with_unit(f.value, f.unit), "threshold": thr(f),
                         "detail": f.detail,
                         "evidence": f.evidence, "strength": f.strength, "sources": "; ".join(f.sources)}
                        for f in a.factors],
            "warnings": [w for w in a.warnings if w.present], "literature": lits}


def _until(rows: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Samples collected on or before ``as_of`` (undated ones are kept: they have no date to cut)."""
    keep = [not (isinstance(d, str) and d and parse_date(d, "collection_date") > as_of) for d in rows.collection_date]
    return rows[pd.Series(keep, index=rows.index, dtype=bool)]     # (a patient with no tube yet: no rows, same columns)


def build_report(out: str | Path, clinical=None, labs=None, as_of=None, rules=None, alc_unit: str = "k_per_ul",
                 treatments=None) -> Path:
    """Write ``OUT/report.html`` from the results store (and clinical data and treatments, if given)."""
    from cytomnt.patients.risk import Rules, assess
    out = Path(out)
    store_path = out / "results.sqlite"
    if out.is_file():
        raise ConfigError(f"{out} is a file: give the folder of a run (the --out of `cytomnt analyze`, which holds "
                          f"results.sqlite)")
    if not store_path.exists():
        raise ConfigError(f"{out}: no results store (results.sqlite) there: give the --out folder of a "
                          f"`cytomnt analyze` run, or run one into it first")
    st = ResultStore(store_path)
    try:
        df = st.latest_rows()
        plots = st.plots()
    finally:
        st.close()
    df = df.sort_values(["patient_id", "collection_date", "sample_id"], na_position="last", kind="stable")
    rules_obj = rules if isinstance(rules, Rules) else (Rules.from_yaml(rules) if rules else Rules.default())
    data = None
    if clinical:
        flow = df.copy()
        from cytomnt.patients.clinical import prepare_flow
        data = load(clinical, labs, prepare_flow(flow, str(store_path)), alc_unit, treatments=treatments)
    if isinstance(as_of, str):
        as_of = parse_date(as_of, "--as-of")
    as_of = as_of or dt.date.today()      # the same default as `cytomnt risk`: what is known today
    samples = [_sample_view(r, plots) for r in df.itertuples(index=False)]
    pids = [p for p in dict.fromkeys(df.patient_id.fillna("")) if p]
    if data is not None:
        pids = list(dict.fromkeys(pids + sorted(data.patients)))
    patients = []
    if pids:            # matplotlib (~1 s to import) only for a report that draws a patient's charts
        from cytomnt.exports.charts import patient_charts
    for pid in pids:
        rows = _until(df[df.patient_id == pid], as_of)          # a patient's section shows what was known then
        pat = data.patients.get(pid) if data is not None else None
        risk = None
        if pat is not None:
            risk = _risk_view(assess(data, pid, as_of, rules_obj))
        labs_known = data.labs[data.labs.date <= as_of] if data is not None else None
        shown = set(rows.sample_id)
        patients.append({"id": pid, "anchor": _anchor(pid), "risk": risk,
                         "charts": patient_charts(pid, rows, labs_known, pat,
                                                  MetricSettings.from_rules(rules_obj.flow_calls),
                                                  treatments_of(data.treatments, pid, as_of) if data is not None else []),
                         "samples": [s for s in samples if s["patient_id"] == pid and s["sample_id"] in shown]})
    env = Environment(autoescape=select_autoescape(default=True))
    template = env.from_string(resources.files("cytomnt").joinpath("data/report.html.j2").read_text())
    changes = pd.read_csv(out / "changes.csv", dtype=str, keep_default_na=False).to_dict("records") \
        if (out / "changes.csv").exists() else []
    html = template.render(samples=samples, patients=patients, ruo=rules_obj.research_use if data is not None else RUO,
                           flag_legend=_flag_legend(samples), changes=changes,
                           n_samples=len(df), n_ok=int((df.status == "ok").sum()),
                           n_failed=int((df.status != "ok").sum()), version=__version__,
                           rules_version=rules_obj.version if data is not None else "", as_of=as_of,
                           errors=[s for s in samples if s["status"] != "ok"],
                           unassigned=[s for s in samples if not s["patient_id"]])
    return atomic_write(out / "report.html", html)
