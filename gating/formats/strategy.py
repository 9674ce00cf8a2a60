"""Gating strategies from users (Gating-ML 2.0, FlowJo 10 workspaces), applied with FlowKit,
and every applied strategy written back out as Gating-ML 2.0.
"""
from __future__ import annotations

import copy
import io
import re
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path

import flowkit as fk
import numpy as np

from gating.formats.xmlsafe import UnsafeXMLError, checked_xml
from gating.io.events import flowkit_sample
from gating.io.files import atomic_write
from gating.preprocess import raw_value


class StrategyError(ValueError):
    """A strategy file cannot be read, or has no gates for a sample."""


_XS_ID_BAD = re.compile(r"[^A-Za-z0-9_.-]")
#: Transforms Gating-ML 2.0 can express; others (FlowJo's own log and biex) are folded into gates.
_GML_TRANSFORMS = (fk.transforms.LinearTransform, fk.transforms.LogTransform, fk.transforms.AsinhTransform,
                   fk.transforms.LogicleTransform, fk.transforms.HyperlogTransform, fk.transforms.RatioTransform)


def gml_id(name: str) -> str:
    """A Gating-ML-safe id (xs:ID) for a gate name: invalid characters become '_'."""
    out = _XS_ID_BAD.sub("_", name.strip().replace("+", "pos")) or "gate"
    return out if (out[0].isalpha() or out[0] == "_") else "_" + out


def _normalise_for_gml(strategy: fk.GatingStrategy, sample_id: str | None = None) -> tuple[fk.GatingStrategy, list[str]]:
    """A copy of ``strategy`` that Gating-ML 2.0 can express, and notes on what was changed.

    - gate ids become valid xs:IDs (FlowJo names such as 'Q1: CD4+ , CD8-' are not);
    - a matrix without fluorochrome names (FlowJo's) is named by its detectors;
    - dimensions without a compensation reference get 'uncompensated' (what FlowKit does
      with them anyway; the schema requires the attribute);
    - rectangle bounds on FlowJo-only transforms (log, biex) are mapped back to raw values,
      the transform being monotone, and the transform dropped from the dimension.
    """
    gs = copy.deepcopy(strategy)
    notes: list[str] = []
    for matrix in gs.comp_matrices.values():     # FlowJo's matrices name no fluorochromes; Gating-ML needs names
        if not all(getattr(matrix, "fluorochromes", None) or [""]):
            matrix.fluorochromes = list(matrix.detectors)
    for gate_name, gate_path in list(gs.get_gate_ids()):
        new = gml_id(gate_name)
        if new != gate_name:
            try:
                gs.rename_gate(gate_name, new, gate_path=gate_path)
                notes.append(f"GML_RENAMED:{gate_name}->{new}")
            except Exception:  # noqa: BLE001 - quadrant members are renamed with their gate
                pass
    used = set()
    for gate_name, gate, dim in _dimensions(gs, sample_id):
        if getattr(dim, "compensation_ref", "") is None:
            dim.compensation_ref = "uncompensated"
        if getattr(dim, "ratio_ref", None):              # a ratio dimension is its transformation
            used.add(dim.ratio_ref)
        ref = getattr(dim, "transformation_ref", None)
        if ref is None:
            continue
        xf = gs.transformations.get(ref)
        if xf is None or isinstance(xf, _GML_TRANSFORMS):
            used.add(ref)
            continue
        if isinstance(gate, fk.gates.RectangleGate):
            if dim.min is not None:
                dim.min = raw_value(xf, dim.min)
            if dim.max is not None:
                dim.max = raw_value(xf, dim.max)
            dim.transformation_ref = None
            notes.append(f"GML_UNTRANSFORMED:{gate_name}:{type(xf).__name__}")
        else:
            raise StrategyError(
                f"gate '{gate_name}' uses {type(xf).__name__}, which Gating-ML 2.0 cannot express "
                f"on a {type(gate).__name__}")
    for ref in list(gs.transformations):            # only what a gate uses (FlowJo lists every channel's)
        if ref not in used:
            del gs.transformations[ref]
    _valid_ids(gs, sample_id)
    return gs, notes


