"""Gate plots a reviewer reads: one PNG per sample, the hierarchy's gates drawn on their parent's
events.

Gates that share a parent and axes (e.g. the CD4 and CD8 gates of T cells) are drawn on one
panel; 1-D gates as a histogram with the cut, 2-D gates as a density plot with the polygon,
rectangle or ellipse. Axes name the marker first (``CD4 · Alexa Fluor 700-A``) and, on logicle
or other log-like scales, carry decade ticks in data units (0, 10², 10³ ...). Ranges come from
robust quantiles of the events (0.5-99.5%, widened to show the gate), so a few artifact events
far out do not squeeze the data into a sliver. Every label sits inside its axes; an empty gate
is drawn dashed with "0 events". A panel may carry a reference (e.g. the events a CAR cut was
judged against), drawn in grey beside the sample's.
"""
from __future__ import annotations

from pathlib import Path

import flowkit as fk
import matplotlib
import matplotlib.markers
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Ellipse, Polygon, Rectangle  # noqa: E402

from gating.evaluator.evaluate import Evaluator  # noqa: E402

MAX_POINTS = 20_000
COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e")
#: Share of events left out at each end when an axis range is chosen.
ROBUST_TAIL = 0.005
_LOG_LIKE = (fk.transforms.LogicleTransform, fk.transforms.AsinhTransform, fk.transforms.LogTransform,
             fk.transforms.HyperlogTransform, fk.transforms.WSPBiexTransform, fk.transforms.WSPLogTransform)
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def axis_label(sample, dim, markers: dict | None = None) -> str:
    """'CD4 · Alexa Fluor 700-A': the marker ($PnS, or the panel's markers table) and the channel."""
    dim_id = getattr(dim, "dimension_ref", None) or getattr(dim, "id", None) or getattr(dim, "ratio_ref", "?")
    marker = (markers or {}).get(dim_id)
    if not marker and dim_id in sample.pnn_labels:
        marker = sample.pns_labels[sample.pnn_labels.index(dim_id)]
    return f"{marker} · {dim_id}" if marker and marker != dim_id else str(dim_id)


def _dim_transform(strategy, dim):
    ref = getattr(dim, "transformation_ref", None)
    return strategy.transformations.get(ref) if ref else None


def _apply(xform, raw: np.ndarray) -> np.ndarray:
    return np.asarray(xform.apply(np.asarray(raw, dtype=float).reshape(-1, 1)), dtype=float).ravel()


def _si(v: float) -> str:
    """50K, 1.2M: data units as a cytometrist reads them."""
    a = abs(v)
    for div, unit in ((1e6, "M"), (1e3, "K")):
        if a >= div:
            return f"{v / div:g}{unit}"
    return f"{v:g}"


def axis_ticks(xform, lo: float, hi: float) -> tuple[list[float], list[str], list[float]]:
    """(positions, labels, minor positions) on an axis from ``lo`` to ``hi`` in the transform's
    units: data-unit decades for log-like transforms (0, 10², 10³ ...; -10² ... below zero, kept
    apart so labels never overlap), round data values (50K, 100K) for linear ones."""
    if xform is not None and isinstance(xform, _LOG_LIKE):
        raw = [0.0] + [s * 10.0 ** e for e in range(2, 8) for s in (1.0, -1.0)]
        with np.errstate(all="ignore"):
            pos = _apply(xform, np.array(raw))
            minor_raw = np.array([s * m * 10.0 ** e for e in range(1, 7) for m in range(2, 10) for s in (1.0, -1.0)])
            minor = _apply(xform, minor_raw)
        keep = sorted((p, r) for p, r in zip(pos, raw) if np.isfinite(p) and lo <= p <= hi)
        shown = []
        for p, r in sorted(keep, key=lambda t: abs(t[1])):          # 0 and the small decades first
            if all(abs(p - q) >= 0.09 * (hi - lo) for q, _ in shown):
                shown.append((p, r))
        shown.sort()
        labels = ["0" if r == 0 else ("-" if r < 0 else "") + "10" + str(int(round(np.log10(abs(r))))).translate(_SUPERSCRIPT)
                  for _, r in shown]
        kept_minor: list[float] = []
        for m in sorted(m for m in minor if np.isfinite(m) and lo <= m <= hi):
            if not kept_minor or m - kept_minor[-1] >= 0.012 * (hi - lo):   # none packed into a smear near 0
                kept_minor.append(m)
        return [p for p, _ in shown], labels, kept_minor
    if xform is None:
        ticks = [t for t in matplotlib.ticker.MaxNLocator(5).tick_values(lo, hi) if lo <= t <= hi]
        return ticks, [_si(t) for t in ticks], []
    raw_lo, raw_hi = (float(xform.inverse(np.array([[v]], dtype=float))[0, 0]) for v in (lo, hi))
    raw = [t for t in matplotlib.ticker.MaxNLocator(5).tick_values(raw_lo, raw_hi) if raw_lo <= t <= raw_hi]
    return list(_apply(xform, np.array(raw))) if raw else [], [_si(t) for t in raw], []


