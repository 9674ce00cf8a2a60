"""A gate's compensation reference resolved for one sample, and the compensated values it gives:
fast (float32 over all events, shared with the sample's statistics) to tell events far from a
bound, and exact (FlowKit's own arithmetic) for the events near one."""
from __future__ import annotations

from dataclasses import dataclass

import flowkit as fk
import numpy as np

from gating import stable
from gating.preprocess import CompensationError, compensated_channels, parse_spill_keyword


#: Bound on |float64 multiply-add value - FlowKit's solve|, relative to the terms summed.
CLOSE_TOLERANCE = 1e-11


@dataclass
class CompRef:
    """Detector columns of the sample, the spillover matrix and its inverse."""

    indices: list[int]
    matrix: np.ndarray
    inverse: np.ndarray
    col_of: dict[int, int]          # sample channel index -> position among detectors
    flowkit_values: np.ndarray | None = None   # all events compensated by FlowKit's own call, when needed

    def exact(self, raw: np.ndarray, rows: np.ndarray, ch: int) -> np.ndarray:
        """FlowKit's compensated value of channel ``ch`` for ``rows``.

        FlowKit solves for *all* events in one LAPACK call, and the last bit of an event's value
        depends on that call's shape (one event solved alone can differ from the same event
        solved among 1,200). So the exact values come from the very same call, made once per
        sample and matrix (cached), never from a solve over a subset of rows.
        """
        if self.flowkit_values is None:
            self.flowkit_values = np.linalg.solve(self.matrix.T, raw[:, self.indices].T).T
        return self.flowkit_values[rows, self.col_of[ch]]

    def close(self, raw: np.ndarray, rows: np.ndarray, ch: int) -> tuple[np.ndarray, np.ndarray]:
        """Channel ``ch`` compensated for ``rows`` in float64 with a bound on its distance from
        FlowKit's value: the multiply-adds of :func:`gating.stable.matmul` (within 1e-12 of the
        terms summed of an exact solve, and FlowKit's own solve within 8 ulp of them: both
        tested), bounded by 1e-11 of the terms summed, ten times wider than both."""
        x = raw[np.ix_(rows, self.indices)]
        col = self.inverse[:, [self.col_of[ch]]]
        value = stable.matmul(x, col)[:, 0]
        return value, CLOSE_TOLERANCE * (np.abs(x) @ np.abs(col)[:, 0] + 1.0)

    def fast(self, raw: np.ndarray, ch: int) -> np.ndarray:
        """Channel ``ch`` compensated for all events, float32 (relative error ~6e-8, well inside
        the 1e-6 band around a bound where the exact values decide)."""
        return compensated_channels(raw, self.indices, self.inverse)[self.col_of[ch]]


def resolve_comp(strategy: fk.GatingStrategy, sample, ref: str | None) -> CompRef | None:
    """The matrix a gate dimension refers to (``'FCS'``: the file's own spillover), for
    ``sample``; None when uncompensated."""
    if ref is None:
        return None
    if ref == "FCS":
        meta = sample.get_metadata()
        spill = meta.get("spillover", meta.get("spill"))
        if spill is None:
            return None          # Gating-ML: 'FCS' without a spillover means uncompensated
        detectors = [sample.pnn_labels[i] for i in sample.fluoro_indices]
        fluoros = [sample.pns_labels[i] for i in sample.fluoro_indices]
        try:
            matrix = fk.Matrix(spill, detectors, fluoros, null_channels=sample.null_channels)
        except Exception as exc:  # noqa: BLE001 - FlowKit's several-line message, made one specific line
            raise ValueError(_spill_mismatch(spill, sample, detectors, exc)) from exc
    else:
        matrix = strategy.comp_matrices[ref]
    idx = [sample.get_channel_index(d) for d in matrix.detectors]
    m = np.asarray(matrix.matrix, dtype=float)
    return CompRef(idx, m, stable.inverse(m), {ch: j for j, ch in enumerate(idx)})


def _spill_mismatch(spill, sample, detectors: list[str], exc: Exception) -> str:
    """Why FlowKit refuses the file's own spillover for a strategy's 'FCS' compensation, in one line."""
    try:
        listed = parse_spill_keyword(spill, sample, "$SPILLOVER")[0] if isinstance(spill, str) else []
    except CompensationError as bad:
        return str(bad)
    missing = [d for d in detectors if d not in listed]
    if missing:
        return (f"its $SPILLOVER leaves out fluorescence channel(s) {', '.join(missing)}, and the strategy's "
                f"gates use the file's own compensation ('FCS'), which FlowKit makes only from a matrix covering "
                f"every fluorescence channel (FlowKit refuses this file too)")
    return "its $SPILLOVER does not fit its channels for the strategy's 'FCS' compensation: " + \
        " ".join(str(exc).split())
