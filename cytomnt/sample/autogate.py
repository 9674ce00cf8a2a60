"""The CAR-T gating hierarchy, found from each sample's own data.

The hierarchy is a template (``data/car_t_template.yaml``): singlets -> leukocytes -> live ->
cd45 -> lymphocytes -> t_cells -> car_t, with CD4/CD8 quadrants of T cells and of CAR T cells
(the CAR quadrants reuse the T-cell cuts). Cuts come from each tube's density (valleys, tails
of the negative population), from a negative-control tube for the CAR cut, or, for rows
marked ``learn: batch``, once from the whole batch. The result is a FlowKit ``GatingStrategy``.
"""
from __future__ import annotations

import flowkit as fk

from gating.auto.engine import EngineSettings, LearnedCuts, TemplateRun, run_template
from gating.auto.learn import learn_batch, learn_from_control
from gating.auto.template import Dim, Template
from gating.preprocess import Compensation

from cytomnt.inputs.panel import ResolvedPanel, channels_of, match_role
from cytomnt.inputs.strategies import default_template

#: Population names the metrics read from any CAR-T template.
POPULATIONS = ("beads", "singlets", "leukocytes", "live", "cd45", "lymphocytes", "t_cells", "car_t",
               "t_cd4", "t_cd8", "car_cd4", "car_cd8")


def resolver(sample: fk.Sample, panel: ResolvedPanel):
    """Map a template dim to a channel: a role through the panel, a {channel: NAME} by $PnN/$PnS."""
    chans = channels_of(sample, panel.panel)

    def resolve(d: Dim) -> str | None:
        if d.is_channel:
            ch = match_role(f"channel {d.name}", [d.name], chans, str(sample.id))
            return ch.pnn if ch else None
        return panel.pnn(d.name)
    return resolve


def auto_gate(sample: fk.Sample, panel: ResolvedPanel, comp: Compensation, settings: EngineSettings = EngineSettings(),
              learned: LearnedCuts | None = None, template: Template | None = None,
              stop_before: str | None = None) -> TemplateRun:
    """Apply the CAR-T template (built-in unless given) to one sample."""
    return run_template(template or default_template(), sample, resolver(sample, panel), comp, settings,
                        learned=learned, stop_before=stop_before)


def control_cuts(control: fk.Sample, panel: ResolvedPanel, comp: Compensation,
                 settings: EngineSettings = EngineSettings(), template: Template | None = None) -> LearnedCuts:
    """Cuts learned from a negative-control tube (by default: CAR at the 99.5th percentile of its T cells)."""
    return learn_from_control(template or default_template(), control, resolver(control, panel), comp, settings)


def batch_cuts(loaders, settings: EngineSettings = EngineSettings(), template: Template | None = None,
               learned: LearnedCuts | None = None) -> LearnedCuts:
    """Cuts of ``learn: batch`` rows, learned once from pooled tubes.

    ``loaders``: callables returning ``(sample, resolved panel, compensation)`` for each tube.
    """
    def wrap(load):
        def inner():
            sample, panel, comp = load()
            return sample, resolver(sample, panel), comp
        return inner
    return learn_batch(template or default_template(), [wrap(ld) for ld in loaders], settings, learned)
