"""Which events lie within a gate's bounds, decided over all events at once from float32
columns; only events within a narrow band of a bound are left for FlowKit's exact arithmetic.

A bound on a transformed, compensated value is mapped back to raw units (the transforms here
are monotone), then each event's float32 compensated value is compared with the bound widened
and narrowed by two bands (``2e-6 x (1 + |bound|)``, far wider than float32's 6e-8 relative
error and the thresholds' own float32 rounding): above both it is surely in, below both surely
out, between them it is *near* and re-checked exactly by the caller. Also here: a gate's
bounds mapped back to raw units, FlowKit's range test, and point-in-polygon and point-in-ellipse
on the bounding box.
"""
from __future__ import annotations

import functools

import flowkit as fk
import numpy as np
from flowutils import gating as fu_gating

from gating.parallel import over_row_shares, sample_threads


def band(r: float) -> float:
    """Half-width (raw units) of the zone around a raw bound where the exact path is used."""
    return 1e-6 * (1.0 + abs(r))


def _down(x: float) -> np.float32:
    """The largest float32 <= x."""
    f = np.float32(x)
    return f if float(f) <= x else np.nextafter(f, np.float32(-np.inf))


def _up(x: float) -> np.float32:
    """The smallest float32 >= x."""
    f = np.float32(x)
    return f if float(f) >= x else np.nextafter(f, np.float32(np.inf))


