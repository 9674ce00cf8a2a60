"""Import an openCyto/CytoExploreR gating template (CSV) whose gates were drawn by hand.

Rows with ``gating_method`` ``cyto_gate_draw`` (or ``gate_draw``) carry a deparsed R gate
(polygonGate, rectangleGate, ellipsoidGate); ``boolGate`` rows carry ``!Name`` / ``A&B`` /
``A|B``. Coordinates are on the scale the expert drew them; ``scales`` says, per channel,
which FlowKit transform gives that scale and by how much to divide the coordinates to land
on FlowKit's scale (e.g. logicle drawn 0-4.5 -> divide by 4.5).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import flowkit as fk
import numpy as np
import pandas as pd

from gating.auto.build import xform_id
from gating.formats.strategy import StrategyError
from gating.io.yamlsafe import safe_load


@dataclass(frozen=True)
class ChannelScale:
    """How an expert's coordinates on a channel map to FlowKit: transform and divisor."""

    transform: object | None = None
    divide_by: float = 1.0


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _named_vector(text: str, key: str) -> dict[str, float]:
    m = re.search(rf"{key}\s*=\s*c\(([^)]*)\)", text)
    if not m:
        raise StrategyError(f"gate text has no '{key} = c(...)'")
    return {k: float(v) for k, v in re.findall(rf"'([^']+)'\s*=\s*({_NUM})", m.group(1))}


def _structure(text: str, key: str) -> tuple[np.ndarray, tuple[int, int], list[str]]:
    m = re.search(rf"{key}\s*=\s*structure\(c\(([^)]*)\),\s*\.Dim\s*=\s*c\((\d+)L,\s*(\d+)L\)(.*?)\)\)", text, re.S)
    if not m:
        raise StrategyError(f"gate text has no '{key} = structure(...)'")
    vals = np.array([float(v) for v in re.findall(_NUM, m.group(1))])
    shape = (int(m.group(2)), int(m.group(3)))
    names = re.findall(r"'([^']+)'", m.group(4))
    return vals.reshape(shape, order="F"), shape, names


def _dims(channels, scales, comp_ref):
    out = []
    for ch in channels:
        sc = scales.get(ch, ChannelScale())
        out.append(fk.Dimension(ch, compensation_ref=comp_ref if sc.transform is not None else "uncompensated",
                                transformation_ref=xform_id(ch) if sc.transform is not None else None))
    return out


def _gate_from_text(name: str, text: str, scales: dict[str, ChannelScale], comp_ref: str):
    div = lambda ch: scales.get(ch, ChannelScale()).divide_by  # noqa: E731
    if "polygonGate" in text:
        verts, _, names = _structure(text, "boundaries")
        chans = names[-2:]
        verts = verts / np.array([div(c) for c in chans])
        return fk.gates.PolygonGate(name, _dims(chans, scales, comp_ref), verts.tolist())
    if "rectangleGate" in text:
        lo, hi = _named_vector(text, "min"), _named_vector(text, "max")
        chans = list(lo)
        dims = _dims(chans, scales, comp_ref)
        for d, ch in zip(dims, chans):
            d.min = lo[ch] / div(ch) if np.isfinite(lo[ch]) else None
            d.max = hi[ch] / div(ch) if np.isfinite(hi[ch]) else None
        return fk.gates.RectangleGate(name, dims)
    if "ellipsoidGate" in text:
        mean = _named_vector(text, "mean")
        chans = list(mean)
        cov, _, _ = _structure(text, "cov")
        d = np.array([div(c) for c in chans])
        dist = float(re.search(rf"distance\s*=\s*({_NUM})", text).group(1))
        return fk.gates.EllipsoidGate(name, _dims(chans, scales, comp_ref), [mean[c] / div(c) for c in chans],
                                      (cov / np.outer(d, d)).tolist(), dist ** 2)
    raise StrategyError(f"gate '{name}': unsupported gate type in {text[:60]!r}")


