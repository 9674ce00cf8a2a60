"""A fast evaluator of FlowKit gating strategies, event-for-event identical to
``GatingStrategy.gate_sample``.

Where the time goes in FlowKit: every gate re-transforms each of its dimensions over all
events and builds DataFrames. Here:

- each gate is evaluated only on its parent's events, in chunks (bounded memory, no copy of
  the event matrix);
- compensation is done with the matrix inverse (fast) and a one-sided cut on a monotone
  transform is mapped back to raw units, so most events are never transformed at all;
- events whose fast value lies within a tiny band of a boundary are recomputed with FlowKit's
  own arithmetic (``np.linalg.solve`` compensation, the transform's ``apply``), so membership is
  exactly FlowKit's, not merely close. Polygons and ellipsoids use that exact path throughout.
"""
from __future__ import annotations

import functools

from dataclasses import dataclass, field

import flowkit as fk
import numpy as np
from flowkit import gates as fk_gates
from flowkit.exceptions import QuadrantReferenceError
from flowutils import gating as fu_gating

from gating.evaluator.bounds import in_ellipse, in_polygon, in_range, margin, raw_bounds, sure_and_near
from gating.evaluator.compref import CompRef, resolve_comp
from gating.evaluator.order import evaluation_order
from gating.preprocess import raw_column

#: Rows per chunk: bounds temporary memory to chunk x channels x 8 bytes.
CHUNK = 1 << 17
#: Rectangle and quadrant gates on a parent holding at least this share of the events are
#: decided over all events at once (:mod:`gating.evaluator.bounds`); smaller parents row by row.
WHOLE_COLUMN_SHARE = 1 / 8
@dataclass
class EvalResult:
    """Per-gate membership (boolean over all events) keyed like FlowKit: (gate name, parent path)."""

    sample_id: str
    event_count: int
    membership: dict = field(default_factory=dict)
    on_gate: object = None          # called with (key, mask) as each gate's membership is final

    def add(self, key: tuple, mask: np.ndarray) -> None:
        self.membership[key] = mask
        if self.on_gate is not None:
            self.on_gate(key, mask)

    def get(self, gate_name: str, gate_path: tuple[str, ...] | None = None) -> np.ndarray:
        if gate_path is None:
            hits = [k for k in self.membership if k[0] == gate_name]
            if len(hits) != 1:
                raise KeyError(f"gate '{gate_name}' is {'ambiguous' if hits else 'unknown'}; give its path")
            return self.membership[hits[0]]
        return self.membership[(gate_name, tuple(gate_path))]

    def counts(self) -> dict:
        return {k: int(v.sum()) for k, v in self.membership.items()}


