"""Arithmetic whose every bit is the same on any CPU, BLAS kernel, thread count and row blocking.

BLAS and LAPACK (``@``, ``np.linalg.solve``/``inv``) pick kernels by CPU (AVX2, AVX-512...) and
split work by thread count and matrix shape; the last bits of a result then depend on the
machine, on how many rows were passed at once, and on the number of threads (seen here: the
same event compensated alone or among 1,200 others differs in the last bit). Numbers that
reach a results table are computed here instead, from element-wise numpy operations (each an
IEEE-754 correctly rounded multiply or add, never fused), always in the same order.
"""
from __future__ import annotations

import numpy as np

#: Rows per block: keeps a block's working set in cache; the result does not depend on it.
BLOCK_ROWS = 1 << 15


class SingularMatrixError(ValueError):
    """The matrix has no inverse (a zero pivot after partial pivoting)."""


def inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a small square matrix by Gauss-Jordan elimination with partial pivoting.

    Row operations are element-wise (``row - f * pivot_row``), in a fixed order, so the result
    is bit-identical everywhere; spillover matrices are small (up to a few dozen detectors).
    """
    a = np.array(matrix, dtype=np.float64)
    n = a.shape[0]
    if a.ndim != 2 or a.shape[1] != n:
        raise ValueError(f"expected a square matrix, got shape {a.shape}")
    aug = np.hstack([a, np.eye(n)])
    for col in range(n):
        pivot = col + int(np.argmax(np.abs(aug[col:, col])))
        if aug[pivot, col] == 0.0 or not np.isfinite(aug[pivot, col]):
            raise SingularMatrixError(f"matrix is singular (no pivot in column {col + 1})")
        if pivot != col:
            aug[[col, pivot]] = aug[[pivot, col]]
        aug[col] = aug[col] / aug[col, col]
        for row in range(n):
            if row != col and aug[row, col] != 0.0:
                aug[row] = aug[row] - aug[row, col] * aug[col]
    return aug[:, n:].copy()


def matmul(values: np.ndarray, inv: np.ndarray, out_dtype=np.float64) -> np.ndarray:
    """``values @ inv`` (events x detectors) by element-wise multiply-adds in a fixed order.

    Each output element is ``((v0*m0 + v1*m1) + v2*m2) + ...`` over the detectors in matrix
    order (zero coefficients included), whatever the number of rows, the block size or the
    machine.
    """
    values = np.asarray(values)
    out = np.empty((values.shape[0], np.shape(inv)[1]), dtype=out_dtype)
    for start, stop, block in product_blocks(values, range(values.shape[1]), inv):
        out[start:stop] = block.T
    return out


def _float64_run(column: np.ndarray, buffer: np.ndarray) -> np.ndarray:
    """A column slice as contiguous float64: itself when it is one (column-major events), else
    copied into ``buffer``."""
    if column.dtype == np.float64 and column.flags.c_contiguous:
        return column
    np.copyto(buffer, column)
    return buffer


def product_blocks(events: np.ndarray, columns, inv: np.ndarray):
    """(start, stop, block of ``events[start:stop, columns] @ inv`` transposed), block by block.

    Per block, the products of one input column with every output column are one broadcast
    multiply, added in input-column order: a few dozen large numpy calls per block instead of
    one per matrix element, and the same bits as one element at a time. The yielded block is
    reused for the next one.
    """
    columns = list(columns)
    inv = np.asarray(inv, dtype=np.float64)
    d, k = inv.shape
    if len(columns) != d:
        raise ValueError(f"{len(columns)} columns for a {d}x{k} matrix")
    n = events.shape[0]
    rows = min(n, BLOCK_ROWS)
    cols, term, acc = np.empty((d, rows)), np.empty((k, rows)), np.empty((k, rows))
    for start in range(0, n, BLOCK_ROWS):
        stop = min(n, start + BLOCK_ROWS)
        m = stop - start
        t, a = term[:, :m], acc[:, :m]
        c = [_float64_run(events[start:stop, col], cols[i, :m]) for i, col in enumerate(columns)]
        np.multiply(inv[0][:, None], c[0], out=a)
        for i in range(1, d):
            np.multiply(inv[i][:, None], c[i], out=t)
            np.add(a, t, out=a)
        yield start, stop, a
