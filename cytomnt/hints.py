"""Follow-up commands printed for the user: paths that work from where they stand, and the
``cytomnt`` they can actually run (a venv that is not activated is named by its path)."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path


def risk_command(out: Path, clinical, labs, flow, as_of, cwd: Path | None = None, treatments=None) -> str:
    """The ``cytomnt risk`` command line for the demo's files, runnable from ``cwd`` (default: here).

    ``clinical``, ``labs`` and ``flow`` are paths inside the demo folder ``out`` (or absolute).
    Each is written as the shorter of ``out``/name and its path relative to ``cwd``, shell-quoted,
    so the user can paste it where they ran ``cytomnt demo`` rather than only inside ``out``.
    """
    def arg(name) -> str:
        path = Path(out) / name
        shown = str(path)
        try:
            rel = os.path.relpath(path, cwd if cwd is not None else Path.cwd())
        except ValueError:      # another drive (Windows): no relative path
            rel = shown
        return shlex.quote(rel if len(rel) < len(shown) else shown)
    extra = f" --treatments {arg(treatments)}" if treatments else ""
    return (f"{program(cwd)} risk --clinical {arg(clinical)} --labs {arg(labs)} --flow {arg(flow)}{extra} "
            f"--as-of {as_of} --brief")


def program(cwd: Path | None = None) -> str:
    """How to call this cytomnt from ``cwd``: ``cytomnt`` when that is what the shell finds,
    else the path of the running script (e.g. ``.venv/bin/cytomnt`` from a venv not activated)."""
    import shutil
    me = Path(sys.argv[0])
    if me.name != "cytomnt" or not me.exists():
        return "cytomnt"                  # called through Python (tests, python -m): the usual name
    found = shutil.which("cytomnt")
    if found and Path(found).resolve() == me.resolve():
        return "cytomnt"
    try:
        rel = os.path.relpath(me, cwd if cwd is not None else Path.cwd())
    except ValueError:
        rel = str(me)
    shown = rel if len(rel) < len(str(me.resolve())) else str(me.resolve())
    return shlex.quote(shown if "/" in shown else "./" + shown)
