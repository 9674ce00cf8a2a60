"""Patients over time: clinical inputs and labs, ALC kinetics, the MNT risk evaluator (``risk``)
and cohort statistics. Reads the per-sample results (a samples.csv or a run's store).

May import: ``gating``, ``cytomnt.inputs``, ``cytomnt.sample``, ``cytomnt.run`` (the results
store), ``cytomnt.errors``, ``cytomnt.ruo``. Never ``exports``.
"""
