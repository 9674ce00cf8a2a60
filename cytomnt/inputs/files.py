"""Which inputs a run has (files, folders searched, FlowKit Samples given in Python), the names
they go by, and their content hashes."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from cytomnt.inputs.hashing import sha256_file


def is_sample(item) -> bool:
    """True for a FlowKit ``Sample`` given directly (not a path)."""
    return hasattr(item, "get_events") and hasattr(item, "pnn_labels")


def sha256_sample(sample) -> str:
    """A FlowKit sample's identity: the hash of its raw event matrix."""
    return hashlib.sha256(np.ascontiguousarray(sample.get_events(source="raw")).tobytes()).hexdigest()


def item_hash(item) -> str:
    """The content hash of an input (a missing file hashes its path, so it still has a key)."""
    if is_sample(item):
        return sha256_sample(item)
    p = Path(item)
    return sha256_file(p) if p.exists() else hashlib.sha256(f"missing:{p}".encode()).hexdigest()


class EarlyHashes:
    """Content hashes of input files, computed by a hashing process (:mod:`cytomnt.inputs.hashing`) on
    another core while the command is still loading; none if it cannot start."""

    def __init__(self, items):
        self._done: dict[str, str] = {}
        self._proc = None
        self._threads: list[threading.Thread] = []
        paths = [str(i) for i in items if not is_sample(i) and "\n" not in str(i)]
        if not paths:
            return
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", "cytomnt.inputs.hashing"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            return
        self._threads = [threading.Thread(target=self._send, args=(paths,), daemon=True),
                         threading.Thread(target=self._receive, daemon=True)]
        for t in self._threads:
            t.start()

    def _send(self, paths: list[str]) -> None:
        try:
            self._proc.stdin.write("".join(p + "\n" for p in paths))
            self._proc.stdin.close()
        except (OSError, ValueError):
            pass                              # stopped early

    def _receive(self) -> None:
        try:
            for line in self._proc.stdout:
                path, digest = json.loads(line)
                self._done[path] = digest
        except (OSError, ValueError):
            pass

    def wait(self, timeout: float | None = None) -> dict[str, str]:
        """Every file's hash (waits for the hashing process to finish them)."""
        for t in self._threads:
            t.join(timeout)
        return dict(self._done)

    def stop(self) -> dict[str, str]:
        """Stop hashing; the hashes finished so far (input key -> SHA-256)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        if self._proc is not None:
            self._proc.wait()
            self._threads[1].join(timeout=5)
        return dict(self._done)


def item_key(item) -> str:
    """How a run refers to an input: its path, or ``sample:<id>`` for a FlowKit Sample."""
    return f"sample:{item.id}" if is_sample(item) else str(item)


def item_name(item) -> tuple[Path | None, str]:
    """(path or None, the name the manifest and sample ids use: file name or Sample id)."""
    if is_sample(item):
        return None, str(item.id)
    path = Path(item)
    return path, path.name


def collect_inputs(inputs, skipped: list | None = None) -> list:
    """FlowKit Samples as given, then files: given paths, and FCS files found under folders (hidden
    files such as macOS's ``._name.fcs`` left out and appended to ``skipped``)."""
    from gating.io.inputs import find_fcs_files
    if isinstance(inputs, (str, Path)) or is_sample(inputs):
        inputs = [inputs]
    samples = [i for i in inputs if is_sample(i)]
    paths = find_fcs_files([i for i in inputs if not is_sample(i)], skipped)
    return samples + paths


def gather_inputs(paths) -> tuple[list, str]:
    """The FCS files under ``paths`` (as :func:`collect_inputs`) and a note on hidden files skipped
    ('' when none); a path that does not exist, or nothing found, is a ConfigError naming them."""
    from cytomnt.errors import ConfigError
    missing = [str(p) for p in paths if not is_sample(p) and not Path(p).exists()]
    if missing:
        raise ConfigError(f"no such file or folder: {', '.join(missing)}")
    skipped: list = []
    items = collect_inputs(paths, skipped)
    if not items:
        raise ConfigError(f"no FCS files found in {', '.join(map(str, paths))} (.fcs, .lmd, or any file that "
                          f"starts with an FCS HEADER)")
    return items, skipped_note(skipped)


def out_problem(out) -> str:
    """Why ``out`` cannot hold a run's results ('' when it can): a file in the way, or a folder that
    cannot be made or written (tried and taken back)."""
    import os
    p = Path(out)
    if p.exists() and not p.is_dir():
        return "is a file; give a folder for the results (it is made if missing)"
    parent = p if p.exists() else next((q for q in p.absolute().parents if q.exists()), None)
    if parent is not None and not parent.is_dir():
        return f"{parent} is a file; give a folder for the results"
    if parent is None or not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot write in {parent}; give a folder you may write to"
    if p.exists():                         # permissions aside (root, /proc, a read-only mount): try a file
        import tempfile
        try:
            with tempfile.TemporaryFile(dir=p):
                pass
        except OSError as exc:
            return f"cannot write in {p} ({exc.strerror or exc}); give a folder you may write to"
    made = []                              # tried, then taken back: a run that cannot start writes nothing
    try:
        for q in reversed([p, *p.parents]):
            if not q.exists():
                q.mkdir()
                made.append(q)
    except OSError as exc:
        return f"cannot make the folder ({exc.strerror or exc}); give a folder you may write to"
    finally:
        for q in reversed(made):
            q.rmdir()
    return ""


def skipped_note(skipped: list) -> str:
    """One line naming the hidden files a folder search left out ('' when none)."""
    if not skipped:
        return ""
    names = ", ".join(str(p) for p in skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
    return (f"skipped {len(skipped)} hidden file(s) (macOS '._' copies and other dot-files, not FCS data): {names}; "
            f"name a file directly to read it anyway")

