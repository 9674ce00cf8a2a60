"""The rules file: versioned factors (kind, threshold, sources, evidence) and tier rules."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cytomnt.inputs.rulesfile import BUILT_IN_SOURCE, RulesError, built_in_text, rules_mapping
from cytomnt.patients.risk import logic
from cytomnt.patients.risk.factors import OPS, known_kinds

TIERS = ("low", "elevated", "high")


@dataclass(frozen=True)
class FactorRule:
    id: str
    label: str
    kind: str
    op: str
    threshold: object
    params: dict = field(default_factory=dict)
    unit: str = ""
    sources: tuple[str, ...] = ()
    evidence: str = ""
    strength: str = ""


@dataclass(frozen=True)
class TierRule:
    tier: str
    when: str
    reason: str


@dataclass
class Rules:
    version: str
    factors: list[FactorRule]
    warnings: list[FactorRule]
    tiers: list[TierRule]
    research_use: str
    literature: dict
    source: str
    flow_calls: dict = field(default_factory=dict)    # thresholds of the flow calls (metrics.MetricSettings)

    @classmethod
    def default(cls) -> "Rules":
        """The built-in rules (parsed once per process)."""
        return _default_rules()

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Rules":
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise RulesError(f"rules file {path}: cannot be read ({exc.strerror})") from exc
        return cls.from_text(text, str(path))

    @classmethod
    def from_text(cls, text: str, source: str) -> "Rules":
        data = rules_mapping(text, source)
        kinds = set(known_kinds())

        def factor(entry, i, section):
            where = f"rules file {source}, {section} #{i + 1} ({entry.get('id', '?')})"
            for key in ("id", "label", "kind", "op"):
                if key not in entry:
                    raise RulesError(f"{where}: missing '{key}'")
            if entry["kind"] not in kinds:
                raise RulesError(f"{where}: unknown kind '{entry['kind']}'; known: {', '.join(sorted(kinds))}")
            if entry["op"] not in OPS:
                raise RulesError(f"{where}: unknown op '{entry['op']}'; use one of {', '.join(OPS)}")
            return FactorRule(str(entry["id"]), str(entry["label"]), str(entry["kind"]), str(entry["op"]),
                              entry.get("threshold"), dict(entry.get("params") or {}), str(entry.get("unit", "")),
                              tuple(entry.get("sources") or ()), " ".join(str(entry.get("evidence", "")).split()),
                              str(entry.get("strength", "")))
        factors = [factor(e, i, "factors") for i, e in enumerate(data["factors"])]
        warns = [factor(e, i, "warnings") for i, e in enumerate(data.get("warnings") or [])]
        ids = [f.id for f in factors + warns]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise RulesError(f"rules file {source}: factor id(s) defined twice: {', '.join(sorted(dup))}")
        tiers = []
        for i, t in enumerate(data["tiers"]):
            where = f"rules file {source}, tiers #{i + 1}"
            if t.get("tier") not in TIERS:
                raise RulesError(f"{where}: tier must be one of {', '.join(TIERS)}, not {t.get('tier')!r}")
            expr = " ".join(str(t.get("when", "")).split())
            try:
                unknown = logic.names(expr) - {f.id for f in factors} - {"True", "False"}
            except logic.RuleSyntaxError as exc:
                raise RulesError(f"{where}: {exc}") from exc
            if unknown:
                raise RulesError(f"{where}: unknown factor(s) {', '.join(sorted(unknown))} in '{expr}'")
            tiers.append(TierRule(t["tier"], expr, str(t.get("reason", ""))))
        flow = data.get("flow_calls") or {}
        return cls(str(data["version"]), factors, warns, tiers,
                   " ".join(str(data.get("research_use", "")).split()), dict(data.get("literature") or {}), source,
                   dict(flow))


@lru_cache(maxsize=1)
def _default_rules() -> Rules:
    return Rules.from_text(built_in_text(), BUILT_IN_SOURCE)
