"""The MNT risk evaluator: factors from a versioned rules file, evaluated as of a date.

Research use only: it states evidence and its limits and is not a validated clinical tool.
May import what ``cytomnt.patients`` may (its siblings included); nothing imports it but the
patients' other modules, the exports and the command line.
"""
from cytomnt.patients.risk.assess import FactorResult, RiskAssessment, Timeline, assess, evaluate, literature_performance, timeline
from cytomnt.patients.risk import kinds  # noqa: F401,E402 - registers the built-in factor kinds
from cytomnt.patients.risk.factors import FactorContext, kind
from cytomnt.patients.risk.render import render_text, render_timeline
from cytomnt.patients.risk.rules import Rules, RulesError

__all__ = ["FactorContext", "FactorResult", "RiskAssessment", "Rules", "RulesError", "Timeline", "assess", "evaluate", "kind",
           "literature_performance", "render_text", "render_timeline", "timeline"]
