"""Gate-finding methods: small functions that look at a parent population and return FlowKit gates.

Each method is called as ``method(ctx, **args)`` with a :class:`gating.engine.MethodContext`
(the parent's values per dimension, on the gate's scale) and returns an :class:`Outcome`.
Register a new one with ``@register("name")``, or, from another package, through the
entry-point group ``gating.methods`` (``name = "package.module:function"``), so a lab adds a
method without forking.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Callable

import flowkit as fk
import numpy as np
from scipy.stats import chi2

from . import acquisition, finders, positivity
from .finders import Cut

ENTRY_POINT_GROUP = "gating.methods"
_BUILTIN: dict[str, Callable] = {}
_LOADED: dict[str, Callable] | None = None


@dataclass
class Outcome:
    """What a method found: gates to add under the parent, the cuts (by channel), flags."""

    gates: list = field(default_factory=list)
    cuts: dict[str, Cut] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    calls: dict = field(default_factory=dict)      # population -> positivity.PositiveCall


def register(name: str):
    """Decorator: make ``fn`` available to templates as method ``name``."""
    def deco(fn):
        _BUILTIN[name] = fn
        return fn
    return deco


def _registry() -> dict[str, Callable]:
    global _LOADED
    if _LOADED is None:
        _LOADED = dict(_BUILTIN)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                _LOADED.setdefault(ep.name, ep.load())
            except Exception as exc:  # noqa: BLE001 - a broken plug-in must not break the built-ins
                import warnings
                warnings.warn(f"gating method plug-in '{ep.name}' ({ep.value}) failed to load: {exc}")
    return _LOADED


def available() -> list[str]:
    """Names of every registered method (built-in and plug-in)."""
    return sorted(_registry())


def get(name: str) -> Callable:
    try:
        return _registry()[name]
    except KeyError:
        raise KeyError(f"unknown gating method '{name}'; registered: {', '.join(available())}") from None


def _one_sided(ctx, cut: Cut, keep: str) -> Outcome:
    if keep not in ("above", "below"):
        raise ValueError(f"population '{ctx.name}': keep must be 'above' or 'below', not '{keep}'")
    bounds = [(cut.value, None)] if keep == "above" else [(None, cut.value)]
    return Outcome([ctx.rect(bounds)], {ctx.channels[0]: cut})


@register("valley")
def valley(ctx, keep: str = "above", tail_sds: float = finders.DEFAULT_TAIL_SDS, min_prominence: float = 0.04,
           negative_span: float = 0.3) -> Outcome:
    """1-D: the density valley between a marker's negative and positive events; with no valley,
    the negative population's mode + ``tail_sds`` robust SD (the row is flagged NO_VALLEY)."""
    cut = ctx.fixed_cut(0) or finders.positive_cut(ctx.values(0), ctx.zero(0), tail_sds, min_prominence, negative_span)
    return _one_sided(ctx, cut, keep)


@register("tail")
def tail(ctx, keep: str = "above", tail_sds: float = finders.DEFAULT_TAIL_SDS, side: str = "high") -> Outcome:
    """1-D: a cut ``tail_sds`` robust SD from the mode of the main population (openCyto's tailgate)."""
    cut = ctx.fixed_cut(0)
    if cut is None:
        x = ctx.values(0)
        if x.size < 3:
            cut = Cut(float(ctx.zero(0)), "empty", f"{x.size} events")
        else:
            d = finders.density(x)
            i = int(np.argmax(d.dens))
            mode = float(d.grid[i])
            sd = finders.population_sd(x, d, i, side)
            v = mode + tail_sds * sd if side == "high" else mode - tail_sds * sd
            cut = Cut(v, "tail_rule", f"mode {mode:.3g} {'+' if side == 'high' else '-'} {tail_sds} x {sd:.3g}")
    return _one_sided(ctx, cut, keep)