def robust_range(values: np.ndarray, bounds=()) -> tuple[float, float]:
    """An axis range: the events' 0.5-99.5% quantiles padded 5%, widened to show finite gate bounds
    (a bound farther out than twice the events' span, e.g. at an artifact, widens it that far only)."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        finite = [b for b in bounds if b is not None and np.isfinite(b)]
        return (min(finite) - 0.5, max(finite) + 0.5) if finite else (0.0, 1.0)
    lo, hi = np.quantile(v, [ROBUST_TAIL, 1 - ROBUST_TAIL])
    reach = 2.0 * (hi - lo)
    floor, ceiling = lo - reach, hi + reach
    for b in bounds:
        if b is not None and np.isfinite(b):
            lo, hi = min(lo, max(b, floor)), max(hi, min(b, ceiling))
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    return float(lo - pad), float(hi + pad)


def _panels(strategy: fk.GatingStrategy, sample_id: str | None):
    """Gates grouped by (parent path, dimension ids): one panel each, in tree order."""
    groups: dict = {}
    for name, path in strategy.get_gate_ids():
        try:
            gate = strategy.get_gate(name, path, sample_id=sample_id)
        except Exception:  # noqa: BLE001 - quadrant members are drawn with their gate
            continue
        if isinstance(gate, fk.gates.BooleanGate):
            continue
        dims = tuple(getattr(d, "id", None) or getattr(d, "ratio_ref", None) for d in gate.dimensions)
        groups.setdefault((tuple(path), dims), []).append((name, gate))
    return sorted(groups.items(), key=lambda kv: len(kv[0][0]))     # parents' panels first


def _bounds(gate, axis: int) -> list:
    """The gate's coordinates along one axis (bounds, vertices, ellipse extent)."""
    if isinstance(gate, fk.gates.RectangleGate) and axis < len(gate.dimensions):
        d = gate.dimensions[axis]
        return [d.min, d.max]
    if isinstance(gate, fk.gates.PolygonGate):        # a polygon may reach far past the events: not its corners
        return []
    if isinstance(gate, fk.gates.QuadrantGate) and axis < len(gate.dimensions):
        return [float(v) for v in (gate.dimensions[axis].values or [])]
    return []


#: Room around the panels, inches: tick labels and axis names left and below, two title lines
#: above each panel, the figure's title on top and its footnote at the bottom.
MARGIN_IN = {"left": 0.85, "right": 0.2, "bottom": 0.85, "top": 0.95, "between_cols": 0.95, "between_rows": 1.05}


def _layout(fig, nrow: int, ncol: int) -> None:
    """Panels placed with fixed margins (as much room as tight_layout gives these labels, without
    laying the figure out by drawing it once more: half of a gate plot's time)."""
    w, h = fig.get_size_inches()
    m = MARGIN_IN
    left, right = m["left"] / w, 1 - m["right"] / w
    bottom, top = m["bottom"] / h, 1 - m["top"] / h
    ax_w = (w * (right - left) - (ncol - 1) * m["between_cols"]) / ncol
    ax_h = (h * (top - bottom) - (nrow - 1) * m["between_rows"]) / nrow
    fig.subplots_adjust(left=left, right=right, bottom=bottom, top=top,
                        wspace=m["between_cols"] / ax_w, hspace=m["between_rows"] / ax_h)


