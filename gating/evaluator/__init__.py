"""The fast, FlowKit-exact gate evaluator: gates in dependency order, each decided over all
events from float32 columns, with FlowKit's own arithmetic for the events near a bound.

May import: ``gating.preprocess``, ``gating.stable``, ``gating.parallel``. Never ``auto``,
``formats`` or ``plot``.
"""
