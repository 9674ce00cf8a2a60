"""The run as a FlowJo 10 workspace for review, for chosen samples (``cytomnt export OUT --flowjo
F.wsp``): each sample's ``<Sample>`` was made where the sample was gated
(:mod:`cytomnt.sample.documents`) and kept in the store; the run's own ``OUT/cytomnt.wsp`` is
written with the run's other files."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from gating.io.files import atomic_write

from cytomnt.exports.cells import ExportError
from cytomnt.run.store import STORE_NAME, ResultStore
from cytomnt.sample.documents import workspace


def export_workspace(out: str | Path, path: str | Path, sample_ids: Sequence[str] | None = None) -> tuple[Path, int]:
    """Write the workspace of chosen samples (all without ``sample_ids``) from ``OUT``'s store:
    each sample's newest result. Returns (path, samples written); ExportError names what is missing."""
    if not (Path(out) / STORE_NAME).exists():
        raise ExportError(f"{out}: no results store ({STORE_NAME}); run `cytomnt analyze ... --out {out}` first")
    store = ResultStore(Path(out) / STORE_NAME)
    try:
        newest = store.latest_flowjo()
    finally:
        store.close()
    wanted = list(sample_ids) if sample_ids else sorted(newest)
    unknown = [s for s in wanted if s not in newest]
    if unknown:
        raise ExportError(f"{out} has no sample {', '.join(unknown)}; samples: {', '.join(sorted(newest))}")
    missing = [s for s in wanted if not newest[s]]
    if missing:
        raise ExportError(f"no FlowJo sample for {', '.join(missing)} (analysed before cytomnt wrote workspaces, or "
                          f"flag FLOWJO_NOT_WRITTEN: see samples.csv); re-run `cytomnt analyze` on them")
    return atomic_write(path, workspace([newest[s] for s in wanted])), len(wanted)
