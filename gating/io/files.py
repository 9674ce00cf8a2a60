"""Writing files safely: whole or not at all (temporary file, then rename), and FCS 3.1 output."""
from __future__ import annotations

import os
from array import array
from pathlib import Path

import flowio
import numpy as np


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename, so a reader (or a run
    killed half way) never sees a partial file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    content = data.encode("utf-8") if isinstance(data, str) else data
    try:
        tmp.write_bytes(content)
    except FileNotFoundError:         # its folder is new (made only then: a mkdir per file is slow on network shares)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(content)
    os.replace(tmp, path)
    return path


def write_fcs(path: str | Path, pnn, pns, events: np.ndarray, keywords: dict) -> Path:
    """An FCS 3.1 file (float32 list mode) with these channels ($PnN, $PnS) and keywords, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = array("f")
    data.frombytes(np.ascontiguousarray(events, dtype="<f4").tobytes())   # FlowIO's writer wants array('f')
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        flowio.create_fcs(fh, data, list(pnn), opt_channel_names=[p or "" for p in pns], metadata_dict=keywords)
    os.replace(tmp, path)
    return path
