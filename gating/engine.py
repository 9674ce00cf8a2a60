"""Apply a gating template to a sample: each row's method looks at its parent population and
returns FlowKit gates; the result is an ordinary ``GatingStrategy`` (exportable as Gating-ML).

Cuts can be learned once for a whole batch (``learn: batch``: pooled over the batch's tubes)
or from a negative-control tube (a row's ``control`` method); learned cuts are kept in raw
(compensated, untransformed) units in a :class:`LearnedCuts`, written with the run so it can be
repeated, and mapped onto each tube's own transform when applied.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import flowkit as fk
import numpy as np
import pandas as pd
import yaml

from . import methods as registry
from .build import StrategyBuilder
from .files import atomic_write
from .finders import Cut
from .preprocess import (LOGICLE_M, Compensation, compensated_events, describe_transform, estimate_logicle_w,
                         logicle_for, processed_events)
from .template import Dim, GateSpec, Template

#: Events kept per tube when pooling a batch to learn a cut.
POOL_PER_TUBE = 20_000
#: A control population needs this many events for a cut (99.5th percentile: ~0.5 events above).
MIN_CONTROL_EVENTS = 100


class GatingError(ValueError):
    """A template cannot be applied to a sample (e.g. a required dimension is absent)."""


@dataclass(frozen=True)
class EngineSettings:
    """Transform of fluorescence channels: logicle, width from the data unless ``logicle_w`` is set."""

    logicle_w: float | None = None
    logicle_m: float = LOGICLE_M


@dataclass
class LearnedCuts:
    """Cuts learned once (batch pool or control tube), in raw compensated units: population -> dim -> value.

    Keyed by the template's dim (a role such as ``cd4``), not by channel, so a cut applies to
    tubes whose instruments name the channel differently.
    """

    cuts: dict[str, dict[str, float]] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    reference: dict[str, dict] = field(default_factory=dict)   # population -> control counts (n, above, ...)
    unusable: dict[str, str] = field(default_factory=dict)     # population -> why the control gave no cut

    def to_yaml(self, path: str | Path) -> Path:
        data = {"units": "raw compensated intensity (mapped onto each tube's transform when applied)",
                "cuts": {p: {c: float(v) for c, v in sorted(cs.items())} for p, cs in sorted(self.cuts.items())},
                "source": dict(sorted(self.source.items())),
                "reference": {p: {k: (float(v) if k.startswith("cut") else int(v)) for k, v in sorted(r.items())}
                              for p, r in sorted(self.reference.items())},
                "unusable": dict(sorted(self.unusable.items()))}
        return atomic_write(path, yaml.safe_dump(data, sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "LearnedCuts":
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls({p: {c: float(v) for c, v in cs.items()} for p, cs in (data.get("cuts") or {}).items()},
                   dict(data.get("source") or {}),
                   {p: {k: (float(v) if k.startswith("cut") else int(v)) for k, v in r.items()}
                    for p, r in (data.get("reference") or {}).items()},
                   dict(data.get("unusable") or {}))

    def merge(self, other: "LearnedCuts") -> "LearnedCuts":
        unusable = {k: v for k, v in {**self.unusable, **other.unusable}.items() if k not in other.cuts}
        return LearnedCuts({**self.cuts, **other.cuts}, {**self.source, **other.source},
                           {**self.reference, **other.reference}, unusable)


@dataclass
class TemplateRun:
    """A template applied to one sample."""

    strategy: fk.GatingStrategy
    builder: StrategyBuilder
    cuts: dict[str, dict[str, Cut]] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)   # population -> missing dims
    transforms: dict[str, object] = field(default_factory=dict)
    channels: dict[str, list[str]] = field(default_factory=dict)  # population -> its channels
    calls: dict = field(default_factory=dict)     # population -> positivity.PositiveCall

    @property
    def transform_text(self) -> str:
        if not self.transforms:
            return "none"
        return "; ".join(f"{ch}:{describe_transform(x)}" for ch, x in self.transforms.items()) + "; scatter linear"


class MethodContext:
    """What a method sees: the parent's events on the gate's dimensions, and helpers to make gates."""

    def __init__(self, run: TemplateRun, spec: GateSpec, channels: list[str], fixed: dict[str, float] | None,
                 control: dict[str, np.ndarray] | None, fixed_source: str = "", fixed_reference: dict | None = None,
                 control_note: str = ""):
        self._run, self.spec, self.channels = run, spec, channels
        self.dim_names = [str(d) for d in spec.dims]
        self.name, self.parent = spec.population, spec.parent
        self._fixed, self._control, self._fixed_source = fixed, control, fixed_source
        self._fixed_reference = fixed_reference
        self._control_note = control_note

    def values(self, i: int = 0) -> np.ndarray:
        """The parent's events on dim ``i``, on the gate's scale (transformed fluorescence, linear scatter)."""
        return self._run.builder.values(self.channels[i], self.parent)

    def _xf(self, i: int):
        return self._run.transforms.get(self.channels[i])

    def to_scale(self, i: int, raw: np.ndarray | float) -> np.ndarray:
        xf = self._xf(i)
        arr = np.atleast_1d(np.asarray(raw, dtype=float))
        return arr if xf is None else np.asarray(xf.apply(arr.reshape(-1, 1))).ravel()

    def to_raw(self, i: int, value: float) -> float:
        xf = self._xf(i)
        return float(value) if xf is None else float(np.asarray(xf.inverse(np.array([[value]]))).ravel()[0])

    def zero(self, i: int = 0) -> float:
        """Where a zero signal sits on dim ``i``'s scale."""
        return float(self.to_scale(i, 0.0)[0])

    def fixed_cut(self, i: int = 0) -> Cut | None:
        """A cut learned for this population (batch or control), on this tube's scale, or None."""
        if not self._fixed or self.dim_names[i] not in self._fixed:
            return None
        return Cut(float(self.to_scale(i, self._fixed[self.dim_names[i]])[0]), "learned", self._fixed_source)

    def control_note(self) -> str:
        """Why a control tube gave this population no cut ('' when none was given or it did)."""
        return self._control_note

    def fixed_reference(self) -> dict | None:
        """The control tube's counts behind a learned cut: ``{"n": events, "above": at or above it}``."""
        return self._fixed_reference

    def population_values(self, population: str, i: int = 0) -> np.ndarray:
        """Another population's events on dim ``i`` (e.g. a tube's internal negatives)."""
        return self._run.builder.values(self.channels[i], population)

    def skipped(self, population: str) -> bool:
        """True when ``population``'s row was skipped (its dims are missing from the file)."""
        return population in self._run.skipped

    def control_values(self, i: int = 0) -> np.ndarray | None:
        """The control tube's events of this row's parent on dim ``i``, on this tube's scale (or None)."""
        if self._control is None or self.channels[i] not in self._control:
            return None
        return self.to_scale(i, self._control[self.channels[i]])

    def cuts_of(self, population: str) -> dict[str, Cut]:
        return self._run.cuts.get(population, {})

    def call_of(self, population: str):
        """The positive call recorded for ``population`` (a ``positivity.PositiveCall``) or None."""
        return self._run.calls.get(population)

    def dimension(self, i: int, lo: float | None = None, hi: float | None = None) -> fk.Dimension:
        return self._run.builder.dim(self.channels[i], lo, hi)

    def rect(self, bounds, name: str | None = None) -> fk.gates.RectangleGate:
        """A rectangle (range) gate: ``bounds`` is (min, max) per dim, None for open."""
        return fk.gates.RectangleGate(name or self.name, [self.dimension(i, lo, hi) for i, (lo, hi) in enumerate(bounds)])

    def ref(self, population: str) -> tuple[str, tuple[str, ...]]:
        """(gate name, parent path) of an existing population, for boolean gates."""
        path = self._run.builder.path(population)
        return path[-1], path[:-1]


