"""The patient commands of ``cytomnt``: ``risk`` (one assessment per patient as of a date) and
``cohort`` (a factor's performance: 2x2 tables, landmarks, lead time, Firth models, cumulative
incidence). Thin layers over :mod:`cytomnt.patients`."""
from __future__ import annotations

import sys

from cytomnt.errors import EXIT_OK, EXIT_USAGE


def cmd_risk(a) -> int:
    import json

    from cytomnt.patients.clinical import load, parse_date
    from cytomnt.patients.risk import Rules, assess, render_text, render_timeline, timeline
    rules = Rules.from_yaml(a.rules) if a.rules else Rules.default()
    data = load(a.clinical, a.labs, a.store or a.flow, a.alc_unit, treatments=a.treatments)
    for w in data.warnings:
        print(f"cytomnt: warning: {w}", file=sys.stderr)
    as_of = parse_date(a.as_of, "--as-of") if a.as_of else None
    ids = a.patient or sorted(data.patients)
    unknown = [p for p in ids if p not in data.patients]
    if unknown:
        print(f"cytomnt: patient(s) not in {a.clinical}: {', '.join(unknown)}", file=sys.stderr)
        return EXIT_USAGE
    if a.timeline:
        tls = [timeline(data, pid, rules, as_of) for pid in ids]
        if a.json:
            print(_json([{"patient_id": t.patient_id, "steps": [s.to_dict() for s in t.steps],
                          "first_fired": {k: (v.isoformat() if v else None) for k, v in t.first_fired().items()}}
                         for t in tls]))
        else:
            print("\n".join(render_timeline(t) for t in tls))
        return EXIT_OK
    out = [assess(data, pid, as_of, rules) for pid in ids]
    if a.json:
        print(_json([x.to_dict() for x in out]))
    else:
        print("\n".join(render_text(x, evidence=not a.brief) for x in out))
    return EXIT_OK


def _json(doc) -> str:
    """JSON with null where a number is unknown (NaN and infinity are not JSON)."""
    import json
    import math

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(doc), indent=2, default=str, allow_nan=False)


def _figure_problem(path: str) -> str:
    """Why the figure cannot be written there ('' when it can)."""
    from pathlib import Path

    from cytomnt.inputs.files import out_problem
    p = Path(path)
    if p.is_dir():
        return "is a folder; give a file name, e.g. incidence.png"
    if p.suffix.lower() not in (".png", ".pdf", ".svg"):
        return "give a .png, .pdf or .svg file name"
    return out_problem(p.parent)


def _split(values) -> list[str]:
    """Repeated and comma-separated option values as one list."""
    return [s.strip() for v in (values or []) for s in str(v).split(",") if s.strip()]


def cmd_cohort(a) -> int:
    import json

    from cytomnt.patients.cohort import lead_times, read_cohort, render, render_lead, validate
    from cytomnt.patients.groups import with_patient_columns
    where = f"cohort {a.cohort}"
    df = read_cohort(a.cohort)
    factors, bys, model = list(a.factor or []), _split(a.by), _split(a.model)
    if not (factors or model or a.incidence):
        print("cytomnt: cohort needs --factor (a 2x2 table, --landmark, --lead-time), --model or --incidence",
              file=sys.stderr)
        return EXIT_USAGE
    if a.landmark:                  # options are checked before any input is read
        from cytomnt.patients.landmark import parse_days
        days = parse_days(a.landmark)
    if a.figure and _figure_problem(a.figure):
        print(f"cytomnt: --figure {a.figure}: {_figure_problem(a.figure)}", file=sys.stderr)
        return EXIT_USAGE
    needs_clinical = a.landmark or a.lead_time
    if needs_clinical and not a.clinical:
        print("cytomnt: --landmark and --lead-time evaluate each patient's factors: give --clinical and --labs "
              "(and --flow, --treatments)", file=sys.stderr)
        return EXIT_USAGE
    data = rules = None
    if a.clinical:
        from cytomnt.patients.clinical import load
        from cytomnt.patients.risk import Rules
        data = load(a.clinical, a.labs, a.flow, treatments=a.treatments)
        rules = Rules.from_yaml(a.rules) if a.rules else Rules.default()
        df = with_patient_columns(df, data)
    doc, text = {}, []
    if factors and a.landmark:
        from cytomnt.patients.landmark import landmarks, render_landmarks
        for f in factors:
            rows = landmarks(df, data, f, days, rules)
            doc.setdefault("landmarks", []).extend(r.to_dict() for r in rows)
            text.append(render_landmarks(rows))
    elif factors:
        thresholds = list(a.threshold or [])
        if thresholds and len(thresholds) != len(factors):
            print(f"cytomnt: give one --threshold per --factor ({len(factors)} factors, {len(thresholds)} "
                  f"thresholds; '-' for a 0/1 column)", file=sys.stderr)
            return EXIT_USAGE
        pairs = [(f, None if not thresholds or thresholds[i] == "-" else float(thresholds[i]))
                 for i, f in enumerate(factors)]
        results = validate(df, pairs, bys, a.op, where=where)
        doc["results"] = [r.to_dict() for r in results]
        text.append(render(results))
    if a.lead_time:
        leads = lead_times(df, data, a.lead_time, rules)
        doc["lead_time"] = [vars(x) for x in leads]
        text.append(render_lead(leads, a.lead_time))
    if model:
        from cytomnt.patients.models import firth_logistic, render_model
        fit = firth_logistic(df, model, where)
        doc["model"] = fit.to_dict()
        text.append(render_model(fit))
    if a.incidence:
        from cytomnt.patients.cohort import check_groups
        from cytomnt.patients.groups import split_numeric
        check_groups(df, bys, where)
        from cytomnt.patients.incidence import incidence_by, incidence_figure, render_incidence
        for by in bys or [None]:
            curves = incidence_by(split_numeric(df, by) if by else df, by, where)
            doc.setdefault("incidence", []).extend(
                {"by": by or "", **vars(c)} for c in curves)
            text.append(render_incidence(curves))
            if a.figure:
                fig = a.figure if len(bys) <= 1 else a.figure.replace(".png", f"_{by}.png")
                title = f"Cumulative incidence of MNT by {by}" if by else "Cumulative incidence of MNT"
                text.append(f"figure: {incidence_figure(curves, fig, title)}\n")
    if a.json:
        print(_json(doc))
    else:
        print("".join(text), end="")
    return EXIT_OK


