"""One run at a time writes an OUT folder: a second run into the same folder waits for the first
(and says so), so the store, the tables and the report are never a mix of two runs."""
from __future__ import annotations

import contextlib
import datetime as dt
import os
from pathlib import Path

LOCK_NAME = ".cytomnt.lock"


@contextlib.contextmanager
def holding(out: str | Path | None, say=None):
    """Hold ``out``'s lock for the block (nothing without ``out``, or where the system has no
    ``fcntl``); ``say(line)`` hears once when another run holds it and this one waits."""
    try:
        import fcntl
    except ImportError:                    # not POSIX: runs are not serialised
        fcntl = None
    if out is None or fcntl is None:
        yield
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    path = Path(out) / LOCK_NAME
    with open(path, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            if say:
                say(f"another cytomnt run ({holder}) is writing to {out}; waiting for it to finish "
                    f"(Ctrl-C stops this one; nothing of the other is lost)")
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {dt.datetime.now().isoformat(timespec='seconds')}")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