def _flag_cut(run: TemplateRun, pop: str, cut: Cut) -> None:
    if cut.method == "tail":
        run.flags.append(f"NO_VALLEY:{pop}")
    elif cut.method == "empty":
        run.flags.append(f"EMPTY_PARENT:{pop}")


def _extra_names(spec: GateSpec) -> list[str]:
    return list((spec.args.get("quadrants") or {}).keys()) if spec.method == "quadrant" else []


def run_template(template: Template, sample: fk.Sample, resolve: Callable[[Dim], str | None], comp: Compensation,
                 settings: EngineSettings = EngineSettings(), learned: LearnedCuts | None = None,
                 control_values: dict[str, dict[str, np.ndarray]] | None = None,
                 stop_before: str | None = None) -> TemplateRun:
    """Apply ``template`` to ``sample``. ``resolve`` maps a template dim to a channel ($PnN) or None.

    ``learned`` cuts replace a row's own search; ``control_values`` (population -> channel ->
    raw values of that population's parent in a control tube) feed methods that use a control.
    ``stop_before`` ends before the named population (used to pool a batch).
    """
    fluoro = {sample.pnn_labels[i] for i in sample.fluoro_indices}
    channels: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    for spec in template.gates:
        chans, miss = [], []
        for d in spec.dims:
            ch = resolve(d)
            (miss.append(str(d)) if ch is None else chans.append(ch))
        channels[spec.population] = chans
        if miss:
            missing[spec.population] = miss
    used = sorted({ch for p, chs in channels.items() if p not in missing for ch in chs if ch in fluoro})
    compensated = compensated_events(sample, comp)
    xforms = {}
    for ch in used:
        xforms[ch] = logicle_for(sample, ch, w=settings.logicle_w, m=settings.logicle_m,
                                 values=compensated[:, sample.get_channel_index(ch)])
    events = processed_events(sample, comp, xforms, compensated)
    del compensated
    b = StrategyBuilder(events, comp, xforms, fluoro)
    run = TemplateRun(b.strategy, b, transforms=xforms, channels=channels)
    for spec in template.gates:
        if spec.population == stop_before:
            break
        if spec.population in missing:
            if not spec.optional:
                raise GatingError(f"population '{spec.population}' ({template.where(spec)}) needs "
                                  f"{', '.join(missing[spec.population])}, which the file lacks")
            run.skipped[spec.population] = missing[spec.population]
            b.alias(spec.population, spec.parent)
            for extra in _extra_names(spec):
                b.alias(extra, spec.parent)
            continue
        fixed = learned.cuts.get(spec.population) if learned else None
        ctx = MethodContext(run, spec, channels[spec.population], fixed,
                            (control_values or {}).get(spec.population),
                            learned.source.get(spec.population, "") if learned else "",
                            learned.reference.get(spec.population) if learned else None,
                            learned.unusable.get(spec.population, "") if learned else "")
        try:
            outcome = registry.get(spec.method)(ctx, **spec.args)
        except TypeError as exc:
            raise GatingError(f"{template.where(spec)}: method '{spec.method}' arguments: {exc}") from exc
        run.cuts[spec.population] = outcome.cuts
        for cut in outcome.cuts.values():
            _flag_cut(run, spec.population, cut)
        run.flags.extend(outcome.flags)
        run.calls.update(outcome.calls)
        for gate in outcome.gates:
            b.add(gate, spec.parent)
        if not any(g.gate_name == spec.population for g in outcome.gates):
            b.alias(spec.population, spec.parent)     # a row whose gates carry other names (quadrants)
    return run


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
    """Cuts for every row with a ``control`` method, learned on a negative-control tube.

    The control is gated with the template up to the row's parent; the row's control method
    (e.g. a high percentile) runs on the control's events there; the cut is kept in raw units.
    """
    learned = LearnedCuts()
    too_few = []
    for spec in template.gates:
        if not spec.control:
            continue
        run = run_template(template, control, resolve, comp, settings, learned=learned, stop_before=spec.population)
        chans = run.channels[spec.population]
        n = run.builder.count(spec.parent)
        if n < MIN_CONTROL_EVENTS:       # this population is then called against the next reference
            too_few.append(f"'{spec.parent}' has {n} events ({template.where(spec)})")
            learned.unusable[spec.population] = (f"control {control.id} has {n} '{spec.parent}' events, "
                                                 f"{MIN_CONTROL_EVENTS} needed")
            continue
        ctrl_spec = GateSpec(spec.population, spec.parent, spec.dims, spec.control["method"],
                             dict(spec.control.get("args") or {}), line=spec.line)
        ctx = MethodContext(run, ctrl_spec, chans, None, None)
        out = registry.get(ctrl_spec.method)(ctx, **ctrl_spec.args)
        learned.cuts[spec.population] = _raw_cuts(ctx, out)
        learned.source[spec.population] = (f"control {control.id}: {ctrl_spec.method} "
                                           f"{dict(ctrl_spec.args)} on {n} '{spec.parent}' events")
        if len(chans) == 1 and chans[0] in out.cuts:     # the control's own background above the cut
            learned.reference[spec.population] = _control_reference(ctx, out.cuts[chans[0]].value, n)
    if too_few and not learned.cuts:
        raise GatingError(f"control {control.id}: too few events to learn any cut (at least {MIN_CONTROL_EVENTS} "
                          f"needed): {'; '.join(too_few)}")
    return learned


def _control_reference(ctx: MethodContext, cut: float, n: int) -> dict:
    """The control's counts behind its cut, and two more cuts (raw units) with their counts, at the
    percentiles :func:`gating.positivity.cut_dependence` compares."""
    from .positivity import SENSITIVITY_Q
    v = ctx.values(0)
    ref = {"n": int(n), "above": int(np.count_nonzero(v >= cut)), "cut_median": ctx.to_raw(0, float(np.median(v)))}
    for tag, q in zip(("lo", "hi"), (SENSITIVITY_Q[0], SENSITIVITY_Q[-1])):
        c = float(np.percentile(v, q))
        ref[f"cut_{tag}"] = ctx.to_raw(0, c)
        ref[f"above_{tag}"] = int(np.count_nonzero(v >= c))
    return ref


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
        w = settings.logicle_w if settings.logicle_w is not None else estimate_logicle_w(v, 262144.0)
        xforms[ch] = fk.transforms.LogicleTransform(262144.0, w, settings.logicle_m, 0.0)
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
