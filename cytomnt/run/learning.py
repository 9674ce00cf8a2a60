"""Cuts learned before the per-sample work: from a negative-control tube (``--negative-control``)
and, for template rows marked ``learn: batch``, once from events pooled over the run's tubes."""
from __future__ import annotations

from gating import FcsReadError, read_fcs
from gating.auto.engine import GatingError, LearnedCuts
from gating.auto.template import Template
from gating.preprocess import CompensationError, compensation_for

from cytomnt.errors import ConfigError
from cytomnt.inputs.panel import PanelError, channels_of
from cytomnt.inputs.strategies import StrategyChoice
from cytomnt.sample.autogate import batch_cuts, control_cuts
from cytomnt.sample.gate import GateSettings


def control_cuts_from(control, gating: GateSettings, spillover: str | None, strategy: StrategyChoice) -> LearnedCuts:
    """Cuts of the template's ``control`` rows, learned on ``control`` (a path or FlowKit Sample)."""
    from pathlib import Path
    if not hasattr(control, "get_events") and not Path(control).is_file():
        what = "a folder, not a file" if Path(control).is_dir() else "not a file (it does not exist)"
        raise ConfigError(f"negative control {control}: {what}; give one FCS file of a CAR-negative tube "
                          f"(FMO, a stained CAR-negative sample, or an unstained tube)")
    try:
        sample = control if hasattr(control, "get_events") else read_fcs(control).sample
        name = str(getattr(control, "id", control))
        rp = gating.panel.resolve(channels_of(sample, gating.panel), name)
        comp = compensation_for(sample, spillover, name)
        return control_cuts(sample, rp, comp, gating.engine, strategy.load())
    except (FcsReadError, PanelError, CompensationError, GatingError, ValueError, OSError) as exc:
        raise ConfigError(f"negative control: {exc}") from exc


def _loader(item, gating: GateSettings, spillover: str | None):
    """A callable reading one input for batch learning: (sample, resolved panel, compensation)."""
    def load():
        sample = item if hasattr(item, "get_events") else read_fcs(item).sample
        name = str(getattr(item, "id", item))
        return (sample, gating.panel.resolve(channels_of(sample, gating.panel), name, strict=gating.strict_panel),
                compensation_for(sample, spillover, name))
    return load


def learn_batch_cuts(items, gating: GateSettings, spillover: str | None, strategy: StrategyChoice,
                     learned: LearnedCuts) -> LearnedCuts:
    """``learned`` with the template's ``learn: batch`` cuts learned once from all inputs (those
    not given already)."""
    template = strategy.load()
    if not isinstance(template, Template):
        return learned
    todo = [g.population for g in template.gates if g.learn == "batch" and g.population not in learned.cuts]
    if not todo:
        return learned
    return batch_cuts([_loader(i, gating, spillover) for i in items], gating.engine, template, learned)
