"""Generic, panel-agnostic gating on top of FlowKit: data-driven gate finders, strategy
loading (Gating-ML 2.0, FlowJo workspaces), application and Gating-ML export.

Knows nothing about CAR T cells or MNT and may import nothing of ``cytomnt``, which builds on it.
Packages, lowest first: ``io`` -> ``evaluator`` -> ``auto`` -> ``formats``; the top-level
``stable``, ``parallel`` and ``preprocess`` are below them all, ``plot`` above. Names below are loaded on
first use (importing ``gating.io.inputs`` or ``gating.parallel`` does not load FlowKit).
"""
from __future__ import annotations

import importlib

__all__ = ["FcsReadError", "LoadedSample", "find_fcs_files", "read_fcs"]
_HOME = {"FcsReadError": "io.fcs", "LoadedSample": "io.fcs", "read_fcs": "io.fcs", "find_fcs_files": "io.inputs"}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module 'gating' has no attribute {name!r}")