def sure_and_near(column: np.ndarray, lo: float | None, hi: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(surely ``lo <= v < hi``, near a bound) for every event of a float32 ``column``, with
    ``lo``/``hi`` in the column's (raw) units; None is no bound."""
    if lo is None and hi is None:
        return np.ones(column.shape, dtype=bool), np.zeros(column.shape, dtype=bool)
    sure = maybe = None                 # surely within the bounds; within them widened by the band
    with np.errstate(over="ignore"):
        if lo is not None:
            w = 2 * band(lo)
            sure = column >= _up(lo + w)
            maybe = column >= _down(lo - w)
        if hi is not None:
            w = 2 * band(hi)
            below, reach = column < _down(hi - w), column < _up(hi + w)
            sure = below if sure is None else np.logical_and(sure, below, out=sure)
            maybe = reach if maybe is None else np.logical_and(maybe, reach, out=maybe)
    # surely in implies maybe in, so the band's events are the ones only maybe in (a NaN is neither)
    return sure, np.logical_xor(maybe, sure, out=maybe)


#: Transforms whose bounds may be mapped back to raw values (monotone increasing, finite everywhere).
_INVERTIBLE = (fk.transforms.LogicleTransform, fk.transforms.AsinhTransform, fk.transforms.LinearTransform,
               fk.transforms.HyperlogTransform)
def raw_bounds(xform, lo: float | None, hi: float | None) -> tuple[float | None, float | None] | None:
    """The bounds of a dimension in raw (untransformed) units, or None when they cannot be mapped
    back (a transform that is not monotone and finite everywhere, or an infinite image)."""
    if xform is not None and not isinstance(xform, _INVERTIBLE):
        return None
    r = tuple(None if b is None else b if xform is None else
              float(np.asarray(xform.inverse(np.array([[b]], dtype=float))).ravel()[0]) for b in (lo, hi))
    return None if any(x is not None and not np.isfinite(x) for x in r) else r


def _in_box(x: np.ndarray, y: np.ndarray, lo, hi, within: np.ndarray | None) -> np.ndarray:
    """Events with ``lo <= (x, y) <= hi`` (edges included), of ``within`` only when given: four
    comparisons over the columns, into one mask."""
    box = x >= lo[0]
    box &= x <= hi[0]
    box &= y >= lo[1]
    box &= y <= hi[1]
    if within is not None:
        box &= within
    return box


def in_polygon(vertices: np.ndarray, x: np.ndarray, y: np.ndarray, within: np.ndarray | None = None) -> np.ndarray:
    """FlowKit's point-in-polygon membership of every event (flowutils' winding test, edges and
    vertices as it decides them), of the events ``within`` only when given.

    Only the events inside the vertices' bounding box (edges included) are tested: a point outside
    the box is outside the polygon and off its edges. Of those, an event in a cell of the polygon's
    grid (:class:`PolygonGrid`) lying wholly inside or outside is decided by its cell; the events
    of cells on or next to an edge go to flowutils, so every decision near an edge is FlowKit's.
    An event's cell index may be one more than its true cell, never less (its value is at least
    the box's low corner): the two-cell NEAR margin covers it. Many events are split in row
    shares over the sample's threads (each decided as alone: the result does not depend on it)."""
    n = x.shape[0]
    if n >= THREADED_EVENTS and sample_threads() > 1:
        out = np.empty(n, dtype=bool)

        def share(a: int, b: int) -> None:
            out[a:b] = _in_polygon(vertices, x[a:b], y[a:b], None if within is None else within[a:b])
        over_row_shares(share, n)
        return out
    return _in_polygon(vertices, x, y, within)


#: Events from which a polygon is decided in row shares on the sample's threads.
THREADED_EVENTS = 1 << 18


def _in_polygon(vertices: np.ndarray, x: np.ndarray, y: np.ndarray, within: np.ndarray | None) -> np.ndarray:
    """:func:`in_polygon` on one thread."""
    box = _in_box(x, y, vertices.min(axis=0), vertices.max(axis=0), within)
    idx = np.flatnonzero(box)
    if not idx.size:
        return box
    grid = polygon_grid(tuple(map(tuple, vertices.tolist())), cells_per_side(idx.size)) \
        if idx.size >= GRID_MIN_EVENTS else None
    if grid is None:
        box[idx] = _flowutils_polygon(vertices, x, y, idx)
        return box
    cls = grid.classes(np.take(x, idx), np.take(y, idx))
    ok = cls == INSIDE
    near = np.flatnonzero(cls == NEAR)
    if near.size:
        ok[near] = _flowutils_polygon(vertices, x, y, idx[near])
    box[idx] = ok
    return box


def _flowutils_polygon(vertices: np.ndarray, x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """flowutils' winding test of the events ``idx`` (FlowKit's membership, edges inclusive)."""
    pts = np.empty((idx.size, 2))
    np.take(x, idx, out=pts[:, 0], mode="clip")     # idx is in range: 'clip' skips the check and a buffer
    np.take(y, idx, out=pts[:, 1], mode="clip")
    return fu_gating.points_in_polygon(vertices, pts)


#: A grid cell's class: wholly outside the polygon, wholly inside, or on or next to an edge.
OUTSIDE, INSIDE, NEAR = 0, 1, 2
#: Fewer events than this in a polygon's box go straight to flowutils (a grid would not pay).
GRID_MIN_EVENTS = 4096


def cells_per_side(events: int) -> int:
    """Grid cells per side for ``events`` in a polygon's box: about sqrt(events), a power of two
    between 64 and 1024, so cells on an edge hold few events and the grid stays small."""
    return int(min(1024, max(64, 2 ** round(np.log2(max(events, 1)) / 2))))


class PolygonGrid:
    """A polygon's bounding box cut into ``n`` x ``n`` cells (plus one row and column for the
    box's far edges), each cell classed OUTSIDE, INSIDE or NEAR.

    A cell is INSIDE or OUTSIDE by the parity of the edges crossing its centre's row to the left
    of the centre (flowutils counts windings and keeps the odd ones: the same parity). A cell an
    edge passes through, and every cell within two cells of one, is NEAR, so an event whose cell
    index is off by one (rounding to the nearest cell, and float error) is still sent to
    flowutils when it is near an edge."""

    def __init__(self, vertices: np.ndarray, n: int):
        self.n, self.lo = n, vertices.min(axis=0)
        self.scale = n / (vertices.max(axis=0) - self.lo)          # cells per data unit, per axis
        side = n + 1
        inside = _centre_parity(vertices, self.lo, self.scale, side)
        near = _edge_cells(vertices, self.lo, self.scale, side)
        near[n, :] = near[:, n] = True                              # events on the box's far edges
        for _ in range(2):
            near = _dilated(near)
        table = inside.astype(np.uint8)
        table[near] = NEAR
        self.table = table.ravel()

    def classes(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """The class of each event's cell; ``xs``, ``ys`` are the box's events (float64, consumed)."""
        cell = self._index(ys, 1)
        cell *= self.n + 1
        cell += self._index(xs, 0)
        return self.table[cell]

    def _index(self, v: np.ndarray, axis: int) -> np.ndarray:
        """Each box event's cell along ``axis`` (``v`` is consumed): ``(v - lo) x scale`` rounded
        to the nearest integer by adding 1.5 x 2^52 (a float64 conversion to integers costs three
        times more), so the floor or one more, 0 to n: the NEAR margin covers the extra cell."""
        v -= self.lo[axis]
        v *= self.scale[axis]
        v += _ROUND
        i = v.view(np.int64)
        i -= _ROUND_BITS
        return i


#: Adding this to a float64 in [0, 2^51) leaves its nearest integer in the low bits of the sum.
_ROUND = 1.5 * 2.0 ** 52
_ROUND_BITS = int(np.float64(_ROUND).view(np.int64))


def _centre_parity(vertices: np.ndarray, lo: np.ndarray, scale: np.ndarray, side: int) -> np.ndarray:
    """Whether each cell centre lies inside (odd crossings of its row to its left), rows by y."""
    a, b = vertices, np.roll(vertices, -1, axis=0)
    cy = lo[1] + (np.arange(side) + 0.5) / scale[1]
    ylo, yhi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    crosses = (ylo[None, :] <= cy[:, None]) & (cy[:, None] < yhi[None, :])          # half-open: even per row
    row, e = np.nonzero(crosses)
    t = (cy[row] - a[e, 1]) / (b[e, 1] - a[e, 1])
    xc = a[e, 0] + t * (b[e, 0] - a[e, 0])
    first = np.clip(np.floor((xc - lo[0]) * scale[0] - 0.5).astype(np.int64) + 1, 0, side)   # first centre right of it
    toggles = np.zeros((side, side + 1), dtype=np.int32)
    np.add.at(toggles, (row, first), 1)
    return (np.cumsum(toggles, axis=1)[:, :side] & 1).astype(bool)


def _edge_cells(vertices: np.ndarray, lo: np.ndarray, scale: np.ndarray, side: int) -> np.ndarray:
    """Cells an edge passes through: each edge sampled at least four times per cell it crosses."""
    hit = np.zeros((side, side), dtype=bool)
    for a, b in zip(vertices, np.roll(vertices, -1, axis=0)):
        steps = int(np.ceil(np.max(np.abs(b - a) * scale) * 4)) + 2
        t = np.linspace(0.0, 1.0, steps)[:, None]
        cells = np.clip(np.floor((a + t * (b - a) - lo) * scale).astype(np.int64), 0, side - 1)
        hit[cells[:, 1], cells[:, 0]] = True
    return hit


def _dilated(m: np.ndarray) -> np.ndarray:
    """``m`` grown by one cell in all eight directions."""
    out = m.copy()
    out[1:] |= m[:-1]
    out[:-1] |= m[1:]
    rows = out.copy()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


@functools.lru_cache(maxsize=64)
def polygon_grid(vertices: tuple, n: int) -> PolygonGrid | None:
    """The grid of a polygon (vertices as a tuple of points), made once per polygon and size (a
    batch gates every file with the same polygons); None when it would not help or cannot be
    made (few events, a box without width or height, non-finite vertices)."""
    v = np.array(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] < 3 or v.shape[1] != 2 or not np.all(np.isfinite(v)):
        return None
    span = v.max(axis=0) - v.min(axis=0)
    if not np.all(span > 0) or not np.all(np.isfinite(n / span)):
        return None
    return PolygonGrid(v, n)


#: Relative width of the band around an ellipse's boundary where flowutils decides (as FlowKit calls it).
ELLIPSE_BAND = 1e-9


def in_ellipse(covariance, center, distance_square: float, x: np.ndarray, y: np.ndarray,
               within: np.ndarray | None = None) -> np.ndarray:
    """FlowKit's membership of every event in a 2-D ellipse (flowutils' ``points_in_ellipsoid``,
    the edge included), of the events ``within`` only when given.

    Only the events inside the ellipse's bounding box (widened a little) are tested, by the same
    quadratic form as flowutils in float64. The rare event whose form lies within ELLIPSE_BAND of
    the boundary is decided as FlowKit decides it, by flowutils over all events: its matrix
    product's last bits are the BLAS kernel's, which may depend on how many rows it is given."""
    cov = np.asarray(covariance, dtype=np.float64)
    c = np.asarray(center, dtype=np.float64)
    inv = np.linalg.inv(cov)
    reach = np.sqrt(max(float(distance_square), 0.0) * np.abs(np.diag(cov))) * (1 + 1e-6) + 1e-9 * (1 + np.abs(c))
    box = _in_box(x, y, c - reach, c + reach, within)
    idx = np.flatnonzero(box)
    if idx.size:
        tx, ty = x[idx] - c[0], y[idx] - c[1]
        a = (tx * inv[0, 0] + ty * inv[1, 0]) * tx
        b = (tx * inv[0, 1] + ty * inv[1, 1]) * ty
        q = a + b
        ok = q <= distance_square
        near = np.abs(q - distance_square) <= ELLIPSE_BAND * (np.abs(a) + np.abs(b) + abs(distance_square))
        if near.any():
            exact = fu_gating.points_in_ellipsoid(cov, c, distance_square, np.column_stack([x, y]))
            ok[near] = exact[idx[near]]
        box[idx] = ok
    return box


def margin(bound: float) -> float:
    """Room for a transform's own rounding around a bound (far below any real spread of values)."""
    return 1e-12 * (1.0 + abs(bound))


def in_range(v: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """``lo <= v < hi`` (None: no bound), as FlowKit's rectangle and quadrant tests."""
    ok = np.ones(v.shape, dtype=bool)
    if lo is not None:
        ok &= v >= lo
    if hi is not None:
        ok &= v < hi
    return ok
