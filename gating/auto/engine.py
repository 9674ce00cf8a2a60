"""Apply a gating template to a sample: each row's method looks at its parent population and
returns FlowKit gates; the result is an ordinary ``GatingStrategy`` (exportable as Gating-ML).

Cuts learned once (for a batch, or from a control tube: :mod:`gating.auto.learn`) are kept in raw
(compensated, untransformed) units in a :class:`LearnedCuts`, written with the run so it can be
repeated, and mapped onto each tube's own transform when applied.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import flowkit as fk
import numpy as np
import yaml

from gating.auto import methods as registry
from gating.auto.build import StrategyBuilder
from gating.auto.finders import Cut
from gating.io.files import atomic_write
from gating.io.yamlsafe import safe_load
from gating.preprocess import (LOGICLE_M, Compensation, compensated_events, describe_transform,
                         logicle_for, processed_events)
from gating.auto.template import Dim, GateSpec, Template



class GatingError(ValueError):
    """A template cannot be applied to a sample (e.g. a required dimension is absent)."""


@dataclass(frozen=True)
class EngineSettings:
    """Transform of fluorescence channels: logicle, width from the data unless ``logicle_w`` is set."""

    logicle_w: float | None = None
    logicle_m: float = LOGICLE_M
    linear_dims: tuple[str, ...] = ("fsc_a", "fsc_h", "ssc_a", "time")   # template dims kept linear


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
                "reference": {p: {k: _plain(v) for k, v in sorted(r.items())} for p, r in sorted(self.reference.items())},
                "unusable": dict(sorted(self.unusable.items()))}
        return atomic_write(path, yaml.safe_dump(data, sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "LearnedCuts":
        data = safe_load(Path(path).read_text()) or {}
        return cls({p: {c: float(v) for c, v in cs.items()} for p, cs in (data.get("cuts") or {}).items()},
                   dict(data.get("source") or {}),
                   {p: {k: _plain(v) for k, v in r.items()} for p, r in (data.get("reference") or {}).items()},
                   dict(data.get("unusable") or {}))

    def merge(self, other: "LearnedCuts") -> "LearnedCuts":
        unusable = {k: v for k, v in {**self.unusable, **other.unusable}.items() if k not in other.cuts}
        return LearnedCuts({**self.cuts, **other.cuts}, {**self.source, **other.source},
                           {**self.reference, **other.reference}, unusable)


def _plain(v):
    """A learned reference's value as YAML holds it: counts int, values float, lists of floats, names str."""
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple, np.ndarray)):
        return [float(x) for x in v]
    return int(v) if float(v).is_integer() and not isinstance(v, float) else float(v)


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
    ranges: dict = field(default_factory=dict)    # channel -> its $PnR

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

    def channel_range(self, i: int = 0) -> float | None:
        """The ``$PnR`` of dim ``i``'s channel (None when the file does not say)."""
        return self._run.ranges.get(self.channels[i])

    def path_of_parent(self) -> tuple[str, ...]:
        """The parent's path from 'root' (its own name last): where this row's gates hang."""
        return self._run.builder.path(self.parent)

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
    channels: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    linear: set[str] = set()
    for spec in template.gates:
        chans, miss = [], []
        for d in spec.dims:
            ch = resolve(d)
            (miss.append(str(d)) if ch is None else chans.append(ch))
            if ch is not None and d.name in settings.linear_dims:
                linear.add(ch)          # scatter and time: linear and uncompensated, whatever their names
        channels[spec.population] = chans
        if miss:
            missing[spec.population] = miss
    fluoro = {sample.pnn_labels[i] for i in sample.fluoro_indices} - linear
    used = sorted({ch for p, chs in channels.items() if p not in missing for ch in chs if ch in fluoro})
    compensated = compensated_events(sample, comp)
    xforms = {}
    for ch in used:
        xforms[ch] = logicle_for(sample, ch, w=settings.logicle_w, m=settings.logicle_m,
                                 values=compensated[:, sample.get_channel_index(ch)])
    events = processed_events(sample, comp, xforms, compensated)
    del compensated
    b = StrategyBuilder(events, comp, xforms, fluoro)
    run = TemplateRun(b.strategy, b, transforms=xforms, channels=channels, ranges=channel_ranges(sample))
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


def channel_ranges(sample: fk.Sample) -> dict[str, float]:
    """``$PnR`` of every channel that declares one (channel $PnN -> range)."""
    meta = sample.get_metadata()
    out = {}
    for i, name in enumerate(sample.pnn_labels, start=1):
        try:
            out[name] = float(str(meta.get(f"p{i}r", "")).strip())
        except ValueError:
            continue
    return out
