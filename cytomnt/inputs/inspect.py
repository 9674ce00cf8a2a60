"""``cytomnt inspect``: what a lab asks first about an unknown file. Instrument, FCS version, data
sets (and which one is read), events, channels with $PnN/$PnS/range/amplification and their
min/median/max, spillover, time span and event rate, the panel roles the file would fill, and
everything the reader had to repair."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class ChannelInfo:
    index: int
    pnn: str
    pns: str
    bits: str
    range: str
    amplification: str       # $PnE: "0,0" linear, "4,1" four decades log
    min: float
    median: float
    max: float


@dataclass
class FileInfo:
    """One file as read (``error`` set instead when it cannot be read)."""

    file: str
    error: str = ""
    fcs_version: str = ""
    cytometer: str = ""
    data_sets: str = ""
    events: int = 0
    channels: list[ChannelInfo] = field(default_factory=list)
    spillover: list[str] = field(default_factory=list)
    time_span: float | None = None
    time_unit: str = ""          # "s" when the file gives $TIMESTEP, else "stored units"
    events_per_time_unit: float | None = None
    roles: dict = field(default_factory=dict)
    reader_notes: list[str] = field(default_factory=list)


def inspect_file(path: str | Path, panel=None) -> FileInfo:
    """Read ``path`` and describe it; a file that cannot be read gives the reason, never a traceback."""
    from gating import FcsReadError, read_fcs
    from gating.preprocess import CompensationError, compensation_for

    from cytomnt.inputs.panel import Panel, PanelError, channels_of
    path = Path(path)
    try:
        loaded = read_fcs(path)
    except FcsReadError as exc:
        return FileInfo(str(path), error=str(exc))
    s = loaded.sample
    meta = s.get_metadata()
    own = {k.lower(): v for k, v in loaded.source.get("keywords", {}).items()}   # a rebuilt file's originals
    meta = {**meta, **{k: v for k, v in own.items() if k in meta}}
    ev = s.get_events(source="raw")
    version = loaded.source.get("version") or f"FCS{s.version}"
    info = FileInfo(str(path), fcs_version=version, cytometer=str(meta.get("cyt", "")).strip(),
                    events=int(s.event_count), reader_notes=list(loaded.notes))
    multi = [n for n in loaded.notes if n.startswith("MULTI_DATASET")]
    if multi:
        _, n, used = multi[0].split(":")
        info.data_sets = f"{n} data sets; data set {used.removeprefix('used_')} read ({version}, list mode)"
    else:
        info.data_sets = "1 data set"
    for i, (pnn, pns) in enumerate(zip(s.pnn_labels, s.pns_labels)):
        v = ev[:, i]
        k = i + 1
        info.channels.append(ChannelInfo(k, pnn, pns or "", str(meta.get(f"p{k}b", "")).strip(),
                                         str(meta.get(f"p{k}r", "")).strip(), str(meta.get(f"p{k}e", "")).strip(),
                                         *(float(x) for x in (np.min(v), np.median(v), np.max(v))) if v.size else
                                         (float("nan"),) * 3))
    try:
        comp = compensation_for(s, None, path.name)
        info.spillover = list(comp.matrix.detectors) if comp.matrix is not None else []
    except CompensationError as exc:
        info.reader_notes.append(f"spillover not usable: {exc}")
    if s.time_index is not None and s.event_count > 1:
        t = ev[:, s.time_index]
        span = float(t.max() - t.min())
        info.time_span = span
        info.time_unit = "s" if _is_number(meta.get("timestep")) else "stored units (no usable $TIMESTEP)"
        info.events_per_time_unit = s.event_count / span if span > 0 else None
    try:
        p = panel if panel is not None else Panel.default()
        rp = p.resolve(channels_of(s, p), path.name, strict=False)
        info.roles = {role: ch.label() for role, ch in rp.channels.items()}
    except PanelError as exc:
        info.reader_notes.append(f"panel: {exc}")
    return info


def _is_number(v) -> bool:
    try:
        float(str(v))
        return True
    except ValueError:
        return False


def render(info: FileInfo) -> str:
    """A readable page about one file."""
    if info.error:
        return f"{info.file}\n  cannot be read: {info.error}\n"
    lines = [f"{info.file}", f"  {info.fcs_version}, cytometer: {info.cytometer or '(not given)'}; {info.data_sets}; "
             f"{info.events} events"]
    if info.time_span is not None:
        unit = "s" if info.time_unit == "s" else "time units"
        rate = f", {info.events_per_time_unit:.3g} events per {unit[:-1] if unit == 'time units' else 's'}" \
            if info.events_per_time_unit else ""
        lines.append(f"  time span {info.time_span:g} {info.time_unit}{rate}")
    lines.append(f"  spillover: {', '.join(info.spillover) if info.spillover else 'none'}")
    if info.reader_notes:
        lines.append(f"  reader notes: {'; '.join(info.reader_notes)}")
    lines.append(f"  {'#':>3} {'$PnN':<18} {'$PnS':<22} {'bits':>4} {'range':>11} {'$PnE':>8} "
                 f"{'min':>11} {'median':>11} {'max':>11}")
    for c in info.channels:
        lines.append(f"  {c.index:>3} {c.pnn[:18]:<18} {c.pns[:22]:<22} {c.bits:>4} {c.range[:11]:>11} "
                     f"{c.amplification[:8]:>8} {c.min:>11.4g} {c.median:>11.4g} {c.max:>11.4g}")
    lines.append("  panel roles: " + (", ".join(f"{r}={ch}" for r, ch in info.roles.items()) or "none found"))
    return "\n".join(lines) + "\n"


def to_json(infos: list[FileInfo]) -> str:
    return json.dumps([asdict(i) for i in infos], indent=2, default=str)
