"""FlowJo 10 workspaces written from gating strategies: every sample with its own gates, its
compensation and its transforms, so a reviewer opens the run in FlowJo and sees the same
populations and counts.

FlowJo stores gate coordinates in data units (compensated where the channel is ``Comp-``), one
transform per channel, one spillover matrix per sample, quadrants as four rectangles, and
boolean gates whose operands cannot be complemented. So a Gating-ML quadrant gate becomes its
quadrants, and a boolean operand used as a complement becomes a helper population beside the
gate (``not <gate>``, or for ``not A and not B`` one ``A or B`` under the ``not`` gate's name).
Ranges keep their bounds in data units whatever their transform; a polygon needs one FlowJo
has (linear, logicle, arcsinh, FlowJo's log and biex). Ellipses (FlowJo draws them as polygons)
and ratio dimensions stop the export with the gate named.
"""
from __future__ import annotations

import datetime as dt
import re
import weakref
import zlib
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import quote

import flowkit as fk
import numpy as np
from lxml import etree

from gating.formats.flowjo_xml import (COMP_PREFIX, DATATYPE, FLOWJO_TRANSFORMS, GATING, NSMAP, graph, matrix_element, num, q,
                         same_transform, transform_element)
from gating.preprocess import raw_value

_UNCOMPENSATED = (None, "uncompensated")


class WspExportError(ValueError):
    """A strategy cannot be written as a FlowJo workspace; the message names the gate and why."""


@dataclass(frozen=True)
class WspSample:
    """One sample of the workspace: the name FlowJo shows, where its FCS file is, its gates (with
    a workspace sample's own gates when ``gates_of`` names it), and the counts to show until
    FlowJo recalculates ((population, its gate path) as in ``gate_sample`` -> events)."""

    name: str
    uri: str
    strategy: fk.GatingStrategy
    event_count: int
    counts: Mapping[tuple[str, tuple[str, ...]], int] = field(default_factory=dict)
    fcs_spill: object | None = None     # the matrix used for 'FCS' (``.detectors``, ``.matrix``: FlowKit's or ours)
    gates_of: str | None = None


def file_uri(path) -> str:
    """A file path as FlowJo writes DataSet uris (``file:/abs/path``; FlowKit reads it back)."""
    return "file:" + quote(Path(path).resolve().as_posix())


