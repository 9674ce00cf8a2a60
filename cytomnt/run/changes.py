"""What a re-run changed: for each sample analysed again (gates moved by a reviewer in FlowJo and
brought back with ``--strategy reviewed.wsp``, or a new template), every population whose count
differs from the sample's previous result in the store, with the cuts of its gate before and
after, in data units. ``OUT/changes.csv`` holds them; the run's last lines and the report say
which samples changed.
"""
from __future__ import annotations

from dataclasses import astuple, dataclass, fields

import numpy as np
import pandas as pd

from cytomnt.sample.frames import cells_frame

CHANGES_NAME = "changes.csv"


@dataclass(frozen=True)
class Change:
    """One population of one sample whose count changed (a count of None: not in that result), or
    one samples.csv value that changed with it (``population`` then names the column)."""

    sample_id: str
    population: str
    path: str
    old_count: int | None
    new_count: int | None
    gate_change: str              # e.g. "Comp-PE-A min 812.3 -> 950.1"; empty when the gate itself is as before
    old_value: str = ""           # a samples.csv value before and after
    new_value: str = ""


#: samples.csv values reported when they change with a sample's counts (how it is called).
CALL_COLUMNS = ("car_status", "car_basis", "car_pct_of_t", "car_cd4_cd8_ratio", "car_predominance",
                "t_cd4_cd8_ratio", "qc_flags")


COLUMNS = [f.name for f in fields(Change)]


def sample_changes(sample_id: str, old, new) -> list[Change]:
    """The populations whose counts differ between two results of one sample (``SampleResult``s)."""
    before = _counts(old.populations)
    after = _counts(new.populations)
    changed = [p for p in dict.fromkeys([*before, *after]) if before.get(p) != after.get(p)]
    if not changed:
        return []
    cuts = gate_changes(old.gatingml, new.gatingml)
    out = [Change(sample_id, p.rsplit("/", 1)[-1], p, before.get(p), after.get(p), cuts.get(p.rsplit("/", 1)[-1], ""))
           for p in changed]
    for col in CALL_COLUMNS:
        a, b = _text(old.row.get(col)), _text(new.row.get(col))
        if a != b:
            out.append(Change(sample_id, col, "samples.csv", None, None, "", a, b))
    return out


def _text(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _counts(pops: pd.DataFrame) -> dict[str, int]:
    if not len(pops) or "path" not in pops:
        return {}
    return dict(zip(pops["path"].astype(str), pops["count"].astype(int)))


def gate_changes(old_gml: bytes | None, new_gml: bytes | None) -> dict[str, str]:
    """Gate name -> how its cuts moved (data units), for gates present in both documents."""
    if not old_gml or not new_gml:
        return {}
    from gating.formats.strategy import read_gatingml
    try:
        old, new = _cuts(read_gatingml(old_gml)), _cuts(read_gatingml(new_gml))
    except Exception:  # noqa: BLE001 - counts are reported even if a document cannot be compared
        return {}
    out = {}
    for name in old.keys() & new.keys():
        if old[name] != new[name]:
            out[name] = _describe(old[name], new[name])
    return out


def _cuts(gs) -> dict[str, tuple]:
    """Gate name -> its geometry in data units: ((channel, min, max), ...) or ('polygon', vertices)."""
    import flowkit as fk
    out = {}
    for name, path in gs.get_gate_ids():
        try:
            gate = gs.get_gate(name, path)
        except Exception:  # noqa: BLE001 - a quadrant of a quadrant gate
            continue
        if isinstance(gate, fk.gates.RectangleGate):
            out[name] = tuple((d.id, _raw(gs, d, d.min), _raw(gs, d, d.max)) for d in gate.dimensions)
        elif isinstance(gate, fk.gates.PolygonGate):
            xs = [[_raw(gs, d, v[i]) for i, d in enumerate(gate.dimensions)] for v in gate.vertices]
            out[name] = ("polygon", tuple(d.id for d in gate.dimensions), tuple(map(tuple, xs)))
    return out


def _raw(gs, dim, value):
    """A gate coordinate in data units (None: an open bound)."""
    from gating.preprocess import raw_value
    ref = getattr(dim, "transformation_ref", None)
    return None if value is None else raw_value(gs.get_transform(ref) if ref else None, value)


def _describe(old: tuple, new: tuple) -> str:
    if "polygon" in (old[0], new[0]):
        if old[0] == new[0] and old[1] == new[1] and len(old[2]) == len(new[2]):
            shift = max(max(abs(a - b) for a, b in zip(u, v)) for u, v in zip(old[2], new[2]))
            return f"polygon on {' x '.join(new[1])}: vertices moved by up to {shift:.4g}"
        return "gate redrawn"
    parts = []
    for o, n in zip(old, new):
        if o[0] != n[0]:
            parts.append(f"{o[0]} -> {n[0]}")
            continue
        for label, a, b in (("min", o[1], n[1]), ("max", o[2], n[2])):
            if not _same(a, b):
                parts.append(f"{n[0]} {label} {_fmt(a)} -> {_fmt(b)}")
    return "; ".join(parts) or "gate redrawn"


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def _fmt(v) -> str:
    return "open" if v is None else f"{v:.6g}"


def changes_frame(changes: list[Change]) -> pd.DataFrame:
    """changes.csv: one row per changed population (nullable integer counts)."""
    rows = [astuple(c) for c in changes]
    return cells_frame({name: [r[i] for r in rows] for i, name in enumerate(COLUMNS)}, ("old_count", "new_count"))


def summary(changes: list[Change], analysed: int) -> str:
    """One line for the end of the run: which samples changed, with their first changes."""
    by_sample: dict[str, list[Change]] = {}
    for c in changes:
        by_sample.setdefault(c.sample_id, []).append(c)
    shown = []
    for sid, cs in list(by_sample.items())[:5]:
        counts = [c for c in cs if c.path != "samples.csv"]
        first = ", ".join(f"{c.population} {_count(c.old_count)} -> {_count(c.new_count)}" for c in counts[:3])
        shown.append(f"{sid} ({first}{', ...' if len(cs) > 3 else ''})")
    more = f" and {len(by_sample) - 5} more" if len(by_sample) > 5 else ""
    return (f"{len(by_sample)} of {analysed} re-analysed samples changed since their previous results: "
            f"{'; '.join(shown)}{more}")


def _count(v) -> str:
    return "absent" if v is None else str(v)


def same_gates(old, new, hidden: set = frozenset()) -> bool:
    """True when two strategies (FlowKit ``GatingStrategy``) hold the same gates: the same names and
    the same cuts in data units (a workspace cytomnt wrote and nobody moved; ``hidden``: its
    helper populations). Boolean gates are compared by name only."""
    def names(gs, skip=frozenset()):
        return {n for n, p in gs.get_gate_ids() if (n, tuple(p)) not in skip}
    if names(old) != names(new, hidden):
        return False
    a, b = _cuts(old), _cuts(new)
    return a.keys() == b.keys() and all(_same_cuts(a[k], b[k]) for k in a)


def _same_cuts(x: tuple, y: tuple) -> bool:
    if x and x[0] == "polygon":
        return y[0] == "polygon" and x[1] == y[1] and len(x[2]) == len(y[2]) and all(
            _same(u, v) for p, q in zip(x[2], y[2]) for u, v in zip(p, q))
    return len(x) == len(y) and all(d[0] == e[0] and _same(d[1], e[1]) and _same(d[2], e[2]) for d, e in zip(x, y))
