"""Generic, panel-agnostic gating on top of FlowKit: data-driven gate finders, strategy
loading (Gating-ML 2.0, FlowJo workspaces), application and Gating-ML export.

Knows nothing about CAR T cells or MNT; ``cytomnt`` builds on it.
"""
from .fcs import FcsReadError, LoadedSample, find_fcs_files, read_fcs

__all__ = ["FcsReadError", "LoadedSample", "find_fcs_files", "read_fcs"]