@register("percentile")
def percentile(ctx, q: float = 99.5, keep: str = "above", source: str = "auto") -> Outcome:
    """1-D: the ``q``-th percentile of the control tube's events in this population (``source:
    control``), or of this sample's own (``source: sample``); 'auto' prefers a control."""
    cut = ctx.fixed_cut(0)
    if cut is None:
        ctl = ctx.control_values(0) if source in ("auto", "control") else None
        if source == "control" and ctl is None:
            raise ValueError(f"population '{ctx.name}': method percentile with source 'control' needs a control tube")
        x = ctl if ctl is not None else ctx.values(0)
        cut = finders.percentile_cut(x, q)
        if ctl is None:
            cut = Cut(cut.value, "percentile", cut.detail)
    return _one_sided(ctx, cut, keep)


@register("positive")
def positive(ctx, internal: str | None = None, like: list | None = None, q: float = 99.5, min_events: int = 20,
             min_shape_events: int = 100, tail_sds: float = finders.DEFAULT_TAIL_SDS, min_prominence: float = 0.04,
             negative_span: float = 0.3) -> Outcome:
    """1-D: marker-positive events against a negative reference, in order of preference: the cut
    learned from a control tube (the row's ``control`` method), the ``q``-th percentile of the
    tube's ``internal`` negative population (when its negatives look like this population's),
    else this population's own shape (a valley; with none, the negatives' tail: uncertain).
    With a reference, a valley in this population above the reference's cut is used instead
    (a clear gap between negatives and positives; fewer background events). A density valley
    needs ``min_shape_events``. ``like``: populations whose cuts this one takes (the highest,
    with the largest background rate), for a small group such as double-negative T cells.
    Records a :class:`gating.positivity.PositiveCall` with the background expected above the cut."""
    x = ctx.values(0)
    if like:
        return _positive_like(ctx, x, like, min_events)
    own = finders.positive_cut(x, ctx.zero(0), tail_sds, min_prominence, negative_span)
    fixed, ref_counts, uncertain = ctx.fixed_cut(0), ctx.fixed_reference(), ""
    sens = None
    if fixed is not None:
        cut = _higher_valley(fixed, own)
        counts = {k: v for k, v in (ref_counts or {}).items() if k in ("n", "above")}
        ref = positivity.Reference("control", fixed.detail, **counts)
        if ref_counts and "cut_lo" in ref_counts:
            sens = ([(float(ctx.to_scale(0, ref_counts[f"cut_{e}"])[0]), ref_counts[f"above_{e}"] / ref_counts["n"])
                     for e in ("lo", "hi")], float(ctx.to_scale(0, ref_counts["cut_median"])[0]))
    else:
        cut, ref, uncertain, sens = _internal_or_shape(ctx, x, own, internal, q, min_prominence)
        if ref.basis == "shape" and not uncertain and x.size < min_shape_events:
            uncertain = (f"a valley in {x.size} events is not a reliable cut (at least {min_shape_events} are needed "
                         f"without a reference)")
    pc = positivity.call(ctx.name, x, cut.value, ref, min_events, uncertain, sens)
    flags = {"not_detected": [f"NOT_DETECTED:{ctx.name}"], "uncertain": [f"UNCERTAIN:{ctx.name}"]}.get(pc.status, [])
    out = _one_sided(ctx, cut, "above")
    return Outcome(out.gates, out.cuts, flags, {ctx.name: pc})