def _dimensions(gs: fk.GatingStrategy, sample_id: str | None):
    """(gate name, gate, dimension) of every gate's dimensions (quadrant sub-gates have none of their own)."""
    for gate_name, gate_path in gs.get_gate_ids():
        try:
            gate = gs.get_gate(gate_name, gate_path, sample_id=sample_id)
        except Exception:  # noqa: BLE001 - quadrant sub-gates
            continue
        for dim in list(getattr(gate, "dimensions", None) or []):
            yield gate_name, gate, dim


def _valid_ids(gs: fk.GatingStrategy, sample_id: str | None) -> None:
    """Transformation and matrix ids as xs:IDs (a FlowJo workspace keys them by channel or matrix
    name, e.g. 'Comp-Alexa Fluor 405-A'), every dimension's reference renamed with them."""
    xf_ids = {ref: gml_id(ref) for ref in gs.transformations}
    special = ("uncompensated", "FCS")
    mx_ids = {ref: gml_id(ref) for ref in gs.comp_matrices if ref not in special}
    if all(k == v for k, v in {**xf_ids, **mx_ids}.items()):
        return
    gs.transformations = {xf_ids[k]: v for k, v in gs.transformations.items()}
    gs.comp_matrices = {mx_ids.get(k, k): v for k, v in gs.comp_matrices.items()}
    for matrix_id, matrix in gs.comp_matrices.items():
        if hasattr(matrix, "id"):
            matrix.id = matrix_id
    for _, _, dim in _dimensions(gs, sample_id):
        for attr in ("transformation_ref", "ratio_ref"):
            if getattr(dim, attr, None) in xf_ids:
                setattr(dim, attr, xf_ids[getattr(dim, attr)])
        if getattr(dim, "compensation_ref", None) in mx_ids:
            dim.compensation_ref = mx_ids[dim.compensation_ref]


def gatingml_bytes(strategy: fk.GatingStrategy, sample_id: str | None = None) -> bytes:
    """The strategy as a Gating-ML 2.0 document (UTF-8 bytes)."""
    buf = io.BytesIO()
    gs, _ = _normalise_for_gml(strategy, sample_id)
    fk.export_gatingml(gs, buf, sample_id=sample_id)
    return buf.getvalue()


def write_gatingml(strategy: fk.GatingStrategy, path: str | Path, sample_id: str | None = None) -> Path:
    """Write the strategy as Gating-ML 2.0 (atomically: temporary file, then rename)."""
    return atomic_write(path, gatingml_bytes(strategy, sample_id))


