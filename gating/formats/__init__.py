"""Strategies in the formats others write: Gating-ML 2.0 (read, applied, written), FlowJo 10
workspaces (read and written), openCyto gating templates, and XML parsed safely.

May import every other ``gating`` package (``io``, ``evaluator``, ``auto``, ``preprocess``).
"""
