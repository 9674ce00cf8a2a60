"""FlowJo workspaces written by cytomnt, read back by FlowKit's own Workspace reader (an
independent implementation of FlowJo's format): same events in every population."""
import warnings

import flowkit as fk
import numpy as np
import pytest
from lxml import etree

from gating import read_fcs
from gating.formats.strategy import gate_sample
from gating.formats.wsp import HELPER_NOTE, WspExportError, WspSample, file_uri, workspace_bytes

from cytomnt.inputs.strategies import load_strategy

from .conftest import shared

#: what FlowJo cannot hold exactly (FlowJo draws ellipses as polygons; it has no ratio parameters)
NOT_EXPORTABLE = ("EllipsoidGate", "RatioDimension")


def flowkit_memberships(wsp_path, fcs_path) -> dict[str, np.ndarray]:
    """Every population's events as FlowKit's Workspace computes them (path without 'root' -> mask)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = fk.Workspace(str(wsp_path), fcs_samples=str(fcs_path), filename_as_id=True)
        sid = ws.get_sample_ids()[0]
        ws.analyze_samples(sample_id=sid, use_mp=False)
        res = ws.get_gating_results(sid)
        out = {}
        for name, path in ws.get_gate_ids(sid):
            out["/".join(tuple(path[1:]) + (name,))] = res.get_gate_membership(name, path)
    return out


def _fj_path(name, path, quadrant_gates) -> str:
    return "/".join([p for p in path[1:] if p not in quadrant_gates] + [name])


@pytest.mark.slow
def test_compliance_suite_through_flowjo_workspace(tmp_path):
    d = shared("gatingml2_compliance")
    fcs = d / "data1.fcs"
    sample = read_fcs(fcs).sample
    exported, refused = 0, []
    for doc in sorted((d / "gml").glob("*.xml")):
        try:
            strategy = load_strategy(str(doc))
        except Exception:                  # the deliberately invalid document
            continue
        pops = gate_sample(strategy, sample)
        counts = {(p.name, p.path): p.count for p in pops}
        ws = WspSample(fcs.name, file_uri(fcs), strategy, sample.event_count, counts, fcs_spill=_fcs_matrix(sample))
        try:
            data = workspace_bytes([ws])
        except WspExportError as exc:
            assert "gate '" in str(exc), str(exc)
            refused.append(str(exc))
            continue
        path = tmp_path / (doc.stem + ".wsp")
        path.write_bytes(data)
        quads = {n for n, p in strategy.get_gate_ids() if isinstance(_gate(strategy, n, p), fk.gates.QuadrantGate)}
        theirs = flowkit_memberships(path, fcs)
        for p in pops:
            key = _fj_path(p.name, p.path, quads)
            assert key in theirs, (doc.name, key, sorted(theirs))
            assert np.array_equal(theirs[key], p.membership), (doc.name, key, int(theirs[key].sum()), p.count)
        # the counts shown until FlowJo recalculates are ours
        tree = etree.fromstring(data)
        shown = {el.get("name"): int(el.get("count")) for el in tree.iter("Population", "AndNode", "OrNode", "NotNode")
                 if el.get("count") is not None}
        for p in pops:
            if p.name in shown:
                assert shown[p.name] == p.count
        exported += 1
    assert exported >= 30, (exported, refused)
    assert refused and all(any(k in r for k in NOT_EXPORTABLE) for r in refused), refused


def _gate(strategy, name, path):
    try:
        return strategy.get_gate(name, path)
    except Exception:  # noqa: BLE001 - a quadrant of a quadrant gate
        return None


def _fcs_matrix(sample):
    from gating.preprocess import compensation_for
    comp = compensation_for(sample)
    return comp.matrix.to_flowkit() if comp.matrix is not None and hasattr(comp.matrix, "to_flowkit") else comp.matrix


@pytest.mark.slow
def test_boolean_operands_used_as_complements(tmp_path):
    """FlowJo's boolean nodes cannot complement an operand: helpers beside the gate carry it."""
    d = shared("gatingml2_compliance")
    fcs = d / "data1.fcs"
    sample = read_fcs(fcs).sample
    dim = lambda ch, lo=None, hi=None: fk.Dimension(ch, "uncompensated", None, range_min=lo, range_max=hi)  # noqa: E731
    gs = fk.GatingStrategy()
    gs.add_gate(fk.gates.RectangleGate("cells", [dim("FSC-H", 50)]), ("root",))
    gs.add_gate(fk.gates.RectangleGate("A", [dim("FL1-H", 9.6)]), ("root", "cells"))
    gs.add_gate(fk.gates.RectangleGate("B", [dim("FL2-H", None, 15.4)]), ("root", "cells"))
    gs.add_gate(fk.gates.RectangleGate("C", [dim("SSC-H", 23.6)]), ("root", "cells", "A"))
    ref = lambda name, path, comp: {"ref": name, "path": path, "complement": comp}  # noqa: E731
    cells, a = ("root", "cells"), ("root", "cells", "A")
    cases = {"A_not_B": ("and", [ref("A", cells, False), ref("B", cells, True)]),
             "neither": ("and", [ref("A", cells, True), ref("B", cells, True)]),
             "not_both": ("or", [ref("A", cells, True), ref("B", cells, True)]),
             "C_or_not_B": ("or", [ref("C", a, False), ref("B", cells, True)]),
             "not_A": ("not", [ref("A", cells, False)])}
    for name, (op, refs) in cases.items():
        gs.add_gate(fk.gates.BooleanGate(name, op, refs), cells)
    pops = gate_sample(gs, sample)
    path = tmp_path / "bool.wsp"
    path.write_bytes(workspace_bytes([WspSample(fcs.name, file_uri(fcs), gs, sample.event_count,
                                                {(p.name, p.path): p.count for p in pops})]))
    theirs = flowkit_memberships(path, fcs)
    for p in pops:
        key = "/".join(p.path[1:] + (p.name,))
        assert np.array_equal(theirs[key], p.membership), (key, int(theirs[key].sum()), p.count)
        assert 0 < p.count < sample.event_count, key       # every case selects something, not everything
    helpers = set(theirs) - {"/".join(p.path[1:] + (p.name,)) for p in pops}
    assert helpers == {"cells/not B", "cells/A or B", "cells/A and B"}, helpers
    tree = etree.fromstring(path.read_bytes())
    assert {el.get("annotation") for el in tree.iter("AndNode", "OrNode", "NotNode") if el.get("name") in
            {"not B", "A or B", "A and B"}} == {HELPER_NOTE}