def _positive_like(ctx, x, like: list, min_events: int) -> Outcome:
    """The highest cut of the ``like`` populations, and the largest background rate among them."""
    ch = ctx.channels[0]
    found = [(ctx.cuts_of(p)[ch], ctx.call_of(p)) for p in like if ch in ctx.cuts_of(p) and ctx.call_of(p)]
    if not found:
        raise ValueError(f"population '{ctx.name}': none of {', '.join(like)} has a cut on {ch} to take")
    cut = max((c for c, _ in found), key=lambda c: c.value)
    rates = [(pc.expected / pc.parent_count if pc.parent_count and math.isfinite(pc.expected) else math.nan, pc)
             for _, pc in found]
    known = [(r, pc) for r, pc in rates if math.isfinite(r)]
    if known:
        r, pc = max(known, key=lambda t: t[0])
        ref = positivity.Reference(pc.basis, f"as {pc.population}", pc.parent_count, int(round(r * pc.parent_count)))
    else:
        ref = positivity.Reference(found[0][1].basis, f"as {found[0][1].population}")
    why = "" if known else f"no background estimate in {', '.join(like)}"
    pc = positivity.call(ctx.name, x, cut.value, ref, min_events, why)
    out = _one_sided(ctx, Cut(cut.value, cut.method, f"the highest cut of {', '.join(like)}"), "above")
    return Outcome(out.gates, out.cuts, [], {ctx.name: pc})


def _higher_valley(reference_cut: Cut, own: Cut) -> Cut:
    """The population's own valley when it lies above the reference's cut, else the reference's cut."""
    if own.method == "valley" and own.value > reference_cut.value:
        return Cut(own.value, reference_cut.method, f"{own.detail} (valley, above {reference_cut.detail})")
    return reference_cut


def _internal_or_shape(ctx, x, own: Cut, internal, q, min_prominence):
    """(cut, reference, reason for uncertainty) without a control tube."""
    why_not = "no internal negatives named"
    if internal:
        negs = ctx.population_values(internal, 0)
        why_not = positivity.internal_reference_check(x, negs)
        if not why_not:
            pct = Cut(finders.percentile_cut(negs, q).value, "internal", f"{q}th percentile of {negs.size} '{internal}' events")
            cut = _higher_valley(pct, own)
            above = int(np.count_nonzero(negs >= cut.value))
            edges = [float(np.percentile(negs, e)) for e in positivity.SENSITIVITY_Q]
            sens = ([(c, float(np.count_nonzero(negs >= c)) / negs.size) for c in edges], float(np.median(negs)))
            return cut, positivity.Reference("internal", f"'{internal}' of this tube", int(negs.size), above), "", sens
    if own.method != "valley" or x.size < 3:
        return own, positivity.Reference("shape", own.detail), (
            f"no valley between negative and positive events ({own.method}: {own.detail}) and no reference "
            f"(control tube: {ctx.control_note() or 'none'}; internal negatives: {why_not})"), None
    d = finders.density(x)
    peaks = d.peaks(min_prominence)
    mode = float(d.grid[peaks[0]]) if peaks.size else float(np.median(x))
    return own, positivity.mirror_reference(x, mode, own.value, own.detail), "", None


@register("flow_rate")
def flow_rate(ctx, k: float = acquisition.RATE_K) -> Outcome:
    """On the Time channel (and a signal such as FSC as a second dim): the time segments whose flow
    rate (and median signal) are normal: no clog, burst, stop or drift; each kept segment is a
    range on Time, the population their union. Flags QC_FLOW_RATE:<bins>."""
    t = ctx.values(0)
    if t.size < 100 or float(t.max()) <= float(t.min()):
        return Outcome(flags=["QC_NO_TIME_COURSE"])
    qc = acquisition.time_segments(t, k, ctx.values(1) if len(ctx.channels) > 1 else None)
    if qc.anomalous_bins == 0 and len(qc.segments) == 1:
        return Outcome()                      # nothing to remove: the parent passes through
    flags = [f"QC_FLOW_RATE:{qc.anomalous_bins}_of_{qc.bins}_bins"]
    open_dims = [(None, None)] * (len(ctx.channels) - 1)
    if len(qc.segments) == 1:
        return Outcome([ctx.rect([qc.segments[0]] + open_dims)], flags=flags)
    parts = [ctx.rect([seg] + open_dims, name=f"{ctx.name}_{i + 1}") for i, seg in enumerate(qc.segments)]
    union = fk.gates.BooleanGate(ctx.name, "or", [{"ref": g.gate_name, "path": ctx.path_of_parent(),
                                                   "complement": False} for g in parts])
    return Outcome(parts + [union], flags=flags)


