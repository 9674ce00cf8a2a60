"""The order in which a strategy's gates are evaluated: a gate after its parent and after every
gate a boolean gate refers to; ties keep FlowKit's own listing order."""
from __future__ import annotations

import flowkit as fk
import networkx as nx
from flowkit import gates as fk_gates
from flowkit.exceptions import QuadrantReferenceError


def evaluation_order(strategy: fk.GatingStrategy) -> list[tuple[str, tuple[str, ...]]]:
    """Gates (name, parent path) so that a gate comes after its parent and after every gate a
    boolean gate refers to; ties keep FlowKit's own listing order."""
    ids = [(name, tuple(path)) for name, path in strategy.get_gate_ids()]
    rank = {k: i for i, k in enumerate(ids)}
    graph = nx.DiGraph()
    graph.add_nodes_from(ids)
    for name, path in ids:
        if len(path) > 1:
            parent = (path[-1], path[:-1])
            if parent in rank:
                graph.add_edge(parent, (name, path))
        try:
            gate = strategy.get_gate(name, path)
        except QuadrantReferenceError:
            continue
        if isinstance(gate, fk_gates.BooleanGate):
            for ref in gate.gate_refs:
                dep = (ref["ref"], tuple(ref["path"]))
                if dep in rank:
                    graph.add_edge(dep, (name, path))
    return list(nx.lexicographical_topological_sort(graph, key=rank.__getitem__))
