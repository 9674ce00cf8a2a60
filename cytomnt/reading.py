"""Step 1 of a sample: which inputs a run has, their content hashes, and reading one of them."""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Input:
    """One input read: the sample, its file (None for a Sample given in Python), the name it
    goes by (file name or sample id), and the reader's QC notes."""

    sample: object
    path: Path | None
    name: str
    flags: list[str] = field(default_factory=list)


def is_sample(item) -> bool:
    """True for a FlowKit ``Sample`` given directly (not a path)."""
    return hasattr(item, "get_events") and hasattr(item, "pnn_labels")


#: Bytes read per call when hashing: each read and each hash update releases the GIL once.
HASH_CHUNK = 16 << 20


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, read in large chunks into a reused buffer: few GIL hand-overs,
    so a hashing thread keeps pace beside busy Python code."""
    h = hashlib.sha256()
    buf = getattr(_HASH_BUFFER, "buf", None)
    if buf is None:
        buf = _HASH_BUFFER.buf = bytearray(HASH_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(view):
            h.update(view[:n])
    return h.hexdigest()


_HASH_BUFFER = threading.local()


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
    """Content hashes of input files, computed on a background thread while the command is still
    loading (SHA-256 releases the GIL, so they cost the loading core nothing)."""

    def __init__(self, items):
        self._done: dict[str, str] = {}
        self._stop = threading.Event()
        paths = [Path(i) for i in items if not is_sample(i)]
        self._thread = threading.Thread(target=self._run, args=(paths,), daemon=True, name="cytomnt-hash")
        self._thread.start()

    def _run(self, paths: list[Path]) -> None:
        for p in paths:
            if self._stop.is_set():
                return
            try:
                self._done[str(p)] = sha256_file(p)
            except OSError:
                continue                      # reported when the file is read

    def wait(self, timeout: float | None = None) -> dict[str, str]:
        """Every file's hash (waits for the thread to finish them)."""
        self._thread.join(timeout)
        return dict(self._done)

    def stop(self) -> dict[str, str]:
        """Stop after the file in hand; the hashes finished so far (input key -> SHA-256)."""
        self._stop.set()
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


def collect_inputs(inputs) -> list:
    """FlowKit Samples as given, then files: given paths, and FCS files found under folders."""
    from gating.inputs import find_fcs_files
    if isinstance(inputs, (str, Path)) or is_sample(inputs):
        inputs = [inputs]
    samples = [i for i in inputs if is_sample(i)]
    paths = find_fcs_files([i for i in inputs if not is_sample(i)])
    return samples + paths


def read_input(item, sample_id: str) -> Input:
    """Read a path (raises ``gating.FcsReadError`` naming the file) or take a FlowKit Sample."""
    from gating import read_fcs
    path, name = item_name(item)
    if path is None:
        return Input(item, None, name)
    loaded = read_fcs(path, sample_id)
    return Input(loaded.sample, path, name, list(loaded.notes))
