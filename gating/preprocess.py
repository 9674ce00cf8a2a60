"""Compensation and transforms, done exactly as FlowKit's gate evaluation does them.

The auto-gating code finds cuts on events produced here; FlowKit later evaluates the same
gates from the written strategy. Both use the same ``Matrix.apply`` and ``Transform.apply``,
so a cut found on these values means the same thing in the exported Gating-ML.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import flowkit as fk
import numpy as np
import pandas as pd

#: Logicle defaults (FlowKit's 0-1 scale): top of scale from $PnR, 4.5 decades, linear width 0.5.
LOGICLE_W = 0.5
LOGICLE_M = 4.5
LOGICLE_A = 0.0


class CompensationError(ValueError):
    """A spillover matrix is missing, malformed, singular, or does not fit the file."""


@dataclass(frozen=True)
class Compensation:
    """The matrix used for a sample (``None`` means uncompensated) and where it came from."""

    matrix: fk.Matrix | None
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
    detectors = [sample.pnn_labels[i] for i in sample.fluoro_indices]
    if spillover_csv is not None:
        try:
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
        return Compensation(fk.Matrix(values, cols), str(spillover_csv))
    meta = sample.get_metadata()
    for key, label in (("spillover", "$SPILLOVER"), ("spill", "$SPILL")):
        if key in meta and str(meta[key]).strip():
            try:
                matrix = fk.Matrix(meta[key], detectors)
            except Exception as exc:  # noqa: BLE001
                raise CompensationError(f"{file}: {label} keyword cannot be parsed as a spillover matrix ({exc})") from exc
            _check_invertible(matrix.matrix, f"{file}: {label}")
            return Compensation(matrix, label)
    return Compensation(None, "none")


def logicle_for(sample: fk.Sample, channel: str, w: float | None = LOGICLE_W, m: float = LOGICLE_M,
                a: float = LOGICLE_A, values: np.ndarray | None = None) -> fk.transforms.LogicleTransform:
    """FlowKit logicle for a channel, top of scale from its $PnR (262144 when absent).

    ``w=None`` estimates the width from ``values`` (the channel's compensated events).
    """
    idx = sample.get_channel_index(channel)
    try:
        t = float(sample.channels.loc[idx, "pnr"])
    except (KeyError, ValueError, TypeError):
        t = 262144.0
    if not np.isfinite(t) or t <= 0:
        t = 262144.0
    if w is None:
        w = estimate_logicle_w(np.asarray(values, dtype=float), t, m) if values is not None else LOGICLE_W
    return fk.transforms.LogicleTransform(param_t=t, param_w=w, param_m=m, param_a=a)


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
    w = (m - np.log10(t / r)) / 2.0
    return float(min(max(w, w_min), m / 2.0 - 1e-3))


def describe_transform(xform) -> str:
    """A one-line description of a FlowKit transform for the results table."""
    name = type(xform).__name__.replace("Transform", "").lower()
    params = {k.replace("param_", ""): v for k, v in vars(xform).items() if k.startswith("param_")}
    return f"{name}(" + ",".join(f"{k.upper()}={v:g}" for k, v in params.items()) + ")"


def compensated_events(sample: fk.Sample, comp: Compensation) -> np.ndarray:
    """All events compensated with ``comp`` (raw when uncompensated), as FlowKit computes them."""
    return comp.matrix.apply(sample) if comp.matrix is not None else sample.get_events(source="raw").copy()


def processed_events(sample: fk.Sample, comp: Compensation, transforms: dict[str, object],
                     compensated: np.ndarray | None = None) -> pd.DataFrame:
    """Events compensated with ``comp`` and transformed per channel, columns named by $PnN.

    Identical, value for value, to what ``GatingStrategy.gate_sample`` computes for a gate
    dimension with the same compensation and transformation references.
    """
    events = compensated if compensated is not None else compensated_events(sample, comp)
    df = pd.DataFrame(events, columns=list(sample.pnn_labels))
    for ch, xf in transforms.items():
        df[ch] = xf.apply(events[:, [sample.get_channel_index(ch)]]).ravel()
    return df