def add_patient_commands(sub) -> None:
    """The ``risk`` and ``cohort`` sub-commands."""
    from cytomnt.patients import DERIVED
    p = sub.add_parser("risk", help="MNT risk per patient as of a date, every factor with its evidence")
    p.add_argument("--clinical", required=True, help="clinical.csv: one row per patient (README)")
    p.add_argument("--labs", help="labs.csv: patient_id, date, alc_k_per_ul")
    p.add_argument("--flow", help="samples.csv of `cytomnt analyze --manifest`")
    p.add_argument("--store", help="results.sqlite of analyze runs (all runs' samples) instead of --flow")
    p.add_argument("--as-of", help="evaluate with data dated on or before this date (YYYY-MM-DD; default today)")
    p.add_argument("--rules", help="rules YAML (default: the built-in, versioned rules)")
    p.add_argument("--patient", action="append", help="only this patient (repeatable)")
    p.add_argument("--timeline", action="store_true", help="replay each date that brought new data")
    p.add_argument("--alc-unit", default="k_per_ul", choices=["k_per_ul", "cells_per_ul", "10^9/L"],
                   help="unit of alc_k_per_ul in labs.csv (default x10^3/uL)")
    p.add_argument("--treatments", help="treatments.csv: patient_id, date, treatment, dose, reason (optional)")
    p.add_argument("--brief", action="store_true", help="leave out the evidence lines")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_risk)
    p = sub.add_parser("cohort", help="a risk factor on a cohort: PPV/NPV with exact intervals, landmarks, "
                                      "Firth models, cumulative incidence")
    p.add_argument("cohort", help="CSV: one row per patient, factor columns, mnt (0/1), optional mnt_onset_day, "
                                  "followup_day")
    p.add_argument("--factor", action="append", help="factor column (repeatable); with --landmark a rules factor id")
    p.add_argument("--threshold", action="append", help="present when value > threshold, one per --factor ('-' for 0/1)")
    p.add_argument("--op", default=">", choices=[">", ">=", "<", "<="], help="comparison with the threshold (default >)")
    p.add_argument("--by", action="append", help="group column(s), repeatable or comma-separated (e.g. study); "
                   "with --clinical also " + ", ".join(DERIVED) + " (measurements split at the median)")
    p.add_argument("--landmark", metavar="DAY[,DAY]", help="the rules factor as known on each day after infusion, "
                   "against MNT after it (needs --clinical, --labs)")
    p.add_argument("--lead-time", metavar="FACTOR_ID", help="days from first alert of a rules factor (or tier_high) to onset")
    p.add_argument("--model", action="append", metavar="COL[,COL]",
                   help="Firth logistic regression of mnt on these columns (profile-likelihood 95%% intervals)")
    p.add_argument("--incidence", action="store_true", help="cumulative incidence of MNT by day, per --by group "
                   "(needs mnt_onset_day and followup_day; pip install 'cytomnt[survival]')")
    p.add_argument("--figure", metavar="F.png", help="with --incidence: the curves as a figure")
    p.add_argument("--clinical")
    p.add_argument("--labs")
    p.add_argument("--flow")
    p.add_argument("--treatments")
    p.add_argument("--rules")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cohort)
