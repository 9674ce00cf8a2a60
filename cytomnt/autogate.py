"""The CAR-T gating hierarchy, found from each sample's own data.

singlets -> leukocytes -> live -> cd45 -> lymphocytes -> t_cells -> car_t, with CD4/CD8
splits of both T cells and CAR T cells. Every cut comes from this sample's density
(valleys between populations on the transformed scale, tails of a negative population),
or, for the CAR cut, from a negative-control tube. The result is an ordinary FlowKit
``GatingStrategy`` that can be written out as Gating-ML and re-applied.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import flowkit as fk
import numpy as np

from gating import finders
from gating.build import StrategyBuilder, xform_id
from gating.preprocess import Compensation, compensated_events, describe_transform, logicle_for, processed_events

from .panel import ResolvedPanel

#: Populations of the auto hierarchy, parent first.
POPULATIONS = ("beads", "singlets", "leukocytes", "live", "cd45", "lymphocytes", "t_cells", "car_t",
               "t_cd4", "t_cd8", "car_cd4", "car_cd8")
FLUORO_ROLES = ("cd45", "viability", "t_cell", "cd4", "cd8", "car", "beads")


@dataclass(frozen=True)
class AutoSettings:
    """Knobs of the auto strategy; defaults are documented in the README."""

    logicle_w: float | None = None     # None: estimated per channel from the data
    logicle_m: float = 4.5
    tail_sds: float = finders.DEFAULT_TAIL_SDS
    debris_max_frac: float = 0.4
    control_percentile: float = 99.5
    min_events_for_density: int = 100   # fewer T cells: CD4/CD8 cuts come from all lymphocytes


@dataclass(frozen=True)
class ControlCut:
    """A CAR threshold learned from a negative-control tube, in compensated (untransformed) units."""

    car_raw: float
    source: str
    t_cells: int


@dataclass
class AutoGating:
    """The strategy built for one sample, each population's events, and how each cut was found."""

    strategy: fk.GatingStrategy
    builder: StrategyBuilder
    cuts: dict[str, finders.Cut] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    transform: str = ""


def _zero(xf) -> float:
    return float(np.asarray(xf.apply(np.zeros((1, 1)))).ravel()[0])


