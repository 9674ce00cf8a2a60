"""Reading the user's CSV tables (manifest, clinical, labs, cohort) the same way everywhere:
all cells as text (empty = unknown), lower-case header names, required columns checked; and the
spreadsheet-safe form of text cells in the tables cytomnt writes, both ways."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def read_table(path: str | Path, required, label: str, error: type[Exception], optional=()) -> pd.DataFrame:
    """The CSV at ``path`` with its columns checked; problems raise ``error`` naming the file."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except UnicodeDecodeError as exc:
        raise error(f"{label} {path}: not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at position "
                    f"{exc.start}); save it as UTF-8 CSV (Excel: 'CSV UTF-8')") from exc
    except Exception as exc:  # noqa: BLE001 - any parser failure is reported with the file name
        raise error(f"{label} {path}: cannot be read as CSV ({exc})") from exc
    df.columns = [c.strip().lower() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        opt = f" (optional: {', '.join(optional)})" if optional else ""
        found = [f"'{c}' for {near_miss(c, missing)}" for c in df.columns if near_miss(c, missing)]
        hint = f" (did you mean {', '.join(found)}?)" if found else ""
        raise error(f"{label} {path}: missing column(s) {', '.join(missing)}{hint}; expected {', '.join(required)}{opt}; "
                    f"empty cells mean unknown")
    if optional:
        for col in df.columns:
            guess = near_miss(col, (*required, *optional))
            if guess and guess not in df.columns:
                raise error(f"{label} {path}: column '{col}' is not one cytomnt reads; did you mean {guess}? "
                            f"(rename it; other columns are ignored)")
    return df


def near_miss(name: str, known, cutoff: float = 0.8) -> str:
    """The known name ``name`` was probably meant to be ('' when it is known or nothing is close):
    a close spelling ('alc_k_per_ul_' for 'alc_k_per_ul'), or the one known name it begins ('alc')."""
    import difflib
    if not name or name in known:
        return ""
    starts = [k for k in known if k.startswith(name)]
    if len(name) >= 3 and len(starts) == 1:
        return starts[0]
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=cutoff)
    return close[0] if close else ""


#: First characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: str) -> str:
    """Text from files and users as a spreadsheet will show it, never run it: a cell starting like a
    formula gets a leading apostrophe (the OWASP rule). Numbers are not text and stay as they are."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def cell_text(value):
    """A text cell of a table cytomnt wrote, as it was before :func:`text_cell` (the apostrophe off)."""
    if isinstance(value, str) and len(value) > 1 and value[0] == "'" and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def read_own_csv(path, **kwargs) -> pd.DataFrame:
    """A table cytomnt wrote (samples.csv ...), its text cells as they were."""
    df = pd.read_csv(path, **kwargs)
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].map(cell_text)
    return df
