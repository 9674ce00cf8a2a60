"""MNT risk assessment of a patient as of a date: every factor with its value, threshold and
evidence, the tier with the rule that gave it, and the literature's PPV/NPV beside it."""
from __future__ import annotations

import datetime as dt
import inspect
import math
from dataclasses import asdict, dataclass, field

from cytomnt.patients import kinetics
from cytomnt.patients.clinical import ClinicalData
from cytomnt.patients.expansion import patient_expansion
from cytomnt.patients.treatments import suppression_notes, treatments_of
from cytomnt.patients.risk import logic
from cytomnt.patients.risk.factors import FactorContext, Verdict, compare, get_kind
from cytomnt.patients.risk.rules import TIERS, FactorRule, Rules
from cytomnt.sample.metrics import exact_ci


@dataclass
class FactorResult:
    """One factor for one patient as of a date."""

    id: str
    label: str
    value: object
    op: str
    threshold: object
    unit: str
    present: bool | None          # None: unknown (no data yet, or not measurable)
    detail: str
    sources: tuple[str, ...]
    evidence: str
    strength: str
    settle: str = ""              # for an unknown factor: what data would decide it

    @property
    def status(self) -> str:
        return "unknown" if self.present is None else ("present" if self.present else "absent")


@dataclass
class RiskAssessment:
    """The evaluation of one patient as of a date (no data after it is used)."""

    patient_id: str
    as_of: dt.date
    day_after_infusion: int | None
    tier: str
    reason: str
    factors: list[FactorResult]
    warnings: list[FactorResult]
    could_be_higher: list[str]     # tier rules that unknown factors could still make hold
    rules_version: str
    literature: dict
    research_use: str
    data_used: dict = field(default_factory=dict)
    kinetics: dict = field(default_factory=dict)   # ALC peak (day 0-30) and day, day +10, steepest rise
    highest_possible_tier: str = ""                # the highest tier the unknown factors could still give
    car_kinetics: dict = field(default_factory=dict)   # all|cd4|cd8 -> expansion.Expansion as a dict
    treatments: list = field(default_factory=list)     # interventions on or before as_of (treatments.csv)
    notes: list = field(default_factory=list)          # what may bend the values (e.g. preemptive dexamethasone)

    def factor(self, fid: str) -> FactorResult:
        return next(f for f in self.factors + self.warnings if f.id == fid)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["as_of"] = self.as_of.isoformat()
        for tr in d["treatments"]:
            tr["date"] = tr["date"].isoformat()
        for f in d["factors"] + d["warnings"]:
            f["status"] = "unknown" if f["present"] is None else ("present" if f["present"] else "absent")
            if isinstance(f["value"], float) and not math.isfinite(f["value"]):
                f["value"] = None
        return d


def literature_performance(rules: Rules) -> dict:
    """PPV and NPV (with exact 95% CIs) of each pooled literature entry in the rules file."""
    out = {}
    for key, lit in rules.literature.items():
        pos, neg = lit["positives"], lit["negatives"]
        ppv_lo, ppv_hi = exact_ci(pos["mnt"], pos["n"])
        npv_k = neg["n"] - neg["mnt"]
        npv_lo, npv_hi = exact_ci(npv_k, neg["n"])
        out[key] = {"label": lit.get("label", key), "sources": list(lit.get("sources", [])),
                    "ppv": pos["mnt"] / pos["n"], "ppv_ci": [ppv_lo, ppv_hi], "ppv_counts": f"{pos['mnt']}/{pos['n']}",
                    "npv": npv_k / neg["n"], "npv_ci": [npv_lo, npv_hi], "npv_counts": f"{npv_k}/{neg['n']}"}
    return out


def _evaluate_factor(rule: FactorRule, ctx: FactorContext) -> FactorResult:
    fn = get_kind(rule.kind)
    params = dict(rule.params)
    accepts = inspect.signature(fn).parameters
    for key, val in (("threshold", rule.threshold), ("op", rule.op)):
        if key in accepts and key not in params:
            params[key] = val               # kinds that judge the threshold themselves (windows, intervals)
    out = fn(ctx, **params)
    value, detail = out[0], out[1]
    present = compare(value, rule.op, rule.threshold)
    settle = (out[2] if len(out) > 2 else "") if present is None else ""
    if isinstance(value, Verdict):
        value = value.value
    return FactorResult(rule.id, rule.label, value, rule.op, rule.threshold, rule.unit, present, detail,
                        rule.sources, rule.evidence, rule.strength, settle or ("" if present is not None else
                                                                               "the missing data above"))


def assess(data: ClinicalData, patient_id: str, as_of: dt.date | None = None, rules: Rules | None = None) -> RiskAssessment:
    """Assess one patient using only data dated on or before ``as_of`` (default: today)."""
    rules = rules or Rules.default()
    as_of = as_of or dt.date.today()
    if patient_id not in data.patients:
        raise KeyError(f"patient '{patient_id}' is not in the clinical file")
    p = data.patients[patient_id]
    alc = kinetics.series(data.labs, patient_id, p.infusion_date, as_of) if p.infusion_date else []
    ctx = FactorContext(p, as_of, alc, data.flow)
    factors = [_evaluate_factor(r, ctx) for r in rules.factors]
    warns = [_evaluate_factor(r, ctx) for r in rules.warnings]
    tier, reason, could = decide_tier(factors, rules)
    day = (as_of - p.infusion_date).days if p.infusion_date else None
    n_flow = len(ctx.flow_samples("pb")) + len(ctx.flow_samples("csf"))
    highest = max([tier] + [c.split(":")[0] for c in could], key=TIERS.index)
    expansion = patient_expansion(ctx.flow_samples("pb"), p.infusion_date)
    given = treatments_of(data.treatments, patient_id, as_of)
    return RiskAssessment(patient_id, as_of, day, tier, reason, factors, warns, could, rules.version,
                          literature_performance(rules), rules.research_use,
                          {"alc_values": len(alc), "flow_samples": n_flow}, alc_kinetics(alc), highest,
                          {k: v.to_dict() for k, v in expansion.items()}, given, suppression_notes(given))


