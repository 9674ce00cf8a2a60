"""Gate plots: one PNG per sample, the hierarchy's gates drawn on their parent's events.

Gates that share a parent and axes (e.g. the CD4 and CD8 quadrants of T cells) are drawn on
one panel; 1-D gates as a histogram with the cut, 2-D gates as a density plot with the
polygon, rectangle or ellipse. Each gate carries its name and event count.
"""
from __future__ import annotations

from pathlib import Path

import flowkit as fk
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Ellipse, Polygon, Rectangle  # noqa: E402

from .evaluate import Evaluator  # noqa: E402

MAX_POINTS = 20_000
COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e")


def _label(sample: fk.Sample, dim) -> str:
    dim_id = getattr(dim, "dimension_ref", None) or getattr(dim, "id", None) or getattr(dim, "ratio_ref", "?")
    if dim_id in sample.pnn_labels:
        pns = sample.pns_labels[sample.pnn_labels.index(dim_id)]
        return f"{pns} ({dim_id})" if pns and pns != dim_id else dim_id
    return str(dim_id)


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


def _rect_bounds(gate):
    b = []
    for d in gate.dimensions:
        b.append((d.min, d.max))
    return b


def plot_sample(strategy: fk.GatingStrategy, sample: fk.Sample, membership: dict, path: str | Path,
                title: str = "", sample_id: str | None = None, seed: int = 0) -> Path:
    """Draw every gate of ``strategy`` on ``sample`` into one PNG at ``path``.

    ``membership`` maps (gate name, parent path) -> boolean mask, as from the evaluator.
    """
    ev = Evaluator(strategy)
    panels = _panels(strategy, sample_id)
    n = max(len(panels), 1)
    ncol = min(4, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.8 * nrow), squeeze=False)
    rng = np.random.default_rng(seed)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    total = sample.event_count
    for ax, ((ppath, dims), gates) in zip(axes.ravel(), panels):
        parent_key = (ppath[-1], ppath[:-1])
        parent = membership.get(parent_key) if ppath != ("root",) else np.ones(total, dtype=bool)
        if parent is None:
            parent = np.ones(total, dtype=bool)
        rows = np.flatnonzero(parent)
        shown = np.sort(rng.choice(rows, MAX_POINTS, replace=False)) if rows.size > MAX_POINTS else rows
        first = gates[0][1]
        vals = ev.dimension_values(sample, first, shown)
        parent_name = ppath[-1] if ppath != ("root",) else "all events"
        ax.set_title(f"{parent_name} ({rows.size:,} events)", fontsize=9)
        ax.set_xlabel(_label(sample, first.dimensions[0]), fontsize=8)
        if vals.shape[1] >= 2:
            if shown.size:
                ax.hexbin(vals[:, 0], vals[:, 1], gridsize=80, bins="log", cmap="viridis", mincnt=1, linewidths=0)
            ax.set_ylabel(_label(sample, first.dimensions[1]), fontsize=8)
        elif vals.shape[1] == 1 and shown.size:
            ax.hist(vals[:, 0], bins=120, color="#555555", histtype="stepfilled", alpha=0.7)
            ax.set_ylabel("events", fontsize=8)
        for k, (name, gate) in enumerate(gates):
            colour = COLOURS[k % len(COLOURS)]
            count = int(membership.get((name, ppath), np.zeros(0, bool)).sum())
            pct = 100.0 * count / rows.size if rows.size else 0.0
            text = f"{name}\n{count:,} ({pct:.1f}%)"
            _draw(ax, gate, vals, colour, text)
        ax.tick_params(labelsize=7)
    fig.suptitle(title or str(sample_id or sample.id), fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _draw(ax, gate, vals, colour, text) -> None:
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    if isinstance(gate, fk.gates.RectangleGate):
        b = _rect_bounds(gate)
        if len(b) == 1:
            for v in b[0]:
                if v is not None:
                    ax.axvline(v, color=colour, lw=1.5)
            lo = b[0][0] if b[0][0] is not None else xlim[0]
            hi = b[0][1] if b[0][1] is not None else xlim[1]
            ax.text((max(lo, xlim[0]) + min(hi, xlim[1])) / 2, ylim[1] * 0.85, text, color=colour, fontsize=8,
                    ha="center", va="top")
        else:
            (x0, x1), (y0, y1) = b[0], b[1]
            x0 = xlim[0] if x0 is None else x0
            x1 = xlim[1] if x1 is None else x1
            y0 = ylim[0] if y0 is None else y0
            y1 = ylim[1] if y1 is None else y1
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=colour, lw=1.5))
            ax.text(x0 + 0.02 * (xlim[1] - xlim[0]), y1 - 0.04 * (ylim[1] - ylim[0]), text, color=colour,
                    fontsize=8, va="top")
        ax.set_xlim(xlim)
        ax.set_ylim(ylim)
    elif isinstance(gate, fk.gates.PolygonGate):
        v = np.asarray(gate.vertices, dtype=float)
        ax.add_patch(Polygon(v, closed=True, fill=False, ec=colour, lw=1.5))
        ax.set_xlim(xlim)
        ax.set_ylim(ylim)
        ax.text(0.03, 0.95, text, color=colour, fontsize=8, va="top", transform=ax.transAxes)
    elif isinstance(gate, fk.gates.EllipsoidGate) and len(gate.dimensions) == 2:
        cov = np.asarray(gate.covariance_matrix, dtype=float)
        w, vec = np.linalg.eigh(cov)
        r = np.sqrt(gate.distance_square * w)
        angle = np.degrees(np.arctan2(vec[1, 1], vec[0, 1]))
        ax.add_patch(Ellipse(gate.coordinates, 2 * r[1], 2 * r[0], angle=angle, fill=False, ec=colour, lw=1.5))
        ax.text(gate.coordinates[0], gate.coordinates[1], text, color=colour, fontsize=8, ha="center")
    else:
        ax.text(0.03, 0.95, text, color=colour, fontsize=8, va="top", transform=ax.transAxes)
