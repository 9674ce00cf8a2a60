"""Reading the user's CSV tables (manifest, clinical, labs, cohort) the same way everywhere:
all cells as text (empty = unknown), lower-case header names, required columns checked."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def read_table(path: str | Path, required, label: str, error: type[Exception], optional=()) -> pd.DataFrame:
    """The CSV at ``path`` with its columns checked; problems raise ``error`` naming the file."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - any parser failure is reported with the file name
        raise error(f"{label} {path}: cannot be read as CSV ({exc})") from exc
    df.columns = [c.strip().lower() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        opt = f" (optional: {', '.join(optional)})" if optional else ""
        raise error(f"{label} {path}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}{opt}; "
                    f"empty cells mean unknown")
    return df
