"""FlowJo 10 workspace XML pieces: namespaces, a spillover matrix, a channel's transform, the plot
a population opens with. :mod:`gating.formats.wsp` puts them together into samples and workspaces.
"""
from __future__ import annotations

from typing import Sequence

import flowkit as fk
from lxml import etree

GATING = "http://www.isac-net.org/std/Gating-ML/v2.0/gating"
TRANSFORMS = "http://www.isac-net.org/std/Gating-ML/v2.0/transformations"
DATATYPE = "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes"
NSMAP = {"gating": GATING, "transforms": TRANSFORMS, "data-type": DATATYPE}
COMP_PREFIX = "Comp-"
FLOWJO_TRANSFORMS = (fk.transforms.LinearTransform, fk.transforms.LogicleTransform, fk.transforms.AsinhTransform,
                     fk.transforms.WSPBiexTransform, fk.transforms.WSPLogTransform)


def q(ns: str, tag: str) -> str:
    """A namespaced tag or attribute name as lxml writes it."""
    return f"{{{ns}}}{tag}"


def num(v: float) -> str:
    """A coordinate with every bit kept (repr of a float round-trips exactly)."""
    return repr(float(v))


def transform_params(x) -> tuple:
    """What defines a transform (FlowKit keeps lookup tables beside some parameters)."""
    names = {fk.transforms.LinearTransform: ("param_t", "param_a"),
             fk.transforms.LogicleTransform: ("param_t", "param_w", "param_m", "param_a"),
             fk.transforms.AsinhTransform: ("param_t", "param_m", "param_a"),
             fk.transforms.WSPBiexTransform: ("negative", "width", "positive", "max_value"),
             fk.transforms.WSPLogTransform: ("offset", "decades")}.get(type(x), ())
    return (type(x),) + tuple(float(getattr(x, n)) for n in names)


def same_transform(a, b) -> bool:
    return transform_params(a) == transform_params(b)


def graph(pop, axes: Sequence[str]) -> None:
    """The plot FlowJo opens for the population: the gate's own channels on its axes."""
    g = etree.Element("Graph", type="Pseudocolor" if len(axes) > 1 else "Histogram")
    etree.SubElement(g, "Axis", dimension="x", name=axes[0], label="", auto="auto")
    etree.SubElement(g, "Axis", dimension="y", name=axes[1] if len(axes) > 1 else "", label="", auto="auto")
    pop.insert(0, g)


def matrix_element(name: str, matrix):
    m = etree.Element(q(TRANSFORMS, "spilloverMatrix"), spectral="0", prefix=COMP_PREFIX, name=name, suffix="",
                      id=name)
    params = etree.SubElement(m, q(DATATYPE, "parameters"))
    for det in matrix.detectors:
        p = etree.SubElement(params, q(DATATYPE, "parameter"))
        p.set(q(DATATYPE, "name"), det)
        p.set("userProvidedCompInfix", COMP_PREFIX + det)
    for i, det in enumerate(matrix.detectors):
        row = etree.SubElement(m, q(TRANSFORMS, "spillover"))
        row.set(q(DATATYPE, "parameter"), det)
        row.set("userProvidedCompInfix", COMP_PREFIX + det)
        for j, det2 in enumerate(matrix.detectors):
            c = etree.SubElement(row, q(TRANSFORMS, "coefficient"))
            c.set(q(DATATYPE, "parameter"), det2)
            c.set(q(TRANSFORMS, "value"), num(matrix.matrix[i, j]))
    return m


def transform_element(channel: str, xform):
    if isinstance(xform, fk.transforms.LinearTransform):
        el = etree.Element(q(TRANSFORMS, "linear"))
        el.set(q(TRANSFORMS, "minRange"), num(xform.param_a))       # as FlowKit reads it back
        el.set(q(TRANSFORMS, "maxRange"), num(xform.param_t))
    elif isinstance(xform, fk.transforms.LogicleTransform):
        el = etree.Element(q(TRANSFORMS, "logicle"))
        el.set(q(TRANSFORMS, "length"), "256")
        for k, v in (("T", xform.param_t), ("W", xform.param_w), ("M", xform.param_m), ("A", xform.param_a)):
            el.set(q(TRANSFORMS, k), num(v))
    elif isinstance(xform, fk.transforms.WSPBiexTransform):
        el = etree.Element(q(TRANSFORMS, "biex"))
        for k, v in (("length", 256), ("maxRange", xform.max_value), ("neg", xform.negative),
                     ("width", xform.width), ("pos", xform.positive)):
            el.set(q(TRANSFORMS, k), num(v) if k != "length" else "256")
    elif isinstance(xform, fk.transforms.WSPLogTransform):
        el = etree.Element(q(TRANSFORMS, "log"))
        el.set(q(TRANSFORMS, "offset"), num(xform.offset))
        el.set(q(TRANSFORMS, "decades"), num(xform.decades))
    else:                                      # AsinhTransform
        el = etree.Element(q(TRANSFORMS, "fasinh"))
        el.set(q(TRANSFORMS, "length"), "256")
        el.set(q(TRANSFORMS, "maxRange"), num(xform.param_t))
        for k, v in (("T", xform.param_t), ("M", xform.param_m), ("A", xform.param_a)):
            el.set(q(TRANSFORMS, k), num(v))
        el.set(q(TRANSFORMS, "W"), "1")
    etree.SubElement(el, q(DATATYPE, "parameter")).set(q(DATATYPE, "name"), channel)
    return el
