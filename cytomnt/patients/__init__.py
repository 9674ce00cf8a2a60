"""Patients over time: clinical inputs and labs, ALC kinetics, the MNT risk evaluator (``risk``)
and cohort statistics. Reads the per-sample results (a samples.csv or a run's store).

May import: ``gating``, ``cytomnt.inputs``, ``cytomnt.sample``, ``cytomnt.run`` (the results
store), ``cytomnt.errors``, ``cytomnt.ruo``. Never ``exports``.
"""

#: Derived column -> what it is (README and ``--help``): the
#: per-patient columns :mod:`cytomnt.patients.groups` derives when a cohort table lacks them.
#: Here, not there, so ``--help`` names them without loading scipy and pandas.
DERIVED = {
    "bridging_response": "IMWG response to bridging therapy (clinical.csv)",
    "preemptive_dexamethasone": "yes/no: a preemptive dexamethasone course in treatments.csv",
    "car_predominance_at_cmax": "CAR CD4:CD8 call of the blood sample at CAR T-cell Cmax",
    "car_pct_of_alc_at_cmax": "CAR T cells as % of the ALC at Cmax",
    "car_cmax_per_ul": "CAR T-cell Cmax (cells/uL)",
    "car_auc_0_28": "CAR T-cell AUC days 0-28 (cells/uL x days)",
    "car_cd4_auc_0_28": "CAR CD4 T-cell AUC days 0-28",
    "car_cd8_auc_0_28": "CAR CD8 T-cell AUC days 0-28",
}
