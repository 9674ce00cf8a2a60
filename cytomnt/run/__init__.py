"""Many tubes: the run's configuration (built and unpacked once, here), cuts learned before the
per-sample work, the batch runner and its executors (local pool, Dask), the resumable results
store, the run's files, progress, the console summary, what a re-run changed, and a reviewed
FlowJo workspace brought back.

May import: ``gating``, ``cytomnt.inputs``, ``cytomnt.sample``, ``cytomnt.errors``, ``cytomnt.ruo``.
Never ``patients`` or ``exports``.
"""