@register("in_range")
def in_range(ctx) -> Outcome:
    """Events inside the detectors' range on every dim (scatter, raw units): values pinned at the
    top (``$PnR`` - 1: saturated) or absurdly below zero are removed. Flags QC_SATURATED:<n>."""
    ranges = [ctx.channel_range(i) for i in range(len(ctx.channels))]
    events = np.column_stack([ctx.values(i) for i in range(len(ctx.channels))])
    bounds = acquisition.saturation_bounds(events, ranges, set(range(len(ctx.channels))))
    if not bounds:
        return Outcome()
    inside = np.ones(len(events), dtype=bool)
    for i, (lo, hi) in bounds.items():            # Gating-ML ranges: min <= v < max
        inside &= (events[:, i] >= lo if lo is not None else True) & (events[:, i] < hi)
    rect = ctx.rect([bounds.get(i, (None, None)) for i in range(len(ctx.channels))])
    return Outcome([rect], flags=[f"QC_SATURATED:{int((~inside).sum())}"])


@register("exclude")
def exclude(ctx, population: str) -> Outcome:
    """The parent's events outside ``population`` (e.g. cells without the counting beads); when that
    population's row was skipped (no bead channel), the parent passes through unchanged."""
    if ctx.skipped(population):
        return Outcome()
    ref, path = ctx.ref(population)
    return Outcome([fk.gates.BooleanGate(ctx.name, "not", [{"ref": ref, "path": path, "complement": False}])])


@register("debris")
def debris(ctx, debris_max_frac: float = 0.4, tail_sds: float = finders.DEFAULT_TAIL_SDS) -> Outcome:
    """1-D on FSC: keep events above the valley over a debris population (mode below
    ``debris_max_frac`` of the main cell peak), else above the cells' lower tail."""
    cut = ctx.fixed_cut(0) or finders.debris_cut(ctx.values(0), debris_max_frac, tail_sds)
    return _one_sided(ctx, cut, "above")


@register("low_population")
def low_population(ctx, tail_sds: float = finders.DEFAULT_TAIL_SDS) -> Outcome:
    """1-D: keep the lowest population (e.g. lymphocytes on SSC): up to the valley above it."""
    cut = ctx.fixed_cut(0) or finders.low_population_cut(ctx.values(0), tail_sds)
    return _one_sided(ctx, cut, "below")


@register("singlets")
def singlets(ctx, tail_sds: float = finders.DEFAULT_TAIL_SDS, debris_max_frac: float = 0.4) -> Outcome:
    """2-D (area, height): single cells as a band of height/area ratios through the origin;
    the band is estimated on events above the debris, where the ratio is not noise."""
    a, h = ctx.values(0), ctx.values(1)
    pre = finders.debris_cut(a, debris_max_frac, tail_sds).value if a.size >= 3 else 0.0
    big = a > pre
    lo, hi = finders.ratio_band(a[big], h[big], tail_sds)
    amax = 4.0 * max(float(np.nanmax(a)) if a.size else 1.0, 262144.0)
    gate = fk.gates.PolygonGate(ctx.name, [ctx.dimension(0), ctx.dimension(1)],
                                [[0.0, 0.0], [amax, lo.value * amax], [amax, hi.value * amax]])
    return Outcome([gate], {"ratio_low": lo, "ratio_high": hi})


