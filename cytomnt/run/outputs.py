"""The run's files under OUT: samples, populations and statistics (CSV, Parquet, optional xlsx),
gates/<sample_id>.xml, cytomnt.wsp (the run for FlowJo), plots/<sample_id>.png, run.json, errors.csv,
manifest_check.csv, changes.csv (counts that differ from each sample's previous result).

Every file is written atomically (temporary file, then rename) from the results the store holds
for this run, and a sample's gate plot or Gating-ML that its current result does not have is
removed: no file under OUT shows numbers other than the tables'.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from gating.auto.engine import LearnedCuts
from gating.io.files import atomic_write
from gating.parallel import in_background

from cytomnt.inputs.tables import text_cell
from cytomnt.run.changes import CHANGES_NAME, changes_frame
from cytomnt.sample.documents import WORKSPACE_NAME, workspace
from cytomnt.sample.results import POPULATION_COLUMNS, STATISTICS_COLUMNS, SampleResult, concat_tables, results_frame


def write_outputs(results: Sequence[SampleResult], out: str | Path, record: dict, learned: LearnedCuts,
                  manifest_issues: Sequence[str] = (), xlsx: bool = False, changes: Sequence = ()) -> pd.DataFrame:
    """Write every table and per-sample file of a run; return the samples table. ``record``: the
    run's configuration as run.json keeps it (``config.run_record``); ``learned``: the cuts it used."""
    out = Path(out)
    df = results_frame(results)
    tables = {"samples": df,
              "populations": concat_tables(results, "populations", POPULATION_COLUMNS),
              "statistics": concat_tables(results, "statistics", STATISTICS_COLUMNS)}
    # Parquet (pyarrow, outside the GIL) is written on another thread while the CSVs are formatted
    parquet = [in_background(lambda n=name, t=table: atomic_write(out / f"{n}.parquet", parquet_bytes(t)))
               for name, table in tables.items()]
    for name, table in tables.items():
        atomic_write(out / f"{name}.csv", csv_bytes(table))
    for done in parquet:
        done.result()
    if xlsx:
        write_xlsx(out / "statistics.xlsx", tables)
    else:
        (out / "statistics.xlsx").unlink(missing_ok=True)      # an earlier run's workbook is not this run's
    atomic_write(out / WORKSPACE_NAME, workspace([r.flowjo for r in results]))
    for r in results:
        _sync(out / "gates" / f"{r.sample_id}.xml", r.gatingml)
        _sync(out / "plots" / f"{r.sample_id}.png", r.plot_png)
    if learned.cuts:
        learned.to_yaml(out / "learned_cuts.yaml")
    else:
        (out / "learned_cuts.yaml").unlink(missing_ok=True)     # an earlier run's cuts are not this run's
    atomic_write(out / "run.json", json.dumps(record, indent=2, sort_keys=True, default=str).encode())
    write_quarantine(results, out)
    write_manifest_check(manifest_issues, out)
    atomic_write(out / CHANGES_NAME, csv_bytes(changes_frame(list(changes))))
    return df


def _sync(path: Path, content: bytes | None) -> None:
    """Write ``content`` to ``path``, or remove a stale file when the current result has none."""
    if content is not None:
        atomic_write(path, content)
    else:
        path.unlink(missing_ok=True)


#: Tables of at least this many rows format each distinct value of a column once; smaller ones
#: (a run's one-row samples table) go through one object array, without per-column pandas calls.
FACTORIZE_ROWS = 64