class _Sample:
    """Writes one sample's gates; tracks its matrix and the transform of every channel it uses."""

    def __init__(self, ws: WspSample):
        self.ws, self.gs = ws, ws.strategy
        self.count_keys: list[tuple[str, tuple[str, ...]]] = []     # population of each count slot, in order
        self.matrix: tuple[str, fk.Matrix] | None = None
        self.transforms: dict[str, object] = {}       # FlowJo channel name -> transform (None: linear data)
        self.next_gate = 1

    # -- channels ---------------------------------------------------------------------------
    def channel(self, dim_id: str, comp_ref: str | None, xform_ref: str | None, gate: str,
                ranges_only: bool = False) -> tuple[str, object]:
        """FlowJo's name of a gate dimension's channel, and the transform its coordinates are in
        (None: data units). FlowJo keeps one transform per channel: a polygon's must be it; a
        range's bounds are written in data units, so any monotone transform serves (and is shown
        only if FlowJo has it and the channel has none yet)."""
        name = self._compensated(dim_id, comp_ref, gate)
        xform = self.gs.get_transform(xform_ref) if xform_ref else None
        supported = xform is None or isinstance(xform, FLOWJO_TRANSFORMS)
        if ranges_only:
            if supported and name not in self.transforms:
                self.transforms[name] = xform
            return name, xform
        if not supported:
            raise WspExportError(f"gate '{gate}': the {type(xform).__name__} of {dim_id} has no FlowJo equivalent "
                                 f"for a polygon (linear, logicle, arcsinh and FlowJo's log and biex have)")
        have = self.transforms.get(name, xform)
        if have is not xform and not same_transform(have, xform):
            raise WspExportError(f"gate '{gate}': FlowJo keeps one transform per channel, {name} is drawn with two")
        self.transforms[name] = xform
        return name, xform

    def _compensated(self, dim_id: str, comp_ref: str | None, gate: str) -> str:
        """``Comp-<detector>`` for a dimension compensated with a matrix holding it, else its own name
        (FlowKit too leaves a channel outside the matrix, or a file without one, uncompensated)."""
        if comp_ref in _UNCOMPENSATED:
            return dim_id
        matrix = self.ws.fcs_spill if comp_ref == "FCS" else self.gs.comp_matrices.get(comp_ref)
        if matrix is None:
            if comp_ref == "FCS":
                return dim_id
            raise WspExportError(f"gate '{gate}': compensation '{comp_ref}' of {dim_id} is not in the strategy")
        detector = _detector(matrix, dim_id)
        if detector not in list(matrix.detectors):
            return dim_id
        if self.matrix is not None and self.matrix[0] != comp_ref:
            raise WspExportError(f"gate '{gate}': FlowJo keeps one compensation per sample, this sample's "
                                 f"gates use '{self.matrix[0]}' and '{comp_ref}'")
        self.matrix = (comp_ref, matrix)
        return COMP_PREFIX + detector

    # -- gates ------------------------------------------------------------------------------
    def count_slot(self, *keys: tuple[str, tuple[str, ...]]) -> str:
        """A place for the count of the first of ``keys`` (population, gate path) a sample has."""
        self.count_keys.append(keys)
        return _slot(f"c{len(self.count_keys) - 1}")

    def gate_el(self, parent_pop, name: str, count: str):
        pop = etree.SubElement(parent_pop, "Population", name=name, annotation="", owningGroup="", count=count)
        gate = etree.SubElement(pop, "Gate")
        gate.set(q(GATING, "id"), f"ID{_slot('gid')}{self.next_gate:04d}")
        self.next_gate += 1
        return pop, gate

    def rectangle(self, gate_el, name: str, dims, complement: bool = False) -> list[str]:
        """dims: (dim_id, comp_ref, xform_ref, min, max) in the strategy's (transformed) units."""
        rect = etree.SubElement(gate_el, q(GATING, "RectangleGate"), eventsInside="0" if complement else "1",
                                percentX="0", percentY="0")
        axes = []
        for dim_id, comp_ref, xform_ref, lo, hi in dims:
            channel, xform = self.channel(dim_id, comp_ref, xform_ref, name, ranges_only=True)
            d = etree.SubElement(rect, q(GATING, "dimension"))
            if lo is not None:
                d.set(q(GATING, "min"), num(raw_value(xform, lo)))
            if hi is not None:
                d.set(q(GATING, "max"), num(raw_value(xform, hi)))
            etree.SubElement(d, q(DATATYPE, "fcs-dimension")).set(q(DATATYPE, "name"), channel)
            axes.append(channel)
        return axes

    def polygon(self, gate_el, gate: fk.gates.PolygonGate) -> list[str]:
        poly = etree.SubElement(gate_el, q(GATING, "PolygonGate"), eventsInside="0" if gate.use_complement else "1",
                                quadID="-1", gateResolution="256")
        axes, xforms = [], []
        for dim in gate.dimensions:
            _no_ratio(dim, gate.gate_name)
            channel, xform = self.channel(dim.id, dim.compensation_ref, dim.transformation_ref, gate.gate_name)
            etree.SubElement(etree.SubElement(poly, q(GATING, "dimension")),
                             q(DATATYPE, "fcs-dimension")).set(q(DATATYPE, "name"), channel)
            axes.append(channel)
            xforms.append(xform)
        for vertex in gate.vertices:
            v = etree.SubElement(poly, q(GATING, "vertex"))
            for xform, coord in zip(xforms, vertex):
                etree.SubElement(v, q(GATING, "coordinate")).set(q(DATATYPE, "value"), num(raw_value(xform, coord)))
        return axes


