"""Step 1 of a sample: which inputs a run has, their content hashes, and reading one of them."""
from __future__ import annotations

import hashlib
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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_sample(sample) -> str:
    """A FlowKit sample's identity: the hash of its raw event matrix."""
    return hashlib.sha256(np.ascontiguousarray(sample.get_events(source="raw")).tobytes()).hexdigest()


def item_hash(item) -> str:
    """The content hash of an input (a missing file hashes its path, so it still has a key)."""
    if is_sample(item):
        return sha256_sample(item)
    p = Path(item)
    return sha256_file(p) if p.exists() else hashlib.sha256(f"missing:{p}".encode()).hexdigest()


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
    from gating import find_fcs_files
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