def read_gatingml(path_or_bytes) -> fk.GatingStrategy:
    """Parse a Gating-ML 2.0 document (path or bytes) into a FlowKit strategy (after the checks
    of :mod:`gating.formats.xmlsafe`: no DTD/entities, size cap, well-formed)."""
    try:
        data = checked_xml(path_or_bytes, "Gating-ML document")
    except UnsafeXMLError as exc:
        raise StrategyError(str(exc)) from exc
    src = io.BytesIO(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fk.parse_gating_xml(src)
    except Exception as exc:  # noqa: BLE001
        where = "Gating-ML document" if isinstance(path_or_bytes, (bytes, bytearray)) else str(path_or_bytes)
        raise StrategyError(f"{where}: not a valid Gating-ML 2.0 document ({schema_violation(io.BytesIO(data)) or exc})") from exc


def schema_violation(src) -> str:
    """The first Gating-ML 2.0 schema violation of a document, as 'line N: message'."""
    try:
        from flowkit._resources import gml_schema
        from lxml import etree
        if isinstance(src, io.BytesIO):
            src.seek(0)
        doc = etree.parse(src, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
        if gml_schema.validate(doc):
            return ""
        err = gml_schema.error_log[0]
        return f"line {err.line}: {err.message}"
    except Exception as exc:  # noqa: BLE001 - not even XML
        return str(exc)


@dataclass
class Population:
    """One gate's result in one sample."""

    name: str
    path: tuple[str, ...]          # parent path, starting at 'root'
    count: int
    parent_count: int
    membership: np.ndarray

    @property
    def parent(self) -> str:
        return self.path[-1]


_EVALUATORS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def evaluator_for(strategy: fk.GatingStrategy):
    """The strategy's :class:`gating.evaluator.evaluate.Evaluator`, built once per strategy object (its gate
    order is worked out again when the strategy's gates change)."""
    from gating.evaluator.evaluate import Evaluator
    ev = _EVALUATORS.get(strategy)
    if ev is None or ev.gate_ids != strategy.get_gate_ids():
        ev = _EVALUATORS[strategy] = Evaluator(strategy)
    return ev


def gate_sample(strategy: fk.GatingStrategy, sample: fk.Sample, engine: str = "fast",
                sample_id: str | None = None, on_gate=None) -> list[Population]:
    """Apply a strategy; one entry per gate in tree order.

    ``engine='fast'`` uses :class:`gating.evaluator.evaluate.Evaluator` (event-for-event FlowKit's result,
    much faster; ``on_gate(key, mask)`` hears of each gate as it is done); ``'flowkit'`` calls
    ``GatingStrategy.gate_sample`` itself, the reference.
    """
    n = sample.event_count
    if engine == "flowkit":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = strategy.gate_sample(flowkit_sample(sample))
        members = {}
        for row in res.report.itertuples(index=False):
            members[(row.gate_name, tuple(row.gate_path))] = np.asarray(
                res.get_gate_membership(row.gate_name, gate_path=tuple(row.gate_path)), dtype=bool)
    elif engine == "fast":
        members = evaluator_for(strategy).evaluate(sample, sample_id, on_gate).membership
    else:
        raise ValueError(f"engine must be 'fast' or 'flowkit', not {engine!r}")
    counts = {key: int(np.count_nonzero(mask)) for key, mask in members.items()}
    out = []
    for (name, path), mask in members.items():
        if path == ("root",):
            parent_count = n
        else:
            pkey = (path[-1], path[:-1])
            if pkey not in counts:    # the parent is a quadrant: its results sit beside the quadrant gate
                pkey = (path[-1], path[:-2])
            parent_count = counts.get(pkey, n)
        out.append(Population(name, path, counts[(name, path)], parent_count, mask))
    return out


class WorkspaceStrategies:
    """A FlowJo 10 workspace: one gating strategy per sample, matched by file name; or, for every
    file, one workspace sample's gates (``sample``) or one group's own gates (``group``), as a
    FlowJo user applies a group's gates to a new day's files."""

    def __init__(self, path: str | Path, group: str | None = None, sample: str | None = None):
        self.path = Path(path)
        try:
            self._xml = checked_xml(self.path, "FlowJo workspace")
        except UnsafeXMLError as exc:
            raise StrategyError(str(exc)) from exc
        self.workspace = self._read(self._xml)
        self.sample_ids = list(self.workspace.get_sample_ids(loaded_only=False))
        self._hidden = helper_populations(self._xml)
        self.fixed: str | None = None           # the workspace sample every file gets
        if sample is not None and group is not None:
            raise StrategyError(f"{self.path}: give a workspace group or a workspace sample, not both")
        if sample is not None:
            self.fixed = self._named(sample)
        elif group is not None:
            self.workspace, self.fixed = self._group_as_sample(group)

    def _read(self, data: bytes):
        try:
            # FlowKit gets the checked bytes, no FCS paths: the files the workspace names are never
            # opened (cytomnt reads only the files the user gives and matches them by name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fk.Workspace(io.BytesIO(data), fcs_samples=None, load_missing_file_data=True,
                                    find_fcs_files_from_wsp=False)
        except Exception as exc:  # noqa: BLE001
            detail = "a part of a FlowJo 10 workspace that FlowKit needs is missing" \
                if isinstance(exc, (AttributeError, TypeError, KeyError, IndexError)) else " ".join(str(exc).split())
            raise StrategyError(f"{self.path}: cannot be read as a FlowJo 10 workspace ({detail})") from exc

    def _named(self, name: str, file: str | Path | None = None) -> str:
        """The workspace sample called ``name`` (its file name, or that name without .fcs)."""
        candidates = [sid for sid in self.sample_ids if sid == name] or \
            [sid for sid in self.sample_ids if Path(sid).stem == Path(name).stem]
        if not candidates:
            what = f"{file}: workspace" if file is not None else "workspace"
            hint = "" if file is None else " (to apply one sample's or group's gates to any file: --wsp-sample NAME or --wsp-group NAME)"
            raise StrategyError(f"{what} {self.path.name} has no sample named {name}; "
                                f"its samples are {_some(self.sample_ids)}{hint}")
        return candidates[0]

    def _group_as_sample(self, group: str):
        """The group's own gates as a workspace of one sample (its first member, for the transforms
        and compensation the gates were drawn on), and that sample's name."""
        from lxml import etree
        root = etree.fromstring(self._xml)
        nodes = {g.get("name"): g for g in root.iter("GroupNode")}
        if group not in nodes:
            raise StrategyError(f"workspace {self.path.name} has no group {group}; its groups are "
                                f"{', '.join(nodes) or '(none)'}")
        gates = nodes[group].find("Subpopulations")
        members = [r.get("sampleID") for r in nodes[group].iter("SampleRef")]
        samples = {s.find("DataSet").get("sampleID"): s for s in root.iter("Sample") if s.find("DataSet") is not None}
        if gates is None or not len(gates) or not any(m in samples for m in members):
            raise StrategyError(f"group {group} of {self.path.name} holds no gates of its own (its samples' gates are "
                                f"their own): use --wsp-sample with one of {_some(self.sample_ids)}")
        keep = samples[next(m for m in members if m in samples)]
        node = keep.find("SampleNode")
        for old in node.findall("Subpopulations"):
            node.remove(old)
        node.append(copy.deepcopy(gates))
        sample_list = keep.getparent()
        for other in list(sample_list):
            if other is not keep:
                sample_list.remove(other)
        self._hidden[node.get("name")] = helper_populations(etree.tostring(root)).get(node.get("name"), set())
        return self._read(etree.tostring(root)), node.get("name")

    def _sample_for(self, file: str | Path, fil: str | None = None) -> str:
        if self.fixed is not None:
            return self.fixed
        if fil:                 # FlowJo names a sample by its $FIL keyword; else by the file name
            try:
                return self._named(fil)
            except StrategyError:
                pass
        return self._named(Path(file).name, file)

    def for_file(self, file: str | Path, fil: str | None = None) -> fk.GatingStrategy:
        """The strategy FlowJo holds for ``file`` (the sample named by its $FIL keyword ``fil`` or by
        its file name, or the one for every file)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.workspace.get_gating_strategy(self._sample_for(file, fil))

    def hidden_for(self, file: str | Path, fil: str | None = None) -> set[tuple[str, tuple[str, ...]]]:
        """(population, gate path) of the helpers cytomnt added when it wrote the workspace (an
        operand FlowJo cannot complement): gated, not reported."""
        return self._hidden.get(self._sample_for(file, fil), set())


def _some(names: list[str], shown: int = 8) -> str:
    """'a, b, c' or 'a, b, ... and 22 more' (an error line a person reads)."""
    if not names:
        return "(none)"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def helper_populations(xml: bytes) -> dict[str, set[tuple[str, tuple[str, ...]]]]:
    """SampleNode name -> (name, gate path) of every population annotated as cytomnt's helper."""
    from lxml import etree

    from gating.formats.wsp import HELPER_NOTE
    out: dict[str, set] = {}
    for node in etree.fromstring(xml).iter("SampleNode"):
        found = set()
        for el in node.iter("Population", "AndNode", "OrNode", "NotNode"):
            if el.get("annotation") == HELPER_NOTE:
                path = [a.get("name") for a in el.iterancestors("Population", "AndNode", "OrNode", "NotNode")]
                found.add((el.get("name"), ("root", *reversed(path))))
        out[node.get("name")] = found
    return out