def read_opencyto_template(path: str | Path, scales: dict[str, ChannelScale], matrix: fk.Matrix | None = None,
                           comp_ref: str = "FCS") -> fk.GatingStrategy:
    """A FlowKit strategy from an openCyto template of drawn gates (see module docstring).

    ``comp_ref`` 'FCS' compensates with each file's own $SPILLOVER; pass ``matrix`` to embed one.
    """
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    gs = fk.GatingStrategy()
    if matrix is not None:
        gs.add_comp_matrix(comp_ref, matrix)
    for ch, sc in scales.items():
        if sc.transform is not None:
            gs.add_transform(xform_id(ch), sc.transform)
    paths: dict[str, tuple[str, ...]] = {"root": ("root",)}
    for i, row in enumerate(df.to_dict("records"), start=2):
        name, parent, method = row["alias"], row["parent"], row["gating_method"]
        if parent not in paths:
            raise StrategyError(f"{path}, line {i}: gate '{name}' has parent '{parent}', which is not defined above it")
        if method in ("cyto_gate_draw", "gate_draw"):
            gate = _gate_from_text(name, row["gating_args"], scales, comp_ref)
        elif method == "boolGate":
            expr = row["gating_args"].strip()
            if expr.startswith("!"):
                refs, kind = [expr[1:].strip()], "not"
            else:
                kind = "and" if "&" in expr else "or"
                refs = [r.strip() for r in re.split(r"[&|]", expr)]
            gate_refs = []
            for r in refs:
                if r not in paths:
                    raise StrategyError(f"{path}, line {i}: boolean gate '{name}' refers to unknown gate '{r}'")
                gate_refs.append({"ref": r, "path": paths[r][:-1] if len(paths[r]) > 1 else ("root",), "complement": False})
            gate = fk.gates.BooleanGate(name, kind, gate_refs)
        else:
            raise StrategyError(f"{path}, line {i}: gating method '{method}' is not a drawn gate; "
                                f"only cyto_gate_draw/gate_draw and boolGate rows can be imported")
        gs.add_gate(gate, gate_path=paths[parent])
        paths[name] = paths[parent] + (name,)
    return gs


def read_scales(path: str | Path) -> dict[str, ChannelScale]:
    """Channel scales of an openCyto template from YAML: per channel a logicle (T, W, M, A), an
    asinh (T, M, A) or linear scale, and the divisor that brings its coordinates onto FlowKit's::

        default: {transform: logicle, T: 262143, M: 4.5, A: 0, W: 0.5, divide_by: 4.5}
        channels:
          7-AAD-A: {W: 0.915}
          FSC-A: {transform: linear}

    Channels not listed are linear (coordinates as drawn).
    """
    import yaml
    path = Path(path)
    try:
        doc = safe_load(path.read_text()) or {}
    except OSError as exc:
        raise StrategyError(f"scales file {path}: cannot be read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise StrategyError(f"scales file {path}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict) or set(doc) - {"default", "channels"}:
        raise StrategyError(f"scales file {path}: expected keys 'default' and 'channels', "
                            f"got {', '.join(map(str, doc)) if isinstance(doc, dict) else type(doc).__name__}")
    default = doc.get("default") or {}
    return {str(ch): _scale(default, spec or {}, f"scales file {path}, channel {ch}")
            for ch, spec in (doc.get("channels") or {}).items()}


def _scale(default: dict, own: dict, where: str) -> ChannelScale:
    """A channel's scale: its own keys over the default's; a linear channel keeps only its own divisor."""
    spec = {**default, **own}
    kind = str(spec.get("transform", "linear")).lower()
    known = {"transform", "T", "W", "M", "A", "divide_by"}
    if set(spec) - known:
        raise StrategyError(f"{where}: unknown key(s) {', '.join(sorted(set(spec) - known))}; "
                            f"known: {', '.join(sorted(known))}")
    try:
        if kind == "linear":
            return ChannelScale(None, float(own.get("divide_by", 1.0)))
        t, m, a = float(spec.get("T", 262144)), float(spec.get("M", 4.5)), float(spec.get("A", 0.0))
        div = float(spec.get("divide_by", 1.0))
        if kind == "logicle":
            return ChannelScale(fk.transforms.LogicleTransform(t, float(spec.get("W", 0.5)), m, a), div)
        if kind == "asinh":
            return ChannelScale(fk.transforms.AsinhTransform(t, m, a), div)
    except (TypeError, ValueError) as exc:
        raise StrategyError(f"{where}: {exc}") from exc
    raise StrategyError(f"{where}: transform '{kind}' is not one of linear, logicle, asinh")