def csv_bytes(table: pd.DataFrame) -> bytes:
    """A table as CSV: 6 significant digits, '\\n' line ends, no index, empty cells for missing
    values (the same bytes everywhere, and the same as pandas' ``to_csv(float_format="%.6g")``),
    the rows joined by the csv module."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([str(c) for c in table.columns])
    if len(table.columns) and len(table):
        if len(table) >= FACTORIZE_ROWS:
            columns = (_distinct_cells(table.iloc[:, j]) for j in range(len(table.columns)))
        else:
            floats = [isinstance(dtype, np.dtype) and dtype.kind == "f" for dtype in table.dtypes]
            columns = (_float_cells(values.tolist()) if f else [_cell(v) for v in values.tolist()]
                       for values, f in zip(table.to_numpy(dtype=object).T, floats))
        writer.writerows(zip(*columns))
    return out.getvalue().encode()


def _float_cells(values: list) -> list[str]:
    return ["" if v != v else "%.6g" % v for v in values]


def _distinct_cells(col: pd.Series) -> list[str]:
    """One column's cells, each distinct value formatted once (a statistics table repeats its
    counts, populations and channels row after row)."""
    plain = isinstance(col.dtype, np.dtype)          # numpy's own dtypes (not pandas' nullable ones)
    if plain and col.dtype.kind == "f":           # distinct bit patterns: -0.0 stays apart from 0.0
        codes, uniques = pd.factorize(col.to_numpy(dtype=np.float64).view(np.int64))
        cells = _float_cells(uniques.view(np.float64).tolist())
    elif plain and col.dtype.kind in "iu":
        codes, uniques = pd.factorize(col.to_numpy())
        cells = [str(v) for v in uniques.tolist()]
    elif col.dtype == object and pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty"):
        codes, uniques = pd.factorize(col.to_numpy())     # None and NaN: code -1, the last cell
        cells = [text_cell(v) for v in uniques.tolist()] + [""]
    else:
        return [_cell(v) for v in col.to_numpy(dtype=object).tolist()]
    return np.array(cells, dtype=object)[codes].tolist()


def _cell(v) -> str:
    """A cell as pandas writes it with ``float_format="%.6g"`` and ``na_rep=""``: missing values
    (None, NaN, pd.NA, NaT) empty, floats in 6 significant digits, text as :func:`text_cell`
    shows it, anything else as ``str``."""
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, float):
        return "" if v != v else "%.6g" % v
    if isinstance(v, str):
        return text_cell(v)
    return str(v)


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """A table as Parquet; text columns as strings (None for empty), so the schema is stable. A
    column holding only text and empty cells is Arrow's string column as it is; only a column
    mixing text with other values is converted, value by value."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    text = {c: [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in col.tolist()]
            for c, col in df.items() if col.dtype == object
            and pd.api.types.infer_dtype(col, skipna=True) not in ("string", "empty")}
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df.assign(**text) if text else df, preserve_index=False), buf)
    return buf.getvalue()


def write_xlsx(path: Path, tables: dict[str, pd.DataFrame]) -> None:
    """One workbook, a sheet per table, when openpyxl is installed (``pip install 'cytomnt[xlsx]'``)."""
    import importlib.util
    import warnings
    if importlib.util.find_spec("openpyxl") is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    try:
        with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
            for name, table in tables.items():
                table.to_excel(xw, sheet_name=name, index=False)
                for row in xw.sheets[name].iter_rows():      # text that looks like a formula stays text
                    for cell in row:
                        if cell.data_type == "f":
                            cell.data_type = "s"
        os.replace(tmp, path)
    except Exception as exc:  # noqa: BLE001 - the optional workbook never costs the other outputs
        tmp.unlink(missing_ok=True)
        warnings.warn(f"{path} not written: {exc}")


def write_quarantine(results: Sequence[SampleResult], out: Path) -> None:
    """errors.csv: every file that could not be read or gated, with the reason."""
    err = pd.DataFrame([{"sample_id": r.sample_id, "file": r.row["file"], "sha256": r.row["sha256"],
                         "error": r.row["error"]} for r in results if not r.ok],
                       columns=["sample_id", "file", "sha256", "error"])
    if len(err) > 1:
        err = err.sort_values(["sample_id", "file"])
    atomic_write(out / "errors.csv", csv_bytes(err))


def write_manifest_check(issues: Sequence[str], out: Path) -> None:
    """manifest_check.csv: one row per manifest problem (code, detail)."""
    mc = pd.DataFrame({"issue": [i.split(":", 1)[0] for i in issues],
                       "detail": [i.split(":", 1)[1].strip() for i in issues]}, columns=["issue", "detail"])
    atomic_write(out / "manifest_check.csv", csv_bytes(mc))
