"""Compensation and transforms, done exactly as FlowKit's gate evaluation does them.

The auto-gating code finds cuts on events produced here; FlowKit later evaluates the same
gates from the written strategy. Both use the same ``Matrix.apply`` and ``Transform.apply``,
so a cut found on these values means the same thing in the exported Gating-ML.
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gating import stable
from gating.parallel import over_row_shares

if TYPE_CHECKING:          # FlowKit (and its plotting stack) and pandas load only where they are used
    import flowkit as fk
    import pandas as pd

#: Logicle defaults (FlowKit's 0-1 scale): top of scale from $PnR, 4.5 decades, linear width 0.5.
LOGICLE_W = 0.5
LOGICLE_M = 4.5
LOGICLE_A = 0.0


class CompensationError(ValueError):
    """A spillover matrix is missing, malformed, singular, or does not fit the file."""


@dataclass(frozen=True)
class SpillMatrix:
    """A spillover matrix: detector ($PnN) per row and column, the values, and the fluorochromes."""

    matrix: np.ndarray
    detectors: tuple[str, ...]
    fluorochromes: tuple[str, ...]

    def to_flowkit(self):
        """FlowKit's ``Matrix`` of the same values (for a FlowKit strategy or Gating-ML)."""
        import flowkit as fk
        return fk.Matrix(self.matrix, list(self.detectors), fluorochromes=list(self.fluorochromes))


@dataclass(frozen=True)
class Compensation:
    """The matrix used for a sample (``None`` means uncompensated) and where it came from."""

    matrix: SpillMatrix | None
    source: str            # "$SPILLOVER", "$SPILL", a CSV path, or "none"

    @property
    def ref(self) -> str:
        """The compensation reference gates use: the matrix id, or 'uncompensated'."""
        return "spill" if self.matrix is not None else "uncompensated"

    def describe(self) -> str:
        if self.matrix is None:
            return "none"
        return f"{self.source} ({len(self.matrix.detectors)} detectors)"


def _check_invertible(matrix: np.ndarray, where: str) -> None:
    cond = np.linalg.cond(matrix)
    if not np.isfinite(cond) or cond > 1e12:
        raise CompensationError(f"{where}: spillover matrix is singular (condition number {cond:.3g}); it cannot be inverted")


def compensation_for(sample: fk.Sample, spillover_csv: str | Path | None = None, file: str = "<sample>") -> Compensation:
    """The matrix to compensate ``sample`` with: a user CSV if given, else $SPILLOVER/$SPILL, else none."""
    if spillover_csv is not None:
        try:
            import pandas as pd            # only for a spillover CSV: `cytomnt inspect` loads no pandas
            df = pd.read_csv(spillover_csv, index_col=0)
        except Exception as exc:  # noqa: BLE001
            raise CompensationError(f"spillover file {spillover_csv}: cannot be read as CSV ({exc})") from exc
        cols = [str(c) for c in df.columns]
        missing = [c for c in cols if c not in sample.pnn_labels]
        if missing:
            raise CompensationError(
                f"{file}: spillover file {spillover_csv} names detector(s) {', '.join(missing)} that the file "
                f"does not have; its channels are {', '.join(sample.pnn_labels)}")
        if df.shape[0] != df.shape[1]:
            raise CompensationError(f"spillover file {spillover_csv}: expected a square matrix, got {df.shape[0]} x {df.shape[1]}")
        values = df.to_numpy(dtype=float)
        _check_invertible(values, f"spillover file {spillover_csv}")
        return Compensation(SpillMatrix(values, tuple(cols), tuple(cols)), str(spillover_csv))
    meta = sample.get_metadata()
    for key, label in (("spillover", "$SPILLOVER"), ("spill", "$SPILL")):
        if key in meta and str(meta[key]).strip():
            labels, values = parse_spill_keyword(str(meta[key]), sample, f"{file}: {label}")
            _check_invertible(values, f"{file}: {label}")
            return Compensation(SpillMatrix(values, tuple(labels), tuple(labels)), label)
    return Compensation(None, "none")


