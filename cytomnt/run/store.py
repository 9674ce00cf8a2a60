"""The results store: an SQLite file in the output folder, one row per analysed file.

A result is keyed by the file's content hash, the hash of the configuration that decides its
numbers (panel, strategy and its content, learned cuts, settings, software versions) and the
hash of its manifest entry. Re-running skips what is stored; each result is committed in its
own transaction by the one process that writes, so killing a run at any moment loses only
the files in flight and never leaves a half-written row. Across runs in the same folder the
store accumulates every patient's samples (longitudinal use; ``cytomnt risk --store``).
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cytomnt.sample.results import SampleResult, results_frame

#: The store's file name in an output folder.
STORE_NAME = "results.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    file_sha256 TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    patient_id TEXT,
    file TEXT,
    status TEXT NOT NULL,
    row_json TEXT NOT NULL,
    populations_json TEXT NOT NULL,
    statistics_json TEXT NOT NULL,
    gatingml BLOB,
    plot_png BLOB,
    run_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    flowjo BLOB
);
CREATE INDEX IF NOT EXISTS results_sample ON results(sample_id);
CREATE INDEX IF NOT EXISTS results_seq ON results(seq);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    config_hash TEXT NOT NULL,
    config_json TEXT NOT NULL
);
"""


def _plain(o):
    """JSON for numpy/pandas scalars (floats keep every bit: json writes repr)."""
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if o is pd.NA or o is pd.NaT:
        return None
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"cannot store {type(o).__name__}")


def dumps(obj) -> str:
    return json.dumps(obj, default=_plain, sort_keys=True, allow_nan=True)


def config_hash(record: dict) -> str:
    return hashlib.sha256(dumps(record).encode()).hexdigest()


def result_key(file_sha256: str, cfg_hash: str, entry: dict) -> str:
    return hashlib.sha256(f"{file_sha256}|{cfg_hash}|{dumps(entry)}".encode()).hexdigest()


class ResultStore:
    """One SQLite file; use from a single writing process."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=30.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")      # WAL: a commit survives the process being killed
        self.db.executescript(SCHEMA)
        if "flowjo" not in {c[1] for c in self.db.execute("PRAGMA table_info(results)")}:
            self.db.execute("ALTER TABLE results ADD COLUMN flowjo BLOB")     # a store from before workspaces
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def begin_run(self, cfg_hash: str, record: dict) -> int:
        with self.db:
            cur = self.db.execute("INSERT INTO runs(started, config_hash, config_json) VALUES (?, ?, ?)",
                                  (time.time(), cfg_hash, dumps(record)))
        return int(cur.lastrowid)

    def keys(self) -> set[str]:
        return {k for (k,) in self.db.execute("SELECT key FROM results")}

    def put(self, key: str, file_sha256: str, cfg_hash: str, result, run_id: int) -> None:
        """Store one sample's result (replacing an older one with the same key) in one transaction."""
        row = result.row
        with self.db:
            seq = self._next_seq()
            self.db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, file_sha256, cfg_hash, str(row.get("sample_id")), str(row.get("patient_id") or ""),
                 str(row.get("file") or ""), str(row.get("status")), dumps(row), result.frame_doc("populations"),
                 result.frame_doc("statistics"), result.gatingml, result.plot_png, run_id, seq, result.flowjo))

    def _next_seq(self) -> int:
        return int(self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM results").fetchone()[0])

    def touch(self, key: str, run_id: int) -> None:
        """Make a reused result its sample's newest again (a re-run with an earlier configuration
        must not leave a later configuration's result in force for the report and ``risk``)."""
        with self.db:
            self.db.execute("UPDATE results SET seq = ?, run_id = ? WHERE key = ?", (self._next_seq(), run_id, key))

    def get(self, key: str) -> SampleResult | None:
        """The stored result or None."""
        r = self.db.execute("SELECT row_json, populations_json, statistics_json, gatingml, plot_png, flowjo "
                            "FROM results WHERE key = ?", (key,)).fetchone()
        if r is None:
            return None
        return SampleResult.from_docs(json.loads(r[0]), r[1], r[2], gatingml=r[3], plot_png=r[4], flowjo=r[5])

    def last_seq(self) -> int:
        """The newest result's sequence number (0 for an empty store)."""
        return self._next_seq() - 1

    def previous(self, file_sha256: str, key: str, up_to_seq: int) -> SampleResult | None:
        """The newest result of the same file content other than ``key``, stored by seq ``up_to_seq``
        (before this run): what a re-run is compared with; None if there is none."""
        r = self.db.execute("SELECT key FROM results WHERE file_sha256 = ? AND key != ? AND seq <= ? "
                            "ORDER BY seq DESC LIMIT 1", (file_sha256, key, up_to_seq)).fetchone()
        return self.get(r[0]) if r else None

    def results_of_file(self, file_sha256: str) -> list[tuple[str, str, dict]]:
        """(key, configuration hash, run configuration) of every result of a file's content, newest first."""
        # the configuration that made a result (its run_id is the run that last used it)
        rows = self.db.execute("SELECT r.key, r.config_hash, (SELECT u.config_json FROM runs u WHERE u.config_hash = "
                               "r.config_hash LIMIT 1) FROM results r WHERE r.file_sha256 = ? ORDER BY r.seq DESC",
                               (file_sha256,))
        return [(k, h, json.loads(c)) for k, h, c in rows if c]

    def _newest(self, column: str) -> dict[str, bytes | None]:
        """Sample id -> ``column`` of its newest result (None when that result has none)."""
        assert column in ("flowjo", "plot_png")
        return dict(self.db.execute(f"SELECT sample_id, {column} FROM results ORDER BY seq"))

    def latest_flowjo(self) -> dict[str, bytes | None]:
        """Every stored sample's newest FlowJo ``<Sample>`` (None when that result has none)."""
        return self._newest("flowjo")

    def plots(self) -> dict[str, bytes]:
        """The gate plot of every stored sample's newest result (none when that result has none:
        an older result's plot would show numbers the tables no longer hold)."""
        return {sid: png for sid, png in self._newest("plot_png").items() if png is not None}

    def latest_rows(self) -> pd.DataFrame:
        """Every stored sample's newest row (by sample id): the longitudinal table for ``cytomnt risk``."""
        rows = {}
        for sid, row_json, seq in self.db.execute("SELECT sample_id, row_json, seq FROM results ORDER BY seq"):
            rows[sid] = json.loads(row_json)
        return results_frame([SampleResult(r, pd.DataFrame()) for r in rows.values()])


