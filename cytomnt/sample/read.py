"""Step 1 of a sample: read it (a path, structure checked first) or take the FlowKit Sample given."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cytomnt.inputs.files import item_name


@dataclass
class Input:
    """One input read: the sample, its file (None for a Sample given in Python), the name it
    goes by (file name or sample id), and the reader's QC notes."""

    sample: object
    path: Path | None
    name: str
    flags: list[str] = field(default_factory=list)


def read_input(item, sample_id: str) -> Input:
    """Read a path (raises ``gating.FcsReadError`` naming the file) or take a FlowKit Sample."""
    from gating import read_fcs
    path, name = item_name(item)
    if path is None:
        return Input(item, None, name)
    loaded = read_fcs(path, sample_id)
    return Input(loaded.sample, path, name, list(loaded.notes))