class Evaluator:
    """Evaluate one FlowKit ``GatingStrategy`` on samples, fast and exactly as FlowKit does."""

    def __init__(self, strategy: fk.GatingStrategy, chunk: int = CHUNK):
        self.strategy = strategy
        self.chunk = chunk
        self.gate_ids = strategy.get_gate_ids()
        self.order = evaluation_order(strategy)

    # -- sample-level resolution -------------------------------------------------
    def _channel_index(self, sample, dim_id: str, comp_ref: str | None) -> int:
        pnn, pns = sample.pnn_labels, sample.pns_labels
        if dim_id in pnn:
            return pnn.index(dim_id)
        if dim_id in pns:
            return pns.index(dim_id)
        fj = [label.replace("/", "_") for label in pnn]
        if dim_id in fj:
            return fj.index(dim_id)
        matrix = self.strategy.comp_matrices.get(comp_ref) if comp_ref is not None else None
        detector = matrix.detectors[matrix.fluorochromes.index(dim_id)] \
            if matrix is not None and dim_id in matrix.fluorochromes else None
        if detector not in pnn:                 # the dimension, or the detector a matrix gives it
            raise LookupError(f"dimension '{dim_id}' {f'(detector {detector!r}) ' if detector else ''}is not a "
                              f"channel of this file (by $PnN or $PnS); its channels: {', '.join(pnn)}")
        return pnn.index(detector)

    def _comp(self, sample, ref: str | None, cache: dict) -> CompRef | None:
        if ref not in cache:
            cache[ref] = resolve_comp(self.strategy, sample, ref)
        return cache[ref]

    def _dim_channel(self, sample, dim) -> tuple[int, object]:
        """(channel index, transform or None) of a gate dimension or quadrant divider."""
        dim_id = dim.dimension_ref if isinstance(dim, fk.QuadrantDivider) else dim.id
        comp_ref = dim.compensation_ref if dim.compensation_ref not in (None, "uncompensated") else None
        xf = self.strategy.transformations[dim.transformation_ref] if dim.transformation_ref else None
        return self._channel_index(sample, dim_id, comp_ref), xf

    def _ratio_values(self, sample, dim) -> np.ndarray:
        """A ratio dimension's values for all events, transformed when the dimension says so."""
        v = self.strategy.transformations[dim.ratio_ref].apply(sample)
        if dim.transformation_ref is not None:
            v = self.strategy.transformations[dim.transformation_ref].apply(v)
        return np.asarray(v, dtype=float).ravel()

    # -- values ------------------------------------------------------------------------
    @staticmethod
    def _exact_comp(raw: np.ndarray, rows: np.ndarray, comp: CompRef | None, ch: int) -> np.ndarray:
        if comp is None or ch not in comp.col_of:
            return raw[rows, ch]
        return comp.exact(raw, rows, ch)

    def _fast_column(self, raw: np.ndarray, comp: CompRef | None, ch: int) -> np.ndarray:
        if comp is None or ch not in comp.col_of:
            return raw_column(raw, ch)
        return comp.fast(raw, ch)

    def _exact_values(self, raw, rows, comp, ch, xform) -> np.ndarray:
        v = self._exact_comp(raw, rows, comp, ch)
        if xform is not None:
            v = np.asarray(xform.apply(v.reshape(-1, 1))).ravel()
        return v

    def _decide(self, raw, rows, comp, ch, xform, lo, hi) -> np.ndarray:
        """``lo <= value < hi`` on FlowKit's value for ``rows`` near a bound. A compensated value is
        first taken in float64 with a bound on its distance from FlowKit's (``CompRef.close``):
        that settles every event but those within ~1e-11 of the bound, which FlowKit's own solve
        over all events settles (made only then: it costs 0.2 s on a 1M-event tube)."""
        if comp is None or ch not in comp.col_of:          # raw values are FlowKit's values
            return in_range(self._exact_values(raw, rows, comp, ch, xform), lo, hi)
        value, err = comp.close(raw, rows, ch)
        a, b = value - err, value + err
        if xform is not None:
            a = np.asarray(xform.apply(a.reshape(-1, 1))).ravel()
            b = np.asarray(xform.apply(b.reshape(-1, 1))).ravel()
            a, b = np.minimum(a, b), np.maximum(a, b)
        inside = np.ones(rows.size, dtype=bool)
        outside = np.zeros(rows.size, dtype=bool)
        if lo is not None:
            inside &= a >= lo + margin(lo)
            outside |= b < lo - margin(lo)
        if hi is not None:
            inside &= b < hi - margin(hi)
            outside |= a >= hi + margin(hi)
        open_ = np.flatnonzero(~(inside | outside))
        if open_.size:
            inside[open_] = in_range(self._exact_values(raw, rows[open_], comp, ch, xform), lo, hi)
        return inside

    def _bound_test(self, raw, rows, comp, ch, xform, lo, hi) -> np.ndarray:
        """``lo <= value < hi`` on FlowKit's processed value, for ``rows``: decided on the fast
        column as :func:`gating.evaluator.bounds.sure_and_near` says, FlowKit's arithmetic for the rest."""
        if lo is None and hi is None:
            return np.ones(rows.size, dtype=bool)
        r = raw_bounds(xform, lo, hi)
        if r is None:
            return self._decide(raw, rows, comp, ch, xform, lo, hi)
        sure, near = sure_and_near(self._fast_column(raw, comp, ch)[rows], *r)
        sel = np.flatnonzero(near)
        if sel.size:
            sure[sel] = self._decide(raw, rows[sel], comp, ch, xform, lo, hi)
        return sure

    # -- gates ------------------------------------------------------------------------
    def _gate_rows(self, gate, sample, raw, rows, comps, ratio_cache) -> np.ndarray | dict:
        refs = {d.compensation_ref for d in gate.dimensions if d.compensation_ref not in (None, "uncompensated")}
        if len(refs) > 1:
            raise NotImplementedError("mixed compensation within one gate is not supported (nor by FlowKit)")
        comp_ref = next(iter(refs)) if refs else None
        comp = self._comp(sample, comp_ref, comps)

        def dim_source(dim):
            if isinstance(dim, fk.RatioDimension):
                key = (dim.ratio_ref, dim.transformation_ref)
                if key not in ratio_cache:
                    ratio_cache[key] = self._ratio_values(sample, dim)
                return ("ratio", ratio_cache[key])
            return ("channel", *self._dim_channel(sample, dim))

        def values(src, r):
            if src[0] == "ratio":
                return src[1][r]
            return self._exact_values(raw, r, comp, src[1], src[2])

        def bounded(src, r, lo, hi):
            if src[0] == "ratio":
                return in_range(src[1][r], lo, hi)
            return self._bound_test(raw, r, comp, src[1], src[2], lo, hi)

        if isinstance(gate, fk_gates.RectangleGate):
            srcs = [(dim_source(d), d.min, d.max) for d in gate.dimensions]
            ok = np.ones(rows.size, dtype=bool)
            for src, lo, hi in srcs:
                live = np.flatnonzero(ok)
                if live.size == 0:
                    break
                ok[live] = bounded(src, rows[live], lo, hi)
            return ~ok if gate.use_complement else ok
        if isinstance(gate, (fk_gates.PolygonGate, fk_gates.EllipsoidGate)):
            pts = np.column_stack([values(dim_source(d), rows) for d in gate.dimensions]) if rows.size else \
                np.empty((0, len(gate.dimensions)))
            if isinstance(gate, fk_gates.PolygonGate):
                ok = in_polygon(np.array(gate.vertices, dtype=np.float64), pts[:, 0], pts[:, 1])
                return ~ok if gate.use_complement else ok
            return fu_gating.points_in_ellipsoid(gate.covariance_matrix, gate.coordinates, gate.distance_square, pts)
        if isinstance(gate, fk_gates.QuadrantGate):
            srcs = {d.id: dim_source(d) for d in gate.dimensions}
            out = {}
            for q_id, quad in gate.quadrants.items():
                ok = np.ones(rows.size, dtype=bool)
                for div_ref in quad.divider_refs:
                    lo, hi = quad.get_divider_range(div_ref)
                    live = np.flatnonzero(ok)
                    ok[live] = bounded(srcs[div_ref], rows[live], lo, hi)
                out[q_id] = ok
            return out
        raise TypeError(f"unsupported gate type {type(gate).__name__}")

    def dimension_values(self, sample: fk.Sample, gate, rows: np.ndarray) -> np.ndarray:
        """The values a gate sees for ``rows`` (rows x dims): compensated and transformed as FlowKit does."""
        raw = sample.get_events(source="raw")
        dims = [d for d in gate.dimensions]
        refs = {d.compensation_ref for d in dims if d.compensation_ref not in (None, "uncompensated")}
        comp = self._comp(sample, next(iter(refs)) if refs else None, {})
        cols = []
        for d in dims:
            if isinstance(d, fk.RatioDimension):
                cols.append(self._ratio_values(sample, d)[rows])
                continue
            ch, xf = self._dim_channel(sample, d)
            cols.append(self._exact_values(raw, rows, comp, ch, xf))
        return np.column_stack(cols) if cols else np.empty((rows.size, 0))

    def evaluate(self, sample: fk.Sample, sample_id: str | None = None, on_gate=None) -> EvalResult:
        """Membership of every gate for ``sample``, identical to FlowKit's ``gate_sample``;
        ``on_gate(key, mask)`` is called as each gate's membership is final."""
        sid = sample_id if sample_id is not None else sample.id
        raw = sample.get_events(source="raw")
        n = sample.event_count
        res = EvalResult(str(sid), n, on_gate=on_gate)
        quad_results: dict = {}
        comps: dict = {}
        ratio_cache: dict = {}
        for g_id, g_path in self.order:
            key = (g_id, g_path)
            if key in res.membership:
                continue
            try:
                gate = self.strategy.get_gate(g_id, g_path, sample_id=sid)
            except QuadrantReferenceError:
                continue
            parent = self._parent_mask(g_path, res, quad_results)
            if isinstance(gate, fk_gates.BooleanGate):
                m = _boolean(gate, res.membership, quad_results)
                res.add(key, m if parent is None else (m & parent))
                continue
            try:
                result = self._whole_columns(gate, sample, raw, parent, comps, n)
                if result is None:
                    result = self._by_rows(gate, sample, raw, parent, comps, ratio_cache)
            except LookupError as exc:                      # a dimension the file lacks: which gate, said once
                raise LookupError(f"gate '{g_id}': {exc.args[0] if exc.args else exc}") from exc
            if isinstance(gate, fk_gates.QuadrantGate):
                quad_results[key] = result
                for q, qm in result.items():
                    res.add((q, g_path), qm)
            else:
                res.add(key, result)
        return res

    def _by_rows(self, gate, sample, raw, parent, comps, ratio_cache):
        """A gate's membership (per quadrant for a quadrant gate) from its parent's rows, chunk by chunk."""
        n = raw.shape[0]
        rows_all = np.arange(n) if parent is None else np.flatnonzero(parent)
        quads = isinstance(gate, fk_gates.QuadrantGate)
        out_masks = {q: np.zeros(n, dtype=bool) for q in gate.quadrants} if quads else np.zeros(n, dtype=bool)
        for start in range(0, rows_all.size, self.chunk):
            rows = rows_all[start:start + self.chunk]
            out = self._gate_rows(gate, sample, raw, rows, comps, ratio_cache)
            if quads:
                for q, ok in out.items():
                    out_masks[q][rows[ok]] = True
            else:
                out_masks[rows[out]] = True
        return out_masks

    def _whole_columns(self, gate, sample, raw, parent, comps, n: int):
        """A rectangle's membership (a quadrant gate's, per quadrant; a raw-valued polygon's or
        2-D ellipse's) over all events at once, or None when the gate is not one, its parent is
        small, or a dimension needs the row path (a ratio, a transform whose bounds cannot be
        mapped back)."""
        if not isinstance(gate, (fk_gates.RectangleGate, fk_gates.QuadrantGate, fk_gates.PolygonGate,
                                 fk_gates.EllipsoidGate)):
            return None
        if parent is not None and np.count_nonzero(parent) < WHOLE_COLUMN_SHARE * n:
            return None
        if any(isinstance(d, fk.RatioDimension) for d in gate.dimensions):
            return None
        if isinstance(gate, fk_gates.PolygonGate):        # on raw values only: FlowKit's values as they are
            if any(d.transformation_ref or d.compensation_ref not in (None, "uncompensated") for d in gate.dimensions):
                return None
            cx, cy = (self._dim_channel(sample, d)[0] for d in gate.dimensions)
            # float64 raw values are FlowKit's values; the parent's events only
            ok = in_polygon(np.array(gate.vertices, dtype=np.float64), raw[:, cx], raw[:, cy], parent)
            if not gate.use_complement:
                return ok                                 # already of the parent's events only
            ok = np.logical_not(ok, out=ok)
            return ok if parent is None else np.logical_and(ok, parent, out=ok)
        if isinstance(gate, fk_gates.EllipsoidGate):      # 2-D, on raw values only, as the polygons
            if len(gate.dimensions) != 2 or any(d.transformation_ref or d.compensation_ref not in (None, "uncompensated")
                                                for d in gate.dimensions):
                return None
            cx, cy = (self._dim_channel(sample, d)[0] for d in gate.dimensions)
            return in_ellipse(gate.covariance_matrix, gate.coordinates, gate.distance_square, raw[:, cx], raw[:, cy],
                              parent)                 # of the parent's events only
        refs = {d.compensation_ref for d in gate.dimensions if d.compensation_ref not in (None, "uncompensated")}
        if len(refs) > 1:
            return None
        comp = self._comp(sample, next(iter(refs)) if refs else None, comps)

        def in_bound(dim, lo, hi, within) -> np.ndarray | None:    # lo <= value < hi, exact for ``within``'s events
            ch, xf = self._dim_channel(sample, dim)
            r = raw_bounds(xf, lo, hi)
            if r is None:
                return None
            sure, near = sure_and_near(self._fast_column(raw, comp, ch), *r)
            check = np.flatnonzero(near if within is None else near & within)
            if check.size:
                sure[check] = self._decide(raw, check, comp, ch, xf, lo, hi)
            return sure

        if isinstance(gate, fk_gates.RectangleGate):
            ok = None                                   # in every dimension so far (None: no dimension yet)
            for d in gate.dimensions:
                within = parent if ok is None else ok if parent is None else ok & parent
                sure = in_bound(d, d.min, d.max, within)
                if sure is None:
                    return None
                ok = sure if ok is None else np.logical_and(ok, sure, out=ok)
            ok = np.ones(n, dtype=bool) if ok is None else ok
            if gate.use_complement:
                ok = np.logical_not(ok, out=ok)
            return ok if parent is None else np.logical_and(ok, parent, out=ok)
        # a quadrant gate: each divider's range (x >= v, x < v, ...) is shared by two quadrants, so
        # it is decided once, over the parent's events
        dims = {d.id: d for d in gate.dimensions}
        ranges: dict[tuple, np.ndarray | None] = {}
        out = {}
        for q_id, quad in gate.quadrants.items():
            terms = [] if parent is None else [parent]
            for ref in quad.divider_refs:
                lo, hi = quad.get_divider_range(ref)
                if (ref, lo, hi) not in ranges:
                    ranges[(ref, lo, hi)] = in_bound(dims[ref], lo, hi, parent)
                if ranges[(ref, lo, hi)] is None:
                    return None
                terms.append(ranges[(ref, lo, hi)])
            out[q_id] = functools.reduce(np.logical_and, terms) if len(terms) > 1 else \
                terms[0].copy() if terms else np.ones(n, dtype=bool)
        return out

    @staticmethod
    def _parent_mask(g_path, res: EvalResult, quad_results: dict):
        if g_path == ("root",):
            return None
        p_key = (g_path[-1], tuple(g_path[:-1]))
        if p_key in res.membership and p_key not in quad_results:
            return res.membership[p_key]
        # the parent is a quadrant of a quadrant gate: results live under the gate
        q_key = (g_path[-2], tuple(g_path[:-2]))
        if q_key in quad_results:
            return quad_results[q_key][g_path[-1]]
        return res.membership[p_key]


def _boolean(gate, membership: dict, quad_results: dict) -> np.ndarray:
    """A boolean gate's events, as FlowKit's ``BooleanGate.apply`` combines its references (each
    complemented when it says so; 'and', 'or', or 'not' of the one reference), on the masks."""
    masks = []
    for ref in gate.gate_refs:
        rkey = (ref["ref"], tuple(ref["path"]))
        m = membership[rkey] if rkey in membership else \
            quad_results[(ref["path"][-1], tuple(ref["path"][:-1]))][ref["ref"]]
        masks.append(~m if ref["complement"] else m)
    if gate.type == "and":
        return np.logical_and.reduce(masks)
    if gate.type == "or":
        return np.logical_or.reduce(masks)
    if gate.type == "not":
        return np.logical_not(masks[0])
    raise ValueError(f"boolean gate {gate.gate_name}: type must be 'and', 'or' or 'not', not {gate.type!r}")


def evaluate(strategy: fk.GatingStrategy, sample: fk.Sample, sample_id: str | None = None) -> EvalResult:
    """Shorthand: ``Evaluator(strategy).evaluate(sample)``."""
    return Evaluator(strategy).evaluate(sample, sample_id)
