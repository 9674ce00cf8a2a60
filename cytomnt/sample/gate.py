"""Step 4 of a sample: gate it. The built-in or a user's template finds its gates from the data;
a Gating-ML, openCyto or FlowJo strategy is applied as given. Either way the result is the same
shape: every population with its events, the samples.csv counts, and the FlowKit strategy that
produced them (exported as Gating-ML)."""
from __future__ import annotations

from dataclasses import dataclass, field

from gating.auto.bias import pregate_effects
from gating.auto.engine import EngineSettings, LearnedCuts
from gating.auto.template import Template
from gating.formats.strategy import Population, WorkspaceStrategies, gate_sample

from cytomnt.inputs.gatemap import counts_from
from cytomnt.inputs.panel import Panel, ResolvedPanel, channels_of
from cytomnt.sample.autogate import POPULATIONS, auto_gate
from cytomnt.sample.carcall import SUBSETS as CAR_SUBSETS

#: samples.csv count columns filled from the gating.
GATED_COUNTS = ("events", "qc_events_removed", "singlets", "live", "lymphocytes", "t_cells", "t_cd4", "t_cd8", "car_t", "car_cd4",
                "car_cd8", "beads")


@dataclass(frozen=True)
class GateSettings:
    """What gating a tube takes besides the strategy: the panel, whether every role it names must
    be found (the built-in strategy), the engine's settings, and the user's gate map."""

    panel: Panel
    strict_panel: bool = False
    engine: EngineSettings = field(default_factory=EngineSettings)
    gate_map: dict = field(default_factory=dict)


@dataclass
class Gated:
    """One sample gated: populations (tree order), counts by samples.csv column, the strategy."""

    populations: list[Population]
    counts: dict
    strategy: object                    # flowkit.GatingStrategy
    transform: str                      # what samples.csv's ``transform`` column says
    panel: ResolvedPanel
    flags: list[str] = field(default_factory=list)
    workspace_sample: str | None = None  # the sample id a workspace keys its custom gates by
    calls: dict = field(default_factory=dict)   # population -> gating.auto.positivity.PositiveCall (templates)
    pregates: list = field(default_factory=list)  # gating.auto.bias.PregateEffect of each gate above the T cells


def gate(sample, comp, strategy, settings: GateSettings, name: str, sample_id: str,
         learned: LearnedCuts | None = None, on_gate=None) -> Gated:
    """Gate ``sample`` with a loaded strategy (``StrategyChoice.load``); ``learned``: the cuts
    learned for it (control tube, batch). ``on_gate(key, mask)`` hears of each of a user
    strategy's gates as it is done (statistics start while gating goes on)."""
    if isinstance(strategy, Template):
        return _gate_template(sample, comp, strategy, settings, name, learned if learned is not None else LearnedCuts())
    return _gate_user(sample, strategy, settings, name, sample_id, on_gate)


def _gate_template(sample, comp, template: Template, settings: GateSettings, name: str, learned) -> Gated:
    """Cuts found in this tube's data (or learned from a control or the batch)."""
    rp = settings.panel.resolve(channels_of(sample, settings.panel), name, strict=settings.strict_panel)
    run = auto_gate(sample, rp, comp, settings.engine, learned, template)
    b = run.builder
    pops = []
    for gate_name, gate_path in run.strategy.get_gate_ids():
        parent = gate_path[-1]
        pops.append(Population(gate_name, tuple(gate_path), b.count(gate_name),
                               b.count(parent) if parent != "root" else len(b.events), b.members(gate_name)))
    counts = {k: (b.count(k) if b.has(k) and k not in run.skipped else None) for k in POPULATIONS}
    counts["events"] = int(sample.event_count)
    counts["qc_events_removed"] = int(sample.event_count) - b.count("acquired") if b.has("acquired") else None
    flags = [f"GATE_SKIPPED:{d}" for p, dims in run.skipped.items() for d in dims if p != "beads"] + run.flags
    # CD4 and CD8 CAR T cells only: double-negative "T cells" judged without pre-gates include
    # autofluorescent myeloid cells, which look positive in every channel
    effects = pregate_effects(b, "t_cells", [p for p in ("car_cd4", "car_cd8") if b.has(p)]) if b.has("t_cells") else []
    return Gated(pops, counts, run.strategy, run.transform_text, rp, flags, calls=dict(run.calls), pregates=effects)


def _gate_user(sample, strategy_src, settings: GateSettings, name: str, sample_id: str, on_gate=None) -> Gated:
    """A user's gates, evaluated with FlowKit's semantics; the gate map says which is which."""
    rp = settings.panel.resolve(channels_of(sample, settings.panel), name, strict=False)
    workspace = isinstance(strategy_src, WorkspaceStrategies)
    fil = str(sample.get_metadata().get("fil", "") or "").strip() if workspace else ""
    strategy = strategy_src.for_file(name, fil) if workspace else strategy_src
    pops = gate_sample(strategy, sample, on_gate=on_gate)
    if workspace:                  # the helpers cytomnt wrote into a workspace are gated, not reported
        hidden = strategy_src.hidden_for(name, fil)
        pops = [p for p in pops if (p.name, tuple(p.path)) not in hidden]
    counts, flags = counts_from(pops, settings.gate_map, int(sample.event_count), name)
    transform = "; ".join(sorted({type(x).__name__ for x in strategy.transformations.values()})) or "none"
    return Gated(pops, counts, strategy, transform, rp, flags, sample_id if workspace else None)