@register("quadrant")
def quadrant(ctx, quadrants: dict, cuts_from: str | None = None, tail_sds: float = finders.DEFAULT_TAIL_SDS) -> Outcome:
    """2-D: two marker cuts (valleys, or taken from population ``cuts_from``) and a rectangle gate
    per requested quadrant, e.g. ``{cd4_t: "+-", cd8_t: "-+"}`` (sign of dim 1, sign of dim 2)."""
    cuts = {}
    for i, ch in enumerate(ctx.channels[:2]):
        c = ctx.fixed_cut(i)
        if c is None and cuts_from:
            prev = ctx.cuts_of(cuts_from).get(ch)
            if prev is None:
                raise ValueError(f"population '{ctx.name}': cuts_from '{cuts_from}' has no cut on {ch}")
            c = Cut(prev.value, prev.method, f"from {cuts_from}")
        if c is None:
            c = finders.positive_cut(ctx.values(i), ctx.zero(i), tail_sds)
        cuts[ch] = c
    c1, c2 = cuts[ctx.channels[0]].value, cuts[ctx.channels[1]].value
    gates = []
    for name, signs in quadrants.items():
        if len(signs) != 2 or set(signs) - {"+", "-"}:
            raise ValueError(f"population '{ctx.name}': quadrant '{name}' must be two of + and -, not '{signs}'")
        b = [(c1, None) if signs[0] == "+" else (None, c1), (c2, None) if signs[1] == "+" else (None, c2)]
        gates.append(ctx.rect(b, name=name))
    return Outcome(gates, cuts)


@register("scatter_cluster")
def scatter_cluster(ctx, n_components: int = 3, pick: str = "lowest", coverage: float = 0.95,
                    max_events: int = 50_000, seed: int = 0) -> Outcome:
    """2-D: a Gaussian mixture on the parent's events; the chosen component (``lowest``/``highest``
    mean on dim 2, or ``largest``) becomes an ellipse holding ``coverage`` of it."""
    from sklearn.mixture import GaussianMixture
    x = np.column_stack([ctx.values(0), ctx.values(1)])
    if x.shape[0] < 10 * n_components:
        raise ValueError(f"population '{ctx.name}': {x.shape[0]} events are too few for {n_components} clusters")
    rng = np.random.default_rng(seed)
    fit = x[rng.choice(x.shape[0], max_events, replace=False)] if x.shape[0] > max_events else x
    scale = fit.std(axis=0)
    scale[scale == 0] = 1.0
    gm = GaussianMixture(n_components, covariance_type="full", random_state=seed).fit(fit / scale)
    means = gm.means_ * scale
    covs = gm.covariances_ * np.outer(scale, scale)
    k = {"lowest": int(np.argmin(means[:, 1])), "highest": int(np.argmax(means[:, 1])),
         "largest": int(np.argmax(gm.weights_))}.get(pick)
    if k is None:
        raise ValueError(f"population '{ctx.name}': pick must be lowest, highest or largest, not '{pick}'")
    d2 = float(chi2.ppf(coverage, 2))
    gate = fk.gates.EllipsoidGate(ctx.name, [ctx.dimension(0), ctx.dimension(1)], means[k].tolist(),
                                  covs[k].tolist(), d2)
    return Outcome([gate], {}, [])


@register("boolean")
def boolean(ctx, op: str, of: list) -> Outcome:
    """Combine populations: ``op`` and/or/not over ``of`` (a '!' before a name takes its complement)."""
    if op not in ("and", "or", "not"):
        raise ValueError(f"population '{ctx.name}': op must be and, or or not, not '{op}'")
    refs = []
    for name in of:
        comp = str(name).startswith("!")
        ref, path = ctx.ref(str(name).lstrip("!"))
        refs.append({"ref": ref, "path": path, "complement": comp})
    return Outcome([fk.gates.BooleanGate(ctx.name, op, refs)])


@register("range")
def fixed_range(ctx, bounds: list) -> Outcome:
    """A rectangle with fixed bounds ``[[min, max], ...]`` per dim, on the dims' scale (null = open)."""
    if len(bounds) != len(ctx.channels):
        raise ValueError(f"population '{ctx.name}': {len(ctx.channels)} dims need {len(ctx.channels)} bounds")
    return Outcome([ctx.rect([tuple(b) for b in bounds])])
