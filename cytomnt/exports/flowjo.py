"""The run as a FlowJo 10 workspace (``OUT/cytomnt.wsp``) for review: each sample's ``<Sample>``
is made where the sample is gated (its gates, compensation, transforms and counts), and the
workspace is put together from them at the end of the run, or for chosen samples by
``cytomnt export OUT --flowjo F.wsp``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from gating.formats.wsp import WspExportError, WspSample, file_uri, sample_fragment, workspace_from_fragments

from cytomnt.sample.results import SampleResult, add_flags

WORKSPACE_NAME = "cytomnt.wsp"
GROUP = "cytomnt"


def sample_xml(gated, sample, comp, path, name: str, sample_id: str, deidentify: bool, row: dict) -> bytes | None:
    """The sample's ``<Sample>`` for the workspace, or None (flag FLOWJO_NOT_WRITTEN, reason in
    the row's error) when FlowJo cannot hold one of its gates. The sample is named as FlowJo names
    it ($FIL, else the file name); under ``deidentify`` by its id, and its file is not located
    (FlowJo asks for it)."""
    fcs_name = f"{sample_id}.fcs" if deidentify or path is None else flowjo_name(sample, path)
    uri = fcs_name if deidentify or path is None else file_uri(path)
    counts = {(p.name, tuple(p.path)): p.count for p in gated.populations}
    try:
        return sample_fragment(WspSample(fcs_name, uri, gated.strategy, int(sample.event_count), counts,
                                         fcs_spill=comp.matrix, gates_of=gated.workspace_sample))
    except WspExportError as exc:
        add_flags(row, "FLOWJO_NOT_WRITTEN")
        row["error"] = "; ".join(e for e in (row.get("error"), f"not in {WORKSPACE_NAME}: {exc}") if e)
        return None


def flowjo_name(sample, path) -> str:
    """The name FlowJo (and FlowKit's Workspace) give a sample: its $FIL keyword, else its file name."""
    fil = str(sample.get_metadata().get("fil", "") or "").strip()
    return fil or Path(path).name


def workspace(results: Sequence[SampleResult]) -> bytes:
    """The workspace of every result that has its ``<Sample>``, in the given order."""
    return workspace_from_fragments([r.flowjo for r in results if r.flowjo], GROUP)


def export_workspace(out: str | Path, path: str | Path, sample_ids: Sequence[str] | None = None) -> tuple[Path, int]:
    """Write the workspace of chosen samples (all without ``sample_ids``) from ``OUT``'s store:
    each sample's newest result. Returns (path, samples written); ExportError names what is missing."""
    from gating.io.files import atomic_write

    from cytomnt.exports.cells import ExportError
    from cytomnt.run.store import STORE_NAME, ResultStore
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
    return atomic_write(path, workspace_from_fragments([newest[s] for s in wanted], GROUP)), len(wanted)