def auto_gate(sample: fk.Sample, panel: ResolvedPanel, comp: Compensation,
              settings: AutoSettings = AutoSettings(), control: ControlCut | None = None,
              stop_after: str | None = None) -> AutoGating:
    """Find this sample's gates; ``stop_after`` ends the hierarchy early (used for controls)."""
    fluoro = {sample.pnn_labels[i] for i in sample.fluoro_indices}
    compensated = compensated_events(sample, comp)
    xforms = {}
    for role in FLUORO_ROLES:
        ch = panel.pnn(role)
        if ch is not None:
            xforms[ch] = logicle_for(sample, ch, w=settings.logicle_w, m=settings.logicle_m,
                                     values=compensated[:, sample.get_channel_index(ch)])
    events = processed_events(sample, comp, xforms, compensated)
    b = StrategyBuilder(events, comp, xforms, fluoro)
    g = AutoGating(b.strategy, b)
    if xforms:
        g.transform = "; ".join(f"{ch}:{describe_transform(x)}" for ch, x in xforms.items()) + "; scatter linear"
    else:
        g.transform = "none"
    zero = {ch: _zero(xf) for ch, xf in xforms.items()}
    sds = settings.tail_sds

    def note(pop: str, cut: finders.Cut) -> float:
        g.cuts[pop] = cut
        if cut.method == "tail":
            g.flags.append(f"NO_VALLEY:{pop}")
        elif cut.method == "empty":
            g.flags.append(f"EMPTY_PARENT:{pop}")
        return cut.value

    fsc, ssc = panel.pnn("fsc_a"), panel.pnn("ssc_a")

    # counting beads (off the root; they fall outside the leukocyte scatter gate)
    if panel.has("beads"):
        ch = panel.pnn("beads")
        c = note("beads", finders.positive_cut(b.values(ch), zero[ch], sds))
        b.rectangle("beads", "root", {ch: (c, None)})

    # singlets: the FSC-H/FSC-A ratio band of single cells
    if panel.has("fsc_h"):
        fsch = panel.pnn("fsc_h")
        # the ratio is estimated on events above the debris: at low FSC it is mostly noise
        pre = finders.debris_cut(b.values(fsc), settings.debris_max_frac, sds).value
        big = b.values(fsc) > pre
        lo, hi = finders.ratio_band(b.values(fsc)[big], b.values(fsch)[big], sds)
        note("singlets", lo)
        g.cuts["singlets_upper"] = hi
        amax = 4.0 * max(float(np.nanmax(events[fsc])) if len(events) else 1.0, 262144.0)
        b.polygon("singlets", "root", (fsc, fsch), [(0.0, 0.0), (amax, lo.value * amax), (amax, hi.value * amax)])
    else:
        b.alias("singlets", "root")
    # leukocytes: intact cells above the debris on FSC
    c = note("leukocytes", finders.debris_cut(b.values(fsc, "singlets"), settings.debris_max_frac, sds))
    b.rectangle("leukocytes", "singlets", {fsc: (c, None)})
    def marker_gate(pop: str, parent: str, role: str, keep: str) -> None:
        """One-channel gate on a marker: events above (positive) or below (negative) its cut."""
        if not panel.has(role):
            b.alias(pop, parent)
            return
        ch = panel.pnn(role)
        c = note(pop, finders.positive_cut(b.values(ch, parent), zero[ch], sds))
        b.rectangle(pop, parent, {ch: (c, None) if keep == "above" else (None, c)})

    marker_gate("live", "leukocytes", "viability", keep="below")   # viability-dye negative
    marker_gate("cd45", "live", "cd45", keep="above")
    # lymphocytes: the low-SSC population
    c = note("lymphocytes", finders.low_population_cut(b.values(ssc, "cd45"), sds))
    b.rectangle("lymphocytes", "cd45", {ssc: (None, c)})
    marker_gate("t_cells", "lymphocytes", "t_cell", keep="above")
    if stop_after == "t_cells":
        return g
    # CAR+ T cells
    car = panel.pnn("car")
    if control is not None:
        cv = float(np.asarray(xforms[car].apply(np.array([[control.car_raw]]))).ravel()[0])
        c = note("car_t", finders.Cut(cv, "control", control.source))
    else:
        c = note("car_t", finders.positive_cut(b.values(car, "t_cells"), zero[car], sds))
    b.rectangle("car_t", "t_cells", {car: (c, None)})
    # CD4 / CD8, cuts found on all T cells and used for CAR T cells too
    c4ch, c8ch = panel.pnn("cd4"), panel.pnn("cd8")
    ref = "t_cells" if b.count("t_cells") >= settings.min_events_for_density else "lymphocytes"
    c4 = note("cd4_cut", finders.positive_cut(b.values(c4ch, ref), zero[c4ch], sds))
    c8 = note("cd8_cut", finders.positive_cut(b.values(c8ch, ref), zero[c8ch], sds))
    for parent, prefix in (("t_cells", "t"), ("car_t", "car")):
        b.rectangle(f"{prefix}_cd4", parent, {c4ch: (c4, None), c8ch: (None, c8)})
        b.rectangle(f"{prefix}_cd8", parent, {c4ch: (None, c4), c8ch: (c8, None)})
    return g


def control_cut(sample: fk.Sample, panel: ResolvedPanel, comp: Compensation,
                settings: AutoSettings = AutoSettings()) -> ControlCut:
    """The CAR threshold from a negative-control tube: a high percentile of CAR among its T cells."""
    g = auto_gate(sample, panel, comp, settings, stop_after="t_cells")
    car = panel.pnn("car")
    vals = g.builder.values(car, "t_cells")
    if vals.size < 100:
        raise ValueError(f"negative control {sample.id}: only {vals.size} T-cell events; at least 100 are "
                         f"needed to take the {settings.control_percentile}th percentile of the CAR channel")
    cut = finders.percentile_cut(vals, settings.control_percentile)
    xf = g.strategy.get_transform(xform_id(car))
    raw = float(np.asarray(xf.inverse(np.array([[cut.value]]))).ravel()[0])
    return ControlCut(raw, f"{settings.control_percentile}th percentile of CAR on {vals.size} T cells of {sample.id}", int(vals.size))