def plot_sample(strategy: fk.GatingStrategy, sample, membership: dict, path: str | Path, title: str = "",
                sample_id: str | None = None, seed: int = 0, markers: dict | None = None,
                references: dict | None = None) -> Path:
    """Draw every gate of ``strategy`` on ``sample`` into one PNG at ``path``.

    ``membership`` maps (gate name, parent path) -> boolean mask, as from the evaluator;
    ``markers``: channel -> marker for channels without $PnS; ``references``: gate name ->
    (label, boolean mask of reference events, or None when they are not in this file, e.g. a
    control tube's), drawn in grey on that gate's panel and named in its title.
    """
    ev = Evaluator(strategy)
    panels = _panels(strategy, sample_id)
    n = max(len(panels), 1)
    ncol = min(4, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 4.0 * nrow), squeeze=False)
    rng = np.random.default_rng(seed)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    total = sample.event_count
    for ax, ((ppath, dims), gates) in zip(axes.ravel(), panels):
        parent = membership.get((ppath[-1], ppath[:-1])) if ppath != ("root",) else None
        parent = np.ones(total, dtype=bool) if parent is None else parent
        rows = np.flatnonzero(parent)
        shown = np.sort(rng.choice(rows, MAX_POINTS, replace=False)) if rows.size > MAX_POINTS else rows
        first = gates[0][1]
        vals = ev.dimension_values(sample, first, shown)
        parent_name = ppath[-1] if ppath != ("root",) else "all events"
        ref = next(((name,) + references[name] for name, _ in gates if references and name in references), None)
        note = "" if ref is None else (f"\ngrey: {ref[1]}, scaled" if ref[2] is not None else f"\n{ref[1]}")
        # a fixed title position: matplotlib's automatic one lays each panel out once more
        ax.set_title(f"{parent_name} ({rows.size:,} events){note}", fontsize=9, y=1.0, pad=4)
        _axes(ax, strategy, sample, first, vals, gates, markers)
        if vals.shape[1] >= 2:
            if shown.size:
                ax.hexbin(vals[:, 0], vals[:, 1], gridsize=80, bins="log", cmap="viridis", mincnt=1, linewidths=0,
                          extent=(*ax.get_xlim(), *ax.get_ylim()))
        elif vals.shape[1] == 1:
            _histogram(ax, ev, sample, first, vals[:, 0], ref, rng)
        for k, (name, gate) in enumerate(gates):
            count = int(membership.get((name, ppath), np.zeros(0, bool)).sum())
            pct = 100.0 * count / rows.size if rows.size else 0.0
            _draw(ax, gate, COLOURS[k % len(COLOURS)], f"{name}: {count:,} ({pct:.1f}%)", count == 0, k)
        ax.tick_params(labelsize=8)
    fig.suptitle(title or str(sample_id or sample.id), fontsize=11)
    fig.text(0.5, 0.005, "Gate labels: events (% of the panel's parent). Dashed: a gate with no events. Grey outline: "
             "the reference a CAR cut was judged against, scaled to the parent's events.", ha="center", va="bottom",
             fontsize=8, color="#555555")
    _layout(fig, nrow, ncol)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _axes(ax, strategy, sample, gate, vals, gates, markers) -> None:
    """Labels, robust ranges and decade ticks of a panel's one or two axes."""
    setters = ((ax.set_xlabel, ax.set_xlim, ax.set_xticks, ax.set_xticklabels),
               (ax.set_ylabel, ax.set_ylim, ax.set_yticks, ax.set_yticklabels))
    for axis in range(min(vals.shape[1], 2)):
        dim = gate.dimensions[axis]
        label, lim, ticks, ticklabels = setters[axis]
        label(axis_label(sample, dim, markers), fontsize=8)
        lo, hi = robust_range(vals[:, axis], [b for _, g in gates for b in _bounds(g, axis)])
        lim(lo, hi)
        pos, text, minor = axis_ticks(_dim_transform(strategy, dim), lo, hi)
        if pos:
            ticks(pos)
            ticklabels(text)
            _minor_ticks(ax, axis, minor)
    if vals.shape[1] == 1:
        ax.set_ylabel("events", fontsize=8)


