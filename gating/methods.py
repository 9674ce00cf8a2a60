"""Gate-finding methods: small functions that look at a parent population and return FlowKit gates.

Each method is called as ``method(ctx, **args)`` with a :class:`gating.engine.MethodContext`
(the parent's values per dimension, on the gate's scale) and returns an :class:`Outcome`.
Register a new one with ``@register("name")``, or, from another package, through the
entry-point group ``gating.methods`` (``name = "package.module:function"``), so a lab adds a
method without forking.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Callable

import flowkit as fk
import numpy as np
from scipy.stats import chi2

from . import finders
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
