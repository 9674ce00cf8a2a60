"""Data-driven gating: templates (a strategy as data: population, parent, dims, method,
arguments), the methods and cut finders they name, the engine that applies them to one tube,
cuts learned from controls and batches, marker-positive calls net of background, and pre-gate
bias checks. The result is a FlowKit ``GatingStrategy``.

May import: ``gating.io``, ``gating.preprocess``, ``gating.stable``, ``gating.parallel``. Never
``formats`` or ``plot``.
"""