def decide_tier(factors: list[FactorResult], rules: Rules) -> tuple[str, str, list[str]]:
    """(tier, reason, higher tier rules that unknown factors could still make hold).

    The first rule that holds gives the tier; its reason names the factors present (``{present}``
    in the rules file). When no rule above the last holds, the reason says whether every factor
    is known to be absent or which are still unknown."""
    facts = {f.id: f.present for f in factors}
    present = ", ".join(f.id for f in factors if f.present) or "none"
    unknown = [f.id for f in factors if f.present is None]
    tier, reason, could = "low", "no tier rule holds", []
    for t in rules.tiers:
        v = logic.evaluate(t.when, facts)
        if v is True:
            tier, reason = t.tier, t.reason.replace("{present}", present)
            break
        if v is None:
            needs = sorted(logic.names(t.when) & set(unknown))
            could.append(f"{t.tier}: {t.reason.replace('{present}', 'one of the factors now unknown')}"
                         f" (if {', '.join(needs)} {'turns' if len(needs) == 1 else 'turn'} out present)")
    if tier == rules.tiers[-1].tier and unknown:
        reason = (f"no risk factor known to be present; {len(unknown)} still unknown "
                  f"({', '.join(unknown)}), so this tier can still rise")
    rank = TIERS.index(tier)
    return tier, reason, [c for c in could if TIERS.index(c.split(":")[0]) > rank]


def alc_kinetics(points: list[kinetics.AlcPoint]) -> dict:
    """ALC peak in days 0-30 and its day, ALC on day +10 (±1 day), steepest rise (x10^3/uL per day)."""
    peak = kinetics.alc_max(points)
    d10 = kinetics.alc_on_day(points, 10, 1)
    return {"alc_max_k_per_ul": peak.alc_k_per_ul if peak else None, "alc_max_day": peak.day if peak else None,
            "alc_d10_k_per_ul": d10.alc_k_per_ul if d10 else None,
            "rate_of_rise_k_per_ul_per_day": kinetics.rate_of_rise(points)}


#: Days after infusion whose end closes a rule's window (days 0-14 and 0-30, day 10 +/- 1, the
#: CRS/ICANS window): a replay steps on the next day, when "not yet" may become "absent".
WINDOW_ENDS = (11, 14, 30)


def event_dates(data: ClinicalData, patient_id: str) -> list[dt.date]:
    """Dates that brought new data for a patient: infusion, each ALC, each flow sample, dated
    CRS/ICANS/ferritin, and the days after rule windows close."""
    p = data.patients[patient_id]
    dates = set()
    if p.infusion_date:
        dates.add(p.infusion_date)
        dates.update(d for d in (p.crs_date, p.icans_date, p.ferritin_date) if d)
        dates.update(p.infusion_date + dt.timedelta(days=n + 1) for n in WINDOW_ENDS)
    dates.update(d for d in data.labs[data.labs.patient_id == patient_id].date)
    if data.flow is not None and not data.flow.empty:
        dates.update(d for d in data.flow[data.flow.patient_id == patient_id].collection_date if d is not None)
    if len(data.treatments):
        dates.update(data.treatments[data.treatments.patient_id == patient_id].date)
    return sorted(dates)


@dataclass
class Timeline:
    """A patient's assessments replayed on each date that brought new data."""

    patient_id: str
    steps: list[RiskAssessment]

    def first_fired(self) -> dict[str, dt.date | None]:
        """For each factor (and the tiers), the first as-of date on which it was present."""
        out: dict[str, dt.date | None] = {}
        if not self.steps:
            return out
        for f in self.steps[0].factors + self.steps[0].warnings:
            out[f.id] = next((s.as_of for s in self.steps if s.factor(f.id).present), None)
        for t in TIERS[1:]:
            out[f"tier_{t}"] = next((s.as_of for s in self.steps if TIERS.index(s.tier) >= TIERS.index(t)), None)
        return out


def timeline(data: ClinicalData, patient_id: str, rules: Rules | None = None, until: dt.date | None = None) -> Timeline:
    rules = rules or Rules.default()
    dates = [d for d in event_dates(data, patient_id) if until is None or d <= until]
    return Timeline(patient_id, [assess(data, patient_id, d, rules) for d in dates])


def evaluate(clinical, labs=None, flow=None, as_of: dt.date | str | None = None, rules=None,
             patients: list[str] | None = None, alc_unit: str = "k_per_ul", treatments=None) -> list[RiskAssessment]:
    """Python face of ``cytomnt risk``: read the inputs and assess every (or the named) patient."""
    from cytomnt.patients.clinical import load, parse_date
    from cytomnt.patients.risk.rules import Rules
    if isinstance(as_of, str):
        as_of = parse_date(as_of, "as-of date")
    rules = rules if isinstance(rules, Rules) else (Rules.from_yaml(rules) if rules else Rules.default())
    data = clinical if isinstance(clinical, ClinicalData) else load(clinical, labs, flow, alc_unit, treatments=treatments)
    ids = patients or sorted(data.patients)
    return [assess(data, pid, as_of, rules) for pid in ids]
