"""Cuts learned before the per-sample work: once for a whole batch (a template row's
``learn: batch``: pooled over the batch's tubes) or from a negative-control tube (a row's
``control`` method), kept in raw compensated units in a :class:`gating.auto.engine.LearnedCuts`."""
from __future__ import annotations

import flowkit as fk
import numpy as np
import pandas as pd

from gating.auto import methods as registry
from gating.auto.build import StrategyBuilder
from gating.auto.engine import EngineSettings, GatingError, LearnedCuts, MethodContext, TemplateRun, run_template
from gating.auto.netcount import ReferenceTail
from gating.auto.positivity import LOWER_PERCENTILES
from gating.auto.template import GateSpec, Template
from gating.preprocess import Compensation, compensated_events, estimate_logicle_w

#: Events kept per tube when pooling a batch to learn a cut.
POOL_PER_TUBE = 20_000
#: A control population needs this many events for a cut (99.5th percentile: ~0.5 events above).
MIN_CONTROL_EVENTS = 100
#: A control whose row parent holds less than this share of the ``unstained`` population is an
#: unstained tube (its stained populations cannot be gated), not merely a small stained one.
UNSTAINED_SHARE = 0.01


def _raw_values(run: TemplateRun, sample: fk.Sample, comp: Compensation, population: str, channels: list[str],
                limit: int | None, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Raw compensated values of a population's events (optionally a random subset of ``limit``)."""
    mask = run.builder.members(population)
    idx = np.flatnonzero(mask)
    if limit is not None and idx.size > limit:
        idx = np.sort(rng.choice(idx, limit, replace=False))
    events = compensated_events(sample, comp)
    return {ch: events[idx, sample.get_channel_index(ch)].astype(float) for ch in channels}


def learn_from_control(template: Template, control: fk.Sample, resolve, comp: Compensation,
                       settings: EngineSettings = EngineSettings()) -> LearnedCuts:
    """Cuts and references for every row with a ``control`` method, learned on a negative control.

    The control is gated with the template up to the row's parent; the row's control method
    (e.g. a high percentile) runs on the control's events there; the cut is kept in raw units,
    with the control's highest values (the reference :mod:`gating.auto.netcount` counts against).
    A stained control (FMO, or a full stain of a negative sample) gives each row its own
    population; where the parent is nearly empty (an unstained tube: no T cells to gate), the
    row's ``control: {unstained: POPULATION}`` names the control's events to take instead, as an
    autofluorescence reference that does not carry the stained tube's spillover spreading.
    """
    learned = LearnedCuts()
    too_few = []
    for spec in template.gates:
        if not spec.control:
            continue
        run = run_template(template, control, resolve, comp, settings, learned=learned, stop_before=spec.population)
        chans = run.channels[spec.population]
        source, kind = spec.parent, "control"
        n = run.builder.count(source)
        fallback = spec.control.get("unstained")
        if n < MIN_CONTROL_EVENTS and fallback and run.builder.has(fallback) \
                and run.builder.count(fallback) >= MIN_CONTROL_EVENTS \
                and n < UNSTAINED_SHARE * run.builder.count(fallback):      # unstained: (almost) nothing gated
            source, kind = fallback, "unstained control"
            n = run.builder.count(source)
        if n < MIN_CONTROL_EVENTS:       # this population is then called against the next reference
            too_few.append(f"'{spec.parent}' has {n} events ({template.where(spec)})")
            learned.unusable[spec.population] = (f"control {control.id} has {n} '{spec.parent}' events, "
                                                 f"{MIN_CONTROL_EVENTS} needed")
            continue
        ctrl_spec = GateSpec(spec.population, source, spec.dims, spec.control["method"],
                             dict(spec.control.get("args") or {}), line=spec.line)
        ctx = MethodContext(run, ctrl_spec, chans, None, None)
        out = registry.get(ctrl_spec.method)(ctx, **ctrl_spec.args)
        learned.cuts[spec.population] = _raw_cuts(ctx, out)
        what = "unstained, autofluorescence of" if kind != "control" else "on"
        learned.source[spec.population] = (f"control {control.id}: {ctrl_spec.method} "
                                           f"{dict(ctrl_spec.args)} {what} {n} '{source}' events")
        if len(chans) == 1 and chans[0] in out.cuts:     # the control's own reference behind the cut
            raw = _raw_values(run, control, comp, source, chans, None, np.random.default_rng(0))[chans[0]]
            learned.reference[spec.population] = _control_reference(raw, ctx.to_raw(0, out.cuts[chans[0]].value),
                                                                    kind, source)
    if too_few and not learned.cuts:
        raise GatingError(f"control {control.id}: too few events to learn any cut (at least {MIN_CONTROL_EVENTS} "
                          f"needed): {'; '.join(too_few)}")
    return learned


def _control_reference(raw: np.ndarray, cut: float, kind: str, population: str) -> dict:
    """What the per-sample call needs of a control population (raw units): its size, the events at or
    above the cut, its highest values, its median, 10th and lower percentiles, its kind and its name."""
    tail = ReferenceTail.of(population, raw)
    return {"n": int(raw.size), "above": int(np.count_nonzero(raw >= cut)), "kind": kind, "population": population,
            "median": float(np.median(raw)), "p10": float(np.percentile(raw, 10)),
            "lower": [float(v) for v in np.percentile(raw, LOWER_PERCENTILES)], "tail": [float(v) for v in tail.top]}


def learn_batch(template: Template, tubes, settings: EngineSettings = EngineSettings(),
                learned: LearnedCuts | None = None, per_tube: int = POOL_PER_TUBE, seed: int = 0) -> LearnedCuts:
    """Cuts for every ``learn: batch`` row, found once on events pooled from all tubes.

    ``tubes`` is a sequence of loaders, each returning ``(sample, resolve, comp)`` when called,
    so a large batch is read one tube at a time. Each tube gives up to ``per_tube`` random
    events of the row's parent population; a tube that cannot be read or gated is left out.
    """
    learned = learned or LearnedCuts()
    for spec in template.gates:
        if spec.learn != "batch":
            continue
        pooled: dict[int, list[np.ndarray]] = {}
        used = 0
        for k, load in enumerate(tubes):
            try:
                sample, resolve, comp = load()
                run = run_template(template, sample, resolve, comp, settings, learned=learned,
                                   stop_before=spec.population)
            except Exception:  # noqa: BLE001 - the tube's own analysis reports its error
                continue
            if spec.population in run.skipped or not run.channels.get(spec.population):
                continue
            chans = run.channels[spec.population]
            vals = _raw_values(run, sample, comp, spec.parent, chans, per_tube, np.random.default_rng(seed + k))
            for i, ch in enumerate(chans):
                pooled.setdefault(i, []).append(vals[ch])
            used += 1
        if not pooled:
            continue
        raw = [np.concatenate(pooled[i]) for i in sorted(pooled)]
        learned.cuts[spec.population] = _learn_on_pool(template, spec, raw, settings)
        learned.source[spec.population] = (f"batch: {spec.method} {dict(spec.args)} on "
                                           f"{len(raw[0])} pooled '{spec.parent}' events from {used} tubes")
    return learned


def _raw_cuts(ctx: MethodContext, out) -> dict[str, float]:
    """A method's cuts (keyed by channel, on the gate's scale) as raw values keyed by dim."""
    return {ctx.dim_names[ctx.channels.index(ch)]: ctx.to_raw(ctx.channels.index(ch), c.value)
            for ch, c in out.cuts.items() if ch in ctx.channels}


def _learn_on_pool(template: Template, spec: GateSpec, raw: list[np.ndarray], settings: EngineSettings) -> dict[str, float]:
    """Run a row's method on pooled raw values (on a logicle fitted to the pool); cuts back in raw units."""
    chans = [f"pool{i}" for i in range(len(raw))]
    df = pd.DataFrame({ch: v for ch, v in zip(chans, raw)})
    xforms = {}
    for ch, v in zip(chans, raw):
        top = max(262144.0, float(np.max(np.abs(v))) if v.size else 0.0)   # the pooled data's own range
        w = settings.logicle_w if settings.logicle_w is not None else estimate_logicle_w(v, top)
        xforms[ch] = fk.transforms.LogicleTransform(top, w, settings.logicle_m, 0.0)
        df[ch] = np.asarray(xforms[ch].apply(v.reshape(-1, 1))).ravel()
    b = StrategyBuilder(df, Compensation(None, "pool"), xforms, set(chans))
    b.alias(spec.parent, "root")
    run = TemplateRun(b.strategy, b, transforms=xforms, channels={spec.population: chans})
    ctx = MethodContext(run, spec, chans, None, None)
    out = registry.get(spec.method)(ctx, **spec.args)
    if not out.cuts:
        raise GatingError(f"{template.where(spec)}: method '{spec.method}' gives no cuts to learn for a batch "
                          f"(batch learning needs a cut-based method: valley, tail, percentile, quadrant ...)")
    return _raw_cuts(ctx, out)