def _detector(matrix, dim_id: str) -> str:
    """The detector behind a compensated dimension (Gating-ML may name it by its fluorochrome;
    FlowJo names compensated channels ``Comp-<detector>``)."""
    detectors = list(matrix.detectors)
    fluorochromes = list(getattr(matrix, "fluorochromes", None) or [])
    if dim_id not in detectors and dim_id in fluorochromes:
        return detectors[fluorochromes.index(dim_id)]
    return dim_id


def _no_ratio(dim, gate: str) -> None:
    if not isinstance(dim, fk.Dimension):
        raise WspExportError(f"gate '{gate}': {type(dim).__name__} has no FlowJo equivalent")


def _sample_node(s: _Sample, parent_sub) -> None:
    """Every gate of the strategy under ``parent_sub`` (the SampleNode's Subpopulations), nested as
    FlowJo nests them; FlowJo paths skip quadrant gates (their quadrants are populations)."""
    gs, sid = s.gs, s.ws.gates_of
    order = _tree_order(gs, sid)
    fj_path = _flowjo_paths(order)
    subs: dict = {"": parent_sub}          # FlowJo path -> its Subpopulations element
    pops: dict = {}                        # FlowJo path -> its population element
    helpers: dict = {}

    def sub_of(path: str):
        if path not in subs:
            subs[path] = etree.SubElement(pops[path], "Subpopulations")
        return subs[path]

    for name, path, gate in order:
        base = "" if path == ("root",) else fj_path[(path[-1], path[:-1])]
        if isinstance(gate, fk.gates.QuadrantGate):
            dividers = {div.id: div for div in gate.dimensions}
            for qid, quadrant in gate.quadrants.items():
                dims = []
                for ref in quadrant.divider_refs:          # a quadrant may be bounded by some dividers only
                    div, (lo, hi) = dividers[ref], quadrant.get_divider_range(ref)
                    dims.append((div.dimension_ref, div.compensation_ref, div.transformation_ref, lo, hi))
                pop, el = s.gate_el(sub_of(base), qid, s.count_slot((qid, path + (name,)), (qid, path)))
                graph(pop, s.rectangle(el, f"{name}/{qid}", dims))
                pops[fj_path[(qid, path + (name,))]] = pop
            continue
        fpath = fj_path[(name, path)]
        if isinstance(gate, fk.gates.BooleanGate):
            _boolean(gate, name, base, fpath, fj_path, sub_of, pops, s.count_slot((name, path)), helpers)
            continue
        pop, el = s.gate_el(sub_of(base), name, s.count_slot((name, path)))
        pops[fpath] = pop
        if isinstance(gate, fk.gates.RectangleGate):
            for d in gate.dimensions:
                _no_ratio(d, name)
            axes = s.rectangle(el, name, [(d.id, d.compensation_ref, d.transformation_ref, d.min, d.max)
                                          for d in gate.dimensions], gate.use_complement)
        elif isinstance(gate, fk.gates.PolygonGate):
            axes = s.polygon(el, gate)
        else:
            raise WspExportError(f"gate '{name}': a {type(gate).__name__} has no FlowJo equivalent here "
                                 f"(rectangles, polygons, quadrants and boolean gates have)")
        graph(pop, axes)


def _tree_order(gs: fk.GatingStrategy, sid: str | None) -> list[tuple[str, tuple[str, ...], object]]:
    """(gate, its parent path, the gate) parents first; a quadrant gate's children follow it."""
    order = []

    def walk(name: str, path: tuple[str, ...]) -> None:
        gate = gs.get_gate(name, path, sample_id=sid)
        order.append((name, path, gate))
        kids = gs.get_child_gate_ids(name, path)
        if isinstance(gate, fk.gates.QuadrantGate):
            kids = [k for q in gate.quadrants for k in gs.get_child_gate_ids(q, path + (name,))]
        for kid, kpath in kids:
            walk(kid, tuple(kpath))

    for g in gs.get_root_gates(sample_id=sid):
        walk(g.gate_name, ("root",))
    return order