def parse_spill_keyword(text: str, sample: fk.Sample, where: str) -> tuple[list[str], np.ndarray]:
    """Detectors and matrix of a $SPILLOVER value: ``n, name_1..name_n, n*n values``.

    Detectors are named by $PnN (or, in some older files, $PnS, mapped back to $PnN);
    fluorescence channels the matrix does not list are left uncompensated.
    """
    tokens = [t.strip() for t in text.replace("\n", ",").split(",") if t.strip() != ""]
    try:
        n = int(float(tokens[0]))
    except (ValueError, IndexError):
        raise CompensationError(f"{where}: expected the number of detectors first, got {tokens[:1]}") from None
    if n < 1 or len(tokens) != 1 + n + n * n:
        raise CompensationError(f"{where}: {n} detectors need {1 + n + n * n} values, found {len(tokens)}")
    names = tokens[1:n + 1]
    pnn = list(sample.pnn_labels)
    pns = list(sample.pns_labels)
    labels = []
    for name in names:
        if name in pnn:
            labels.append(name)
        elif name in pns:
            labels.append(pnn[pns.index(name)])
        elif name.isdigit() and 1 <= int(name) <= len(pnn):
            labels.append(pnn[int(name) - 1])      # detectors named by parameter number (Beckman Gallios)
        else:
            raise CompensationError(f"{where}: detector '{name}' is not a channel of the file; channels: {', '.join(pnn)}")
    try:
        values = np.array([float(v) for v in tokens[n + 1:]]).reshape(n, n)
    except ValueError as exc:
        raise CompensationError(f"{where}: non-numeric spillover value ({exc})") from None
    return labels, values


def logicle_for(sample: fk.Sample, channel: str, w: float | None = LOGICLE_W, m: float = LOGICLE_M,
                a: float = LOGICLE_A, values: np.ndarray | None = None) -> fk.transforms.LogicleTransform:
    """FlowKit logicle for a channel, top of scale from its $PnR (262144 when absent).

    ``w=None`` estimates the width from ``values`` (the channel's compensated events).
    """
    import flowkit as fk
    t = channel_top(sample, channel)
    if w is None:
        w = estimate_logicle_w(np.asarray(values, dtype=float), t, m) if values is not None else LOGICLE_W
    return fk.transforms.LogicleTransform(param_t=t, param_w=w, param_m=m, param_a=a)


def channel_top(sample: fk.Sample, channel: str) -> float:
    """The top of a channel's scale after decoding: ``$PnR`` for linear channels; for a log-amplified
    one (``$PnE`` = f1,f2 with f1 > 0) the decoded maximum f2 x 10^f1 (``$PnR`` is then the ADC's
    range, e.g. 1024, not the data's); 262144 when the file says nothing usable."""
    idx = sample.get_channel_index(channel)
    meta = sample.get_metadata()
    try:
        f1, f2 = (float(x) for x in str(meta.get(f"p{idx + 1}e", "0,0")).split(",")[:2])
    except ValueError:
        f1, f2 = 0.0, 0.0
    if f1 > 0:
        return (f2 if f2 > 0 else 1.0) * 10.0 ** f1
    try:
        t = float(sample.channels.loc[idx, "pnr"])
    except (KeyError, ValueError, TypeError):
        t = 262144.0
    return t if np.isfinite(t) and t > 0 else 262144.0


def estimate_logicle_w(values: np.ndarray, t: float, m: float = LOGICLE_M, quantile: float = 0.05,
                       w_min: float = LOGICLE_W) -> float:
    """Logicle width for a channel from its data (flowCore's estimateLogicle rule).

    W = (M - log10(T / |r|)) / 2, r being the 5th percentile of the negative values: wide
    enough that compensated negatives spread as one population instead of piling up into a
    false second peak. Never narrower than ``w_min``, never wider than M/2 allows.
    """
    neg = values[values < 0]
    if neg.size < 10:
        return w_min
    r = abs(float(np.quantile(neg, quantile)))
    if r <= 0:
        return w_min
    w = (m - math.log10(t / r)) / 2.0     # math (libm), not numpy's CPU-specific vector code
    return float(min(max(w, w_min), m / 2.0 - 1e-3))


def describe_transform(xform) -> str:
    """A one-line description of a FlowKit transform for the results table."""
    name = type(xform).__name__.replace("Transform", "").lower()
    params = {k.replace("param_", ""): v for k, v in vars(xform).items() if k.startswith("param_")}
    return f"{name}(" + ",".join(f"{k.upper()}={v:g}" for k, v in params.items()) + ")"


