"""One tube from file to table row: read -> classify -> compensate -> gate -> CAR call ->
metrics -> populations and statistics -> its documents (Gating-ML, FlowJo ``<Sample>``, plot).
:func:`cytomnt.sample.pipeline.analyze_tube` runs the steps in order; each step takes what it
uses (a resolved panel, :class:`~cytomnt.sample.metrics.MetricSettings`, a loaded strategy), never
the run's configuration.

May import: ``gating``, ``cytomnt.inputs``, ``cytomnt.errors``, ``cytomnt.ruo``. Never ``run``,
``patients`` or ``exports``: a tube knows nothing of the batch around it.
"""