def _minor_ticks(ax, axis: int, positions: list[float]) -> None:
    """Minor ticks drawn as one line of tick marks on the axis (as many matplotlib Tick objects
    cost a gate plot a third of its time)."""
    if not positions:
        return
    length, width = matplotlib.rcParams["xtick.minor.size"], matplotlib.rcParams["xtick.minor.width"]
    if axis == 0:
        ax.plot(positions, np.zeros(len(positions)), transform=ax.get_xaxis_transform(), ls="none",
                marker=matplotlib.markers.TICKDOWN, ms=length, mew=width, color="black", clip_on=False)
    else:
        ax.plot(np.zeros(len(positions)), positions, transform=ax.get_yaxis_transform(), ls="none",
                marker=matplotlib.markers.TICKLEFT, ms=length, mew=width, color="black", clip_on=False)


def _histogram(ax, ev, sample, gate, values, ref, rng) -> None:
    """The parent's events along the gate's axis, and the reference's beside them in grey."""
    lo, hi = ax.get_xlim()
    bins = np.linspace(lo, hi, 121)
    if values.size:
        ax.hist(np.clip(values, lo, hi), bins=bins, color="#555555", histtype="stepfilled", alpha=0.7)
    if ref is not None and ref[2] is not None:
        mask = ref[2]
        rows = np.flatnonzero(mask)
        if rows.size:
            shown = np.sort(rng.choice(rows, MAX_POINTS, replace=False)) if rows.size > MAX_POINTS else rows
            rv = ev.dimension_values(sample, gate, shown)[:, 0]
            weight = max(values.size, 1) / rv.size
            ax.hist(np.clip(rv, lo, hi), bins=bins, weights=np.full(rv.size, weight), color="#9e9e9e",
                    histtype="step", lw=1.3)


def _inside(ax, x: float, y: float, text: str, colour: str, dashed: bool, k: int) -> None:
    """A gate's label at data point (x, y), kept inside the axes (and off the other labels)."""
    fx, fy = ax.transLimits.transform((x, y))
    right = fx > 0.5                        # text runs left from a point in the right half
    fx = min(max(fx, 0.02), 0.98)
    fy = min(max(fy, 0.08), 0.95) - 0.075 * k
    ax.text(fx, fy, text, color=colour, fontsize=7.5, va="top", ha="right" if right else "left",
            transform=ax.transAxes, clip_on=True,
            fontstyle="italic" if dashed else "normal",
            bbox={"facecolor": "white", "alpha": 0.9, "edgecolor": "none", "pad": 1.0})


def _draw(ax, gate, colour: str, text: str, empty: bool, k: int) -> None:
    """One gate on its panel, its label inside the axes; an empty gate dashed."""
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    ls = "--" if empty else "-"
    if isinstance(gate, fk.gates.RectangleGate):
        b = [(d.min, d.max) for d in gate.dimensions]
        if len(b) == 1:
            for v in b[0]:
                if v is not None:
                    ax.axvline(v, color=colour, lw=1.5, ls=ls)
            lo = xlim[0] if b[0][0] is None else max(b[0][0], xlim[0])
            _inside(ax, lo, ylim[1], text, colour, empty, k)
        else:
            (x0, x1), (y0, y1) = b[0], b[1]
            x0, x1 = (xlim[0] if x0 is None else x0), (xlim[1] if x1 is None else x1)
            y0, y1 = (ylim[0] if y0 is None else y0), (ylim[1] if y1 is None else y1)
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=colour, lw=1.5, ls=ls))
            _inside(ax, max(x0, xlim[0]), min(y1, ylim[1]), text, colour, empty, k)
    elif isinstance(gate, fk.gates.PolygonGate):
        v = np.asarray(gate.vertices, dtype=float)
        ax.add_patch(Polygon(v, closed=True, fill=False, ec=colour, lw=1.5, ls=ls))
        _inside(ax, float(v[:, 0].min()), float(v[:, 1].max()), text, colour, empty, k)
    elif isinstance(gate, fk.gates.EllipsoidGate) and len(gate.dimensions) == 2:
        cov = np.asarray(gate.covariance_matrix, dtype=float)
        w, vec = np.linalg.eigh(cov)
        r = np.sqrt(gate.distance_square * w)
        angle = np.degrees(np.arctan2(vec[1, 1], vec[0, 1]))
        ax.add_patch(Ellipse(gate.coordinates, 2 * r[1], 2 * r[0], angle=angle, fill=False, ec=colour, lw=1.5, ls=ls))
        _inside(ax, gate.coordinates[0], gate.coordinates[1], text, colour, empty, k)
    else:
        _inside(ax, xlim[0], ylim[1], text, colour, empty, k)
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
