"""Cuts learned before the per-sample work: from a negative-control tube (``--negative-control``)
and, for template rows marked ``learn: batch``, once from events pooled over the run's tubes."""
from __future__ import annotations

from gating import FcsReadError, read_fcs
from gating.auto.engine import GatingError
from gating.preprocess import CompensationError, compensation_for
from gating.auto.template import Template

from cytomnt.sample.autogate import batch_cuts, control_cuts
from cytomnt.errors import ConfigError
from cytomnt.inputs.panel import PanelError, channels_of
from cytomnt.inputs.strategies import strategy_for


def control_cuts_from(control, cfg):
    """Cuts of the template's ``control`` rows, learned on ``control`` (a path or FlowKit Sample)."""
    from pathlib import Path
    if not hasattr(control, "get_events") and not Path(control).is_file():
        what = "a folder, not a file" if Path(control).is_dir() else "not a file (it does not exist)"
        raise ConfigError(f"negative control {control}: {what}; give one FCS file of a CAR-negative tube "
                          f"(FMO, a stained CAR-negative sample, or an unstained tube)")
    try:
        sample = control if hasattr(control, "get_events") else read_fcs(control).sample
        name = str(getattr(control, "id", control))
        rp = cfg.panel.resolve(channels_of(sample, cfg.panel), name)
        comp = compensation_for(sample, cfg.spillover, name)
        return control_cuts(sample, rp, comp, cfg.auto, strategy_for(cfg))
    except (FcsReadError, PanelError, CompensationError, GatingError, ValueError, OSError) as exc:
        raise ConfigError(f"negative control: {exc}") from exc


def _loader(item, cfg):
    """A callable reading one input for batch learning: (sample, resolved panel, compensation)."""
    def load():
        sample = item if hasattr(item, "get_events") else read_fcs(item).sample
        name = str(getattr(item, "id", item))
        return (sample, cfg.panel.resolve(channels_of(sample, cfg.panel), name, strict=cfg.strategy == "auto"),
                compensation_for(sample, cfg.spillover, name))
    return load


def learn_batch_cuts(items, cfg) -> None:
    """Learn the template's ``learn: batch`` cuts once from all inputs (unless already given)."""
    template = strategy_for(cfg)
    if not isinstance(template, Template):
        return
    todo = [g.population for g in template.gates if g.learn == "batch" and g.population not in cfg.learned.cuts]
    if todo:
        cfg.learned = batch_cuts([_loader(i, cfg) for i in items], cfg.auto, template, cfg.learned)