def _shape(tree) -> set[tuple[str, str, frozenset]]:
    """(parent tag, tag, attribute names) of every element, namespaces written by prefix."""
    def prefixed(el, qname: str) -> str:
        q = etree.QName(qname)
        prefix = next((p for p, u in el.nsmap.items() if u == q.namespace), None) if q.namespace else None
        return f"{prefix}:{q.localname}" if prefix else q.localname
    return {(prefixed(el.getparent(), el.getparent().tag), prefixed(el, el.tag),
             frozenset(prefixed(el, a) for a in el.attrib))
            for el in tree.iter() if isinstance(el.tag, str) and el.getparent() is not None}


#: FlowJo structure the real workspaces of ../shared/data happen not to hold (one gate level, no
#: booleans, no matrix, no logicle), as FlowKit's reader expects it.
NOT_IN_THE_SAMPLES = {("Population", "Subpopulations"), ("Subpopulations", "AndNode"), ("Subpopulations", "OrNode"),
                      ("Subpopulations", "NotNode"), ("Sample", "transforms:spilloverMatrix")}


@pytest.mark.slow
def test_written_like_flowjo_writes():
    """Every element cytomnt writes sits where FlowJo 10 puts it, with attributes FlowJo uses, as in
    the real workspaces of ../shared/data."""
    placed, attrs_of = set(), {}
    for w in shared("flowjo_workspaces").rglob("*.wsp"):
        for parent, tag, attrs in _shape(etree.parse(str(w))):
            placed.add((parent, tag))
            attrs_of.setdefault(tag, set()).update(attrs)
    d = shared("gatingml2_compliance")
    fcs = d / "data1.fcs"
    sample = read_fcs(fcs).sample
    strategy = load_strategy(str(d / "gml" / "gml_parent_quadrant_rect_gate.xml"))
    pops = gate_sample(strategy, sample)
    ours = _shape(etree.fromstring(workspace_bytes([WspSample(fcs.name, file_uri(fcs), strategy, sample.event_count,
                                                              {(p.name, p.path): p.count for p in pops})])))
    checked = 0
    for parent, tag, attrs in ours:
        if (parent, tag) in NOT_IN_THE_SAMPLES or parent in {"AndNode", "OrNode", "NotNode", "Dependents"}:
            continue
        assert (parent, tag) in placed, (parent, tag)
        assert attrs <= attrs_of[tag], (tag, sorted(attrs - attrs_of[tag]))
        checked += 1
    assert checked >= 15
