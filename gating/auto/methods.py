"""Gate-finding methods: small functions that look at a parent population and return FlowKit gates.

Each method is called as ``method(ctx, **args)`` with a :class:`gating.auto.engine.MethodContext`
(the parent's values per dimension, on the gate's scale) and returns an :class:`Outcome`.
Register a new one with ``@register("name")``, or, from another package, through the
entry-point group ``gating.auto.methods`` (``name = "package.module:function"``), so a lab adds a
method without forking.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from typing import Callable

import flowkit as fk
import numpy as np

from gating.auto import acquisition, finders, positivity
from gating.auto.finders import Cut
from gating.auto.netcount import LEVELS, ReferenceTail, mirrored, shape_levels

ENTRY_POINT_GROUP = "gating.methods"   # a public plugin contract: the name stays where modules move
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
    """1-D: marker-positive events against a negative reference, in order of preference: a
    control tube's events (the row's ``control`` method gives the gate's cut; a stained control
    per subset, an unstained one its autofluorescence), the tube's ``internal`` negative
    population (when its negatives look like this population's; the gate at its ``q``-th
    percentile), else this population's own shape (a valley, the negative peak mirrored about
    its mode; with no valley: uncertain). A density valley above the reference's cut moves the
    gate there (a clear gap; fewer background events). ``like``: populations whose cuts and
    reference this one takes (the highest cut), for a small group such as double-negative T
    cells. Records a :class:`gating.auto.positivity.PositiveCall` with the positives net of background."""
    x = ctx.values(0)
    if like:
        return _positive_like(ctx, x, like, min_events)
    own = finders.positive_cut(x, ctx.zero(0), tail_sds, min_prominence, negative_span)
    fixed, ref_counts, uncertain, widen, misfit = ctx.fixed_cut(0), ctx.fixed_reference() or {}, "", None, []
    if fixed is not None:
        cut = _higher_valley(fixed, own)
        ref = positivity.Reference(ref_counts.get("kind", "control"), fixed.detail, int(ref_counts.get("n", 0)),
                                   int(ref_counts.get("above", 0)))
        tail = _control_tail(ctx, ref_counts)
        if tail is not None and ref.basis == "unstained control":
            widen, uncertain = positivity.unstained_reference(x, tail)
        elif tail is not None and "lower" in ref_counts:
            uncertain = positivity.control_fit_check(x, ctx.to_scale(0, np.asarray(ref_counts["lower"])), tail.n,
                                                     int(np.count_nonzero(x >= tail.cut(min(LEVELS)))))
        if uncertain:                              # the control cannot say: the tube's own references
            misfit = [f"CONTROL_MISFIT:{ctx.name}", f"{ref.basis} did not fit"]
            alt = _internal_or_shape(ctx, x, own, internal, q, min_prominence)
            cut, ref, tail = alt[0], alt[1], alt[3]
            uncertain = "" if not alt[2] else f"{uncertain}; {alt[2]}"
    else:
        cut, ref, uncertain, tail = _internal_or_shape(ctx, x, own, internal, q, min_prominence)
        if ref.basis == "shape" and not uncertain and x.size < min_shape_events:
            uncertain = (f"a valley in {x.size} events is not a reliable cut (at least {min_shape_events} are needed "
                         f"without a reference)")
    levels = shape_levels(tail, cut.value) if tail is not None and ref.basis == "shape" else LEVELS
    valley = cut.value if own.method == "valley" and cut.value == own.value else None
    pc = positivity.call(ctx.name, x, cut.value, ref, min_events, uncertain, tail, widen, levels, valley=valley)
    flags = {"not_detected": [f"NOT_DETECTED:{ctx.name}"], "uncertain": [f"UNCERTAIN:{ctx.name}"]}.get(pc.status, [])
    if misfit:                                     # the basis still names the control it could not use
        pc = replace(pc, basis=f"{pc.basis} ({misfit.pop()})")
    out = _one_sided(ctx, _at_estimate(cut, pc), "above")
    return Outcome(out.gates, out.cuts, misfit + flags + _smear_flag(ctx.name, pc), {ctx.name: pc})


def _at_estimate(cut: Cut, pc) -> Cut:
    """The gate at the cut where the estimate counts (its gross count minus its background is the
    estimate), else where the reference put it."""
    if pc.cut is None or pc.cut == cut.value:
        return cut
    return Cut(pc.cut, cut.method, f"{cut.detail}; at the estimate's cut level")


def _smear_flag(name: str, pc) -> list[str]:
    """DIM_SMEAR when positives may hide below the cuts (the interval's upper end allows for them)."""
    return [f"DIM_SMEAR:{name}"] if pc.net is not None and (pc.net.hidden > 0 or pc.net.low_counts_more) else []


def _control_tail(ctx, ref_counts: dict) -> ReferenceTail | None:
    """The control's highest values (kept raw by :mod:`gating.auto.learn`) on this tube's scale."""
    if "tail" not in ref_counts:
        return None
    name = "control:" + str(ref_counts.get("population", ctx.name))
    raw = ReferenceTail(name, int(ref_counts["n"]), np.asarray(ref_counts["tail"], dtype=float),
                        float(ref_counts.get("median", math.nan)), float(ref_counts.get("p10", math.nan)))
    return raw.on_scale(lambda a: ctx.to_scale(0, a))


def _positive_like(ctx, x, like: list, min_events: int) -> Outcome:
    """The highest cut of the ``like`` populations, and that population's reference."""
    ch = ctx.channels[0]
    found = [(ctx.cuts_of(p)[ch], ctx.call_of(p)) for p in like if ch in ctx.cuts_of(p) and ctx.call_of(p)]
    if not found:
        raise ValueError(f"population '{ctx.name}': none of {', '.join(like)} has a cut on {ch} to take")
    cut, pc = max(found, key=lambda t: t[0].value)
    usable = [c for _, c in sorted(found, key=lambda t: -t[0].value) if c.net is not None]
    tail = usable[0].net.reference if usable else None
    ref = positivity.Reference(pc.basis, f"as {pc.population}", pc.parent_count,
                               int(round(pc.expected)) if math.isfinite(pc.expected) else 0)
    why = "" if tail is not None else f"no usable reference in {', '.join(like)}"
    widen = None
    if tail is not None and pc.basis == "unstained control":
        widen, why = positivity.unstained_reference(x, tail)
    levels = usable[0].net.levels if usable else LEVELS
    pc = positivity.call(ctx.name, x, cut.value, ref, min_events, why, tail, widen, levels, own_reference=False)
    out = _one_sided(ctx, _at_estimate(Cut(cut.value, cut.method, f"the highest cut of {', '.join(like)}"), pc), "above")
    return Outcome(out.gates, out.cuts, _smear_flag(ctx.name, pc), {ctx.name: pc})


def _higher_valley(reference_cut: Cut, own: Cut) -> Cut:
    """The population's own valley when it lies above the reference's cut, else the reference's cut."""
    if own.method == "valley" and own.value > reference_cut.value:
        return Cut(own.value, reference_cut.method, f"{own.detail} (valley, above {reference_cut.detail})")
    return reference_cut


def _internal_or_shape(ctx, x, own: Cut, internal, q, min_prominence):
    """(cut, reference, reason for uncertainty, reference tail) without a control tube."""
    why_not = "no internal negatives named"
    if internal:
        negs = ctx.population_values(internal, 0)
        why_not = positivity.internal_reference_check(x, negs)
        if not why_not:
            pct = Cut(finders.percentile_cut(negs, q).value, "internal", f"{q}th percentile of {negs.size} '{internal}' events")
            cut = _higher_valley(pct, own)
            above = int(np.count_nonzero(negs >= cut.value))
            return cut, positivity.Reference("internal", f"'{internal}' of this tube", int(negs.size), above), "", \
                ReferenceTail.of(f"internal:{internal}", negs)
    if own.method != "valley" or x.size < 3:
        return own, positivity.Reference("shape", own.detail), (
            f"no valley between negative and positive events ({own.method}: {own.detail}) and no reference "
            f"(control tube: {ctx.control_note() or 'none'}; internal negatives: {why_not})"), None
    d = finders.density(x)
    peaks = d.peaks(min_prominence)
    mode = float(d.grid[peaks[0]]) if peaks.size else float(np.median(x))
    negs = mirrored(x, mode)
    ref = positivity.Reference("shape", own.detail, max(int(negs.size), 1), int(np.count_nonzero(negs >= own.value)))
    return own, ref, "", ReferenceTail.of(f"shape:{ctx.name}", negs)


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
    from scipy.stats import chi2           # scipy.stats: 0.6-0.9 s to import, only for this method
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
