"""Step 7 of a sample: the documents behind its numbers. Its gates as Gating-ML, its ``<Sample>``
for the run's FlowJo workspace (gates, compensation, transforms and counts), and its gate plot.
A document that cannot be made costs the sample a flag, never its numbers."""
from __future__ import annotations

import math
import weakref
from pathlib import Path
from typing import Sequence

from gating.formats.strategy import gatingml_bytes
from gating.formats.wsp import WspExportError, WspSample, file_uri, sample_fragment, workspace_from_fragments

from cytomnt.inputs.panel import channels_of
from cytomnt.sample.gate import Gated
from cytomnt.sample.results import add_flags

WORKSPACE_NAME = "cytomnt.wsp"      # the run's FlowJo workspace in OUT
GROUP = "cytomnt"                   # the workspace group that holds every sample

#: Gating-ML of the run's shared (user) strategies, by strategy object and workspace sample: the
#: same document for every file, written once per process. Strategies are never changed in place.
_GML: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def gatingml(gated: Gated, row: dict, shared: bool) -> bytes | None:
    """The applied gates as Gating-ML; on failure the counts stand and the row says why.
    ``shared``: a user strategy, the same for every file (its document is made once)."""
    try:
        if not shared:
            return gatingml_bytes(gated.strategy, sample_id=gated.workspace_sample)
        per = _GML.setdefault(gated.strategy, {})
        if gated.workspace_sample not in per:
            per[gated.workspace_sample] = gatingml_bytes(gated.strategy, sample_id=gated.workspace_sample)
        return per[gated.workspace_sample]
    except Exception as exc:  # noqa: BLE001
        add_flags(row, "GATINGML_NOT_WRITTEN")
        row["error"] = f"Gating-ML export failed: {exc}"
        return None


def sample_xml(gated: Gated, sample, comp, path, name: str, sample_id: str, deidentify: bool, row: dict) -> bytes | None:
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


def workspace(fragments: Sequence[bytes | None]) -> bytes:
    """The FlowJo workspace of the samples' ``<Sample>`` fragments (those made), in the given order."""
    return workspace_from_fragments([f for f in fragments if f], GROUP)


def gate_plot(gated: Gated, sample, sid: str, row: dict) -> bytes | None:
    """The sample's gate plot as PNG bytes, or None if drawing failed (a plot never costs a
    sample its numbers)."""
    import tempfile

    from gating.plot import plot_sample
    membership = {(p.name, p.path): p.membership for p in gated.populations}
    markers = {c.pnn: c.pns for c in channels_of(sample, gated.panel.panel) if c.pns}
    internal = next((p.membership for p in gated.populations if p.name == "non_t"), None)
    references = {name: ("non-T lymphocytes (internal negatives)", internal) for name, c in gated.calls.items()
                  if internal is not None and getattr(c, "basis", "") == "internal"}
    references.update({name: (f"cut from the {row.get('car_basis') or 'control tube'}", None)
                       for name, c in gated.calls.items() if getattr(c, "basis", "") == "control"})
    car, status = row.get("car_pct_of_t"), row.get("car_status")
    call = {"not_detected": "CAR not detected", "uncertain": "CAR call uncertain"}.get(status, "CAR")
    share = f"{car:.1f}% of T" + (" as counted" if status != "ok" else "")
    title = f"{sid}  ({row.get('sample_type') or '?'}; {call}: {share})" \
        if isinstance(car, float) and math.isfinite(car) else sid
    try:
        with tempfile.TemporaryDirectory() as d:
            return plot_sample(gated.strategy, sample, membership, Path(d) / "p.png", title, gated.workspace_sample,
                               markers=markers, references=references).read_bytes()
    except Exception:  # noqa: BLE001
        return None