def compensated_events(sample: fk.Sample, comp: Compensation) -> np.ndarray:
    """All events compensated with ``comp`` (raw when uncompensated), float64, all channels.

    FlowKit's ``Matrix.apply`` solves with LAPACK, whose last bits depend on the CPU kernel, the
    thread count and the number of rows; here the matrix is inverted and applied with
    :mod:`gating.stable`, so every machine gets the same bits. The two agree to ~1e-15
    relative: an event would have to lie that close to a cut for FlowKit's re-evaluation of the
    exported gates to place it differently.
    """
    raw = sample.get_events(source="raw")
    if comp.matrix is None:
        return raw.copy()
    idx = [sample.get_channel_index(d) for d in comp.matrix.detectors]
    out = raw.astype(np.float64, copy=True)
    inv = stable.inverse(np.asarray(comp.matrix.matrix, dtype=float))
    for start, stop, block in stable.product_blocks(raw, idx, inv):
        out[start:stop, idx] = block.T
    return out


#: id(raw events array) -> {(columns, inverse bytes): compensated rows, channel: float32 column};
#: an entry lives as long as its events array (gating and statistics of a sample share them).
_COMPENSATED: dict[int, dict] = {}


def _cache_of(raw: np.ndarray) -> dict:
    per_array = _COMPENSATED.get(id(raw))
    if per_array is None:
        per_array = _COMPENSATED[id(raw)] = {}
        weakref.finalize(raw, _COMPENSATED.pop, id(raw), None)
    return per_array


def raw_column(raw: np.ndarray, channel: int) -> np.ndarray:
    """One channel of ``raw`` as a contiguous float32 array (cached per events array; exact for
    float32 files, within 6e-8 relative otherwise). Read-only."""
    cache = _cache_of(raw)
    if channel not in cache:
        col = np.ascontiguousarray(raw[:, channel], dtype=np.float32)
        col.setflags(write=False)
        cache[channel] = col
    return cache[channel]


def compensated_channels(raw: np.ndarray, columns: list[int], inverse: np.ndarray) -> np.ndarray:
    """``raw[:, columns] @ inverse`` as float32, one contiguous row per detector, with
    :mod:`gating.stable`'s bits; computed once per events array and matrix. Read-only."""
    per_array = _cache_of(raw)
    key = (tuple(columns), np.asarray(inverse, dtype=np.float64).tobytes())
    if key not in per_array:
        n = raw.shape[0]
        rows = np.empty((np.shape(inverse)[1], n), dtype=np.float32)

        def fill(first: int, last: int) -> None:            # one share of the events per thread
            for start, stop, block in stable.product_blocks(raw[first:last], columns, inverse):
                rows[:, first + start:first + stop] = block
        over_row_shares(fill, n)
        rows.setflags(write=False)
        per_array[key] = rows
    return per_array[key]


def processed_events(sample: fk.Sample, comp: Compensation, transforms: dict[str, object],
                     compensated: np.ndarray | None = None) -> pd.DataFrame:
    """Events compensated with ``comp`` and transformed per channel, columns named by $PnN.

    Identical, value for value, to what ``GatingStrategy.gate_sample`` computes for a gate
    dimension with the same compensation and transformation references.
    """
    events = compensated if compensated is not None else compensated_events(sample, comp)
    import pandas as pd
    df = pd.DataFrame(events, columns=list(sample.pnn_labels))
    for ch, xf in transforms.items():
        df[ch] = xf.apply(events[:, [sample.get_channel_index(ch)]]).ravel()
    return df


def raw_value(xform, value: float) -> float:
    """The data-unit value a monotone transform maps to ``value`` (``value`` itself without a
    transform): its inverse, or bisection for a transform without one."""
    if xform is None:
        return float(value)
    if hasattr(xform, "inverse"):
        try:
            return float(np.asarray(xform.inverse(np.array([[value]], dtype=float))).ravel()[0])
        except Exception:  # noqa: BLE001 - fall back to bisection
            pass
    lo, hi = -1e7, 1e7
    f = lambda v: float(np.asarray(xform.apply(np.array([[v]], dtype=float))).ravel()[0])  # noqa: E731
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) < value:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