def _flowjo_paths(order) -> dict[tuple[str, tuple[str, ...]], str]:
    """(gate or quadrant, its parent path in the strategy) -> its FlowJo path ('a/b/c'; quadrants
    sit under the quadrant gate's parent, so their paths skip the quadrant gate)."""
    fj: dict[tuple[str, tuple[str, ...]], str] = {}
    for name, path, gate in order:
        base = "" if path == ("root",) else fj[(path[-1], path[:-1])]
        if isinstance(gate, fk.gates.QuadrantGate):
            for qid in gate.quadrants:
                fj[(qid, path + (name,))] = fj[(qid, path)] = f"{base}/{qid}".lstrip("/")
            fj[(name, path)] = base
        else:
            fj[(name, path)] = f"{base}/{name}".lstrip("/")
    return fj


#: The annotation of populations cytomnt adds for FlowJo (an operand used as a complement):
#: hidden again when the workspace comes back as a strategy.
HELPER_NOTE = "cytomnt: helper for a boolean gate (FlowJo cannot complement an operand)"


def _boolean(gate, name: str, base: str, fpath: str, fj_path, sub_of, pops, count: str, helpers: dict) -> None:
    """A Gating-ML boolean gate as FlowJo's And/Or/NotNode; operands used as complements become
    helper populations beside it (``helpers``: (parent, label) -> what it holds, shared per sample)."""
    refs = [(fj_path[(r["ref"], tuple(r["path"]))], bool(r.get("complement"))) for r in gate.gate_refs]
    op = gate.type

    def node(kind: str, label: str, deps: list[str], count=None, note: str = ""):
        el = etree.SubElement(sub_of(base), f"{kind.capitalize()}Node", name=label, annotation=note, owningGroup="")
        if count is not None:
            el.set("count", count)
        d = etree.SubElement(el, "Dependents")
        for dep in deps:
            etree.SubElement(d, "Dependent", name=dep)
        return el

    def helper(kind: str, label: str, deps: list[str]) -> str:
        """The path of a helper holding ``kind(deps)`` beside the gate, made once per parent."""
        if "/" in label:
            raise WspExportError(f"gate '{name}': helper population '{label}' would contain '/'")
        want, n, unique = (kind, tuple(deps)), 1, label
        while (base, unique) in helpers and helpers[(base, unique)] != want:
            n += 1
            unique = f"{label} ({n})"
        path = f"{base}/{unique}".lstrip("/")
        if (base, unique) not in helpers:
            if path in pops:
                raise WspExportError(f"gate '{name}': helper population '{unique}' has the name of a gate")
            helpers[(base, unique)] = want
            pops[path] = node(kind, unique, deps, note=HELPER_NOTE)
        return path

    names = [p.rsplit("/", 1)[-1] for p, _ in refs]
    if op == "not":
        (ref, comp), = refs
        el = node("or" if comp else "not", name, [ref], count)     # not (not A) is A: an OR of one
    elif all(c for _, c in refs):             # not A and not B = not (A or B); not A or not B = not (A and B)
        flipped = "or" if op == "and" else "and"
        el = node("not", name, [helper(flipped, f" {flipped} ".join(names), [p for p, _ in refs])], count)
    else:
        deps = [helper("not", f"not {n}", [p]) if comp else p for (p, comp), n in zip(refs, names)]
        el = node(op, name, deps, count)
    pops[fpath] = el


def _slot(name: str) -> str:
    """A placeholder in a sample's XML for a value filled in per sample (no name or text holds it)."""
    return f"\ue000{name}\ue001"


