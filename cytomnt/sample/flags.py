"""What each QC flag of ``qc_flags`` means, in one sentence a lab tech can act on (the report
shows it where a flag appears; the README's "QC flags" table holds the same text)."""
from __future__ import annotations

#: Flag code (or its prefix before ':') -> meaning.
MEANINGS = {
    "LOW_EVENT_COUNT": "fewer than 100 T cells: a percentage of T cells has a CV above 10%",
    "NO_T_CELLS": "no T-cell events",
    "CAR_BELOW_LOD": "fewer than 13 CAR+ events above the expected background (below the assay's limit of detection)",
    "CAR_BELOW_LOQ": "13-21 CAR+ events above background: detected, below the limit of quantification (22)",
    "CAR_NOT_DETECTED": "the 95% interval of CAR+ T cells net of background reaches zero: not clearly above it",
    "CAR_UNCERTAIN": "no usable negative reference (or too few T cells): no CAR number is given; left out of the risk",
    "NOT_DETECTED": "this T-cell subset has no CAR+ events clearly beyond background",
    "UNCERTAIN": "this T-cell subset has no usable negative reference for the CAR count",
    "CONTROL_MISFIT": "the control tube's negatives do not match this subset's (another background or spreading): "
                      "the subset was counted against the tube's own references instead, where they serve",
    "DIM_SMEAR": "this subset's CAR+ count falls as the cut rises (a dim stain): the interval's upper end allows "
                 "for the positives it may hide among the negatives",
    "PREGATE_BIAS": "a pre-gate removes CAR+ T cells 20 points more often than CAR- ones",
    "GATE_SKIPPED": "an optional channel is absent from the file; its gate was skipped",
    "NO_VALLEY": "no density valley where one was expected; the cut is the negative population's tail",
    "EMPTY_PARENT": "too few parent events to place a cut",
    "NO_COMPENSATION": "no spillover matrix in the file and none given: values are uncompensated",
    "SAMPLE_TYPE_INFERRED": "sample type read from keywords or the file name, not from the manifest",
    "DUPLICATE_SAMPLE_ID": "another file had the same id; this one got a hash suffix",
    "FCS_": "the file had a known format defect and was read right anyway",
    "MULTI_DATASET": "the file holds several data sets; the one named was used",
    "QC_FLOW_RATE": "acquisition QC removed time bins with an abnormal flow rate or signal",
    "QC_SATURATED": "acquisition QC removed saturated events (at a channel's maximum)",
    "QC_NO_TIME_COURSE": "the Time channel has no course to check the flow rate against",
    "ACQUISITION_QC_OFF": "acquisition QC was switched off (--no-acquisition-qc)",
    "CAR_T_FROM_SUBSETS": "CAR T cells counted as the CAR CD4 and CAR CD8 gates together (no CAR gate given)",
    "GATE_UNMAPPED": "a population of the user's strategy could not be mapped (--gate-map)",
    "BEADS_WITHOUT_CONSTANTS": "counting beads found but the panel gives no beads per test: no absolute count",
    "NO_LYMPHOCYTES_FOR_ALC": "no lymphocytes to scale the ALC by: no CAR T cells per µL",
    "GATINGML_NOT_WRITTEN": "the gates could not be written as Gating-ML (the counts still stand)",
    "FLOWJO_NOT_WRITTEN": "a gate has no FlowJo equivalent: the sample is not in cytomnt.wsp (the counts still stand)",
}


def meaning(flag: str) -> str:
    """The sentence for a flag ('' for an unknown one): exact code, its prefix before ':', or a
    family prefix such as ``FCS_``."""
    code = flag.split(":", 1)[0]
    if code in MEANINGS:
        return MEANINGS[code]
    return next((text for key, text in MEANINGS.items() if key.endswith("_") and code.startswith(key)), "")
