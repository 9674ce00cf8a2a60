"""Readable text for risk assessments and timelines (what ``cytomnt risk`` prints)."""
from __future__ import annotations

from cytomnt.patients.risk.assess import RiskAssessment, Timeline

_MARK = {True: "YES", False: "no", None: "?"}


def _fmt_value(v) -> str:
    if v is None:
        return "unknown"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _fmt_threshold(op, t, unit) -> str:
    if isinstance(t, list):
        t = "/".join(str(x) for x in t)
    return f"{op} {t}{(' ' + unit) if unit else ''}"


def render_text(a: RiskAssessment, evidence: bool = True) -> str:
    """One patient's assessment: tier and reason, each factor, warnings, literature, RUO statement."""
    n = a.day_after_infusion
    day = "" if n is None else f", day {'+' if n >= 0 else ''}{n}"
    provisional = " (provisional)" if a.highest_possible_tier and a.highest_possible_tier != a.tier else ""
    lines = [f"Patient {a.patient_id} as of {a.as_of}{day}: MNT risk tier {a.tier.upper()}{provisional}",
             f"  why: {a.reason}"]
    if a.highest_possible_tier and a.highest_possible_tier != a.tier:
        lines.append(f"  could still become {a.highest_possible_tier.upper()} once unknown factors are known:")
        lines += [f"    - {c}" for c in a.could_be_higher]
    n_alc, n_flow = a.data_used.get("alc_values", 0), a.data_used.get("flow_samples", 0)
    lines.append(f"  data used: {n_alc} ALC value{'' if n_alc == 1 else 's'}, {n_flow} flow sample{'' if n_flow == 1 else 's'} "
                 f"(nothing dated after {a.as_of}); rules {a.rules_version}")
    k = a.kinetics
    if k.get("alc_max_k_per_ul") is not None:
        rise = k.get("rate_of_rise_k_per_ul_per_day")
        lines.append(f"  ALC kinetics: peak {k['alc_max_k_per_ul']:g} x10^3/uL on day {k['alc_max_day']} (days 0-30); "
                     f"day +10: {_fmt_value(k.get('alc_d10_k_per_ul'))}; steepest rise "
                     f"{'unknown' if rise is None else f'{rise:+.2f} x10^3/uL per day'}")
    lines += car_kinetics_lines(a.car_kinetics)
    for tr in a.treatments:
        lines.append(f"  treatment: {tr['date']} {tr['treatment']} {tr['dose']}".rstrip()
                     + (f" ({tr['reason']})" if tr["reason"] else ""))
    lines += [f"  NOTE: {n}" for n in a.notes]
    lines.append("")
    lines.append(f"  {'factor':<26} {'present':<8} {'value':<10} {'threshold':<18} detail")
    for f in a.factors:
        lines.append(f"  {f.id:<26} {_MARK[f.present]:<8} {_fmt_value(f.value):<10} "
                     f"{_fmt_threshold(f.op, f.threshold, f.unit):<18} {f.detail}")
        if f.present is None and f.settle:
            lines.append(f"  {'':<26} unknown; would be settled by: {f.settle}")
        if evidence:
            lines.append(f"  {'':<26} evidence: {f.evidence} Strength: {f.strength}. Sources: {'; '.join(f.sources)}")
    for w in a.warnings:
        if w.present:
            lines.append(f"  WARNING {w.id}: {w.label}. {w.evidence}")
    for lit in a.literature.values():
        lines.append(f"  Literature, {lit['label']}: PPV {100 * lit['ppv']:.0f}% ({lit['ppv_counts']}, 95% CI "
                     f"{100 * lit['ppv_ci'][0]:.0f}-{100 * lit['ppv_ci'][1]:.0f}%), NPV {100 * lit['npv']:.0f}% "
                     f"({lit['npv_counts']}, 95% CI {100 * lit['npv_ci'][0]:.0f}-{100 * lit['npv_ci'][1]:.0f}%).")
    lines.append(f"  {a.research_use}")
    return "\n".join(lines) + "\n"


def _amount(v: float) -> str:
    """2,055 and 17,861 rather than 2055 and 1.786e+04; small values with 3 digits."""
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def car_kinetics_lines(kin: dict) -> list[str]:
    """CAR-T expansion (all, CD4, CD8): Cmax, Tmax, AUC 0-28, doubling time; shown, not tiered."""
    if not kin or not any(v.get("n_samples") for v in kin.values()):
        return []
    lines = ["  CAR-T kinetics (blood, cells/uL; shown, not tiered):"]
    first_note = (kin.get("all") or {}).get("note", "")
    for name, k in kin.items():
        if not k.get("n_samples"):
            continue
        auc = k.get("auc_0_28")
        dbl = k.get("doubling_time_days")
        share = k.get("car_pct_of_alc_at_cmax")
        lines.append(f"    {name:<4} Cmax {_amount(k['cmax_per_ul'])} on day {k['tmax_day']}"
                     + (f" ({share:.1f}% of ALC)" if share is not None else "")
                     + f"; AUC 0-28 {'unknown' if auc is None else f'{_amount(auc)} cells/uL x days'}"
                     + f"; doubling time {'unknown' if dbl is None else f'{dbl:.2g} days'}; {k['n_samples']} samples"
                     + (f" ({k['note']})" if k.get("note") and (name == "all" or k["note"] != first_note) else ""))
    return lines


def render_timeline(t: Timeline) -> str:
    """Each date that brought new data, the tier then, and which factors were present."""
    if not t.steps:
        return f"Patient {t.patient_id}: no dated data\n"
    ids = [f.id for f in t.steps[0].factors]
    short = {i: f"f{k + 1}" for k, i in enumerate(ids)}
    head = f"{'date':<10} {'day':>4} {'tier':<9} " + " ".join(f"{short[i]:>3}" for i in ids)
    lines = [f"Patient {t.patient_id}: timeline (Y present, . absent, ? unknown)", head]
    for s in t.steps:
        marks = " ".join(f"{({True: 'Y', False: '.', None: '?'}[s.factor(i).present]):>3}" for i in ids)
        lines.append(f"{s.as_of!s:<10} {s.day_after_infusion if s.day_after_infusion is not None else '':>4} {s.tier:<9} {marks}")
    lines.append("columns: " + ", ".join(f"{short[i]}={i}" for i in ids))
    fired = ", ".join(f"{k} {v}" for k, v in t.first_fired().items() if v is not None)
    lines.append("first fired: " + (fired or "none (no factor was present on any date)"))
    return "\n".join(lines) + "\n"
