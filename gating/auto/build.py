"""Build a FlowKit ``GatingStrategy`` gate by gate while tracking each population's events.

Cuts are found on the processed events (see :mod:`gating.preprocess`); each gate is added to
the strategy and evaluated with FlowKit's own ``Gate.apply`` on those events, so the builder's
populations are what ``GatingStrategy.gate_sample`` gives for the exported gates (FlowKit
compensates with LAPACK, the builder with :mod:`gating.stable`: the two agree to ~1e-15).
"""
from __future__ import annotations

import re

import flowkit as fk
import numpy as np
import pandas as pd

from gating.preprocess import Compensation


def xform_id(channel: str) -> str:
    """Transform id for a channel, valid as a Gating-ML xs:ID."""
    return "xf_" + re.sub(r"[^A-Za-z0-9_.-]", "_", channel)


class StrategyBuilder:
    """A gating strategy under construction for one sample."""

    def __init__(self, events: pd.DataFrame, comp: Compensation, transforms: dict[str, object],
                 fluoro_channels: set[str]):
        self.events = events
        self.comp = comp
        self.transforms = dict(transforms)
        self.fluoro = set(fluoro_channels)
        self.strategy = fk.GatingStrategy()
        if comp.matrix is not None:
            self.strategy.add_comp_matrix(comp.ref, comp.matrix.to_flowkit())
        for ch, xf in self.transforms.items():
            self.strategy.add_transform(xform_id(ch), xf)
        n = len(events)
        self._members: dict[str, np.ndarray] = {"root": np.ones(n, dtype=bool)}
        self._paths: dict[str, tuple[str, ...]] = {"root": ("root",)}
        self._gates: dict[str, object] = {}

    def dim(self, channel: str, min: float | None = None, max: float | None = None) -> fk.Dimension:  # noqa: A002
        """A gate dimension with this sample's compensation and the channel's transform."""
        comp = self.comp.ref if channel in self.fluoro else "uncompensated"
        xf = xform_id(channel) if channel in self.transforms else None
        return fk.Dimension(channel, compensation_ref=comp, transformation_ref=xf, range_min=min, range_max=max)

    def values(self, channel: str, population: str = "root") -> np.ndarray:
        """Processed values of a channel for the events of a population."""
        return self.events[channel].to_numpy()[self._members[population]]

    def members(self, population: str) -> np.ndarray:
        return self._members[population]

    def has(self, population: str) -> bool:
        """True when the population exists (gated, or an alias of its parent when skipped)."""
        return population in self._members

    def path(self, population: str) -> tuple[str, ...]:
        """The population's path from 'root' (its own name last)."""
        return self._paths[population]

    def count(self, population: str) -> int:
        return int(self._members[population].sum())

    def add(self, gate, parent: str = "root") -> np.ndarray:
        """Add ``gate`` under ``parent``; return its membership (all events, boolean)."""
        if gate.gate_name in self._members:
            raise ValueError(f"population '{gate.gate_name}' is defined twice")
        path = self._paths[parent]
        self.strategy.add_gate(gate, gate_path=path)
        if isinstance(gate, fk.gates.BooleanGate):
            refs = pd.DataFrame({(r["ref"], "/".join(r["path"])): self._members[r["ref"]] for r in gate.gate_refs})
            mask = np.asarray(gate.apply(refs), dtype=bool) & self._members[parent]
        else:
            mask = np.asarray(gate.apply(self.events), dtype=bool) & self._members[parent]
        self._members[gate.gate_name] = mask
        self._paths[gate.gate_name] = path + (gate.gate_name,)
        self._gates[gate.gate_name] = gate
        return mask

    def free_membership(self, population: str) -> np.ndarray:
        """The population's own gate applied to every event, its parents ignored (an alias of a
        skipped row, or the root, holds every event): where a pre-gate's choice can be judged."""
        gate = self._gates.get(population)
        if gate is None:
            return np.ones(len(self.events), dtype=bool)
        if isinstance(gate, fk.gates.BooleanGate):
            parts = [self.free_membership(r["ref"]) ^ bool(r["complement"]) for r in gate.gate_refs]
            if gate.type == "not":
                return ~parts[0]
            return np.logical_and.reduce(parts) if gate.type == "and" else np.logical_or.reduce(parts)
        return np.asarray(gate.apply(self.events), dtype=bool)

    def rectangle(self, name: str, parent: str, bounds: dict[str, tuple[float | None, float | None]]) -> np.ndarray:
        """Add a range/rectangle gate: ``bounds`` maps channel -> (min, max), either may be None."""
        dims = [self.dim(ch, lo, hi) for ch, (lo, hi) in bounds.items()]
        return self.add(fk.gates.RectangleGate(name, dims), parent)

    def polygon(self, name: str, parent: str, channels: tuple[str, str], vertices) -> np.ndarray:
        dims = [self.dim(ch) for ch in channels]
        return self.add(fk.gates.PolygonGate(name, dims, [list(map(float, v)) for v in vertices]), parent)

    def alias(self, name: str, population: str) -> None:
        """Let ``name`` stand for an existing population when its own gate is skipped."""
        self._members[name] = self._members[population]
        self._paths[name] = self._paths[population]