_SLOT = re.compile("\ue000(\\w+)\ue001".encode())
#: A shared strategy's sample XML with places for each sample's name, file and counts, per
#: strategy object and (workspace sample, matrix): one strategy, many files, drawn once.
_TEMPLATES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _template(ws: WspSample) -> tuple[bytes, list]:
    """(the sample's XML with slots, the population keys of its count slots)."""
    spill = ws.fcs_spill
    key = (ws.gates_of, None if spill is None else (tuple(spill.detectors), np.asarray(spill.matrix).tobytes()))
    per = _TEMPLATES.setdefault(ws.strategy, {})
    if key not in per:
        s = _Sample(ws)
        sample = etree.Element("Sample", nsmap=NSMAP)
        etree.SubElement(sample, "DataSet", uri=_slot("uri"), sampleID=_slot("number"))
        node = etree.Element("SampleNode", name=_slot("name"), annotation="", owningGroup="", count=_slot("tot"),
                             sampleID=_slot("number"))
        _sample_node(s, etree.SubElement(node, "Subpopulations"))
        if s.matrix is not None:
            sample.append(matrix_element(*s.matrix))
        xforms = etree.SubElement(sample, "Transformations")
        for channel, xform in s.transforms.items():
            if xform is not None:
                xforms.append(transform_element(channel, xform))
        # FlowKit's reader looks a compensated channel's transform up by its uncompensated name
        for channel, xform in s.transforms.items():
            bare = channel[len(COMP_PREFIX):] if channel.startswith(COMP_PREFIX) else None
            if xform is not None and bare and bare not in s.transforms:
                xforms.append(transform_element(bare, xform))
        kws = etree.SubElement(sample, "Keywords")
        etree.SubElement(kws, "Keyword", name="$FIL", value=_slot("name"))
        etree.SubElement(kws, "Keyword", name="$TOT", value=_slot("tot"))
        sample.append(node)
        per[key] = (etree.tostring(sample, encoding="UTF-8", pretty_print=True), s.count_keys)
    return per[key]


def sample_fragment(ws: WspSample) -> bytes:
    """One ``<Sample>`` (its file, compensation, transforms and gates) as XML bytes that
    :func:`workspace_from_fragments` numbers: made where the sample is gated, joined at the end."""
    template, count_keys = _template(ws)
    values = {"name": escape(ws.name, quote=True), "uri": escape(ws.uri, quote=True), "tot": str(int(ws.event_count)),
              "gid": str(zlib.crc32(ws.name.encode()) % 10**9), "number": _slot("number")}   # numbered when joined
    for i, keys in enumerate(count_keys):
        found = next((ws.counts[k] for k in keys if k in ws.counts), None)
        values[f"c{i}"] = "-1" if found is None else str(int(found))        # -1: FlowJo's "not computed"
    return _SLOT.sub(lambda m: values[m.group(1).decode()].encode(), template)


def workspace_from_fragments(fragments: Sequence[bytes], group: str = "cytomnt",
                             now: dt.datetime | None = None) -> bytes:
    """A FlowJo 10 workspace of the samples made by :func:`sample_fragment`, numbered 1, 2, ...
    in this order, each in All Samples and in ``group``."""
    root = etree.Element("Workspace", nsmap=NSMAP, version="20.0", flowJoVersion="10.10.0", curGroup="All Samples")
    root.set("modDate", (now or dt.datetime.now().astimezone()).strftime("%a %b %d %H:%M:%S %Z %Y"))
    etree.SubElement(root, "Matrices")
    groups = etree.SubElement(root, "Groups")
    ids = [str(i) for i in range(1, len(fragments) + 1)]
    for name in dict.fromkeys(("All Samples", group)):
        node = etree.SubElement(groups, "GroupNode", name=name, annotation="", owningGroup=name)
        refs = etree.SubElement(etree.SubElement(node, "Group", name=name), "SampleRefs")
        for sid in ids:
            etree.SubElement(refs, "SampleRef", sampleID=sid)
    etree.SubElement(root, "SampleList").text = "@SAMPLES@"
    head, tail = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True).split(b"@SAMPLES@")
    token = _slot("number").encode()
    body = b"".join(f.replace(token, i.encode()) for i, f in zip(ids, fragments))
    return head + b"\n" + body + tail


def workspace_bytes(samples: Sequence[WspSample], group: str = "cytomnt", now: dt.datetime | None = None) -> bytes:
    """A FlowJo 10 workspace with every sample in All Samples and in ``group``."""
    return workspace_from_fragments([sample_fragment(s) for s in samples], group, now)
