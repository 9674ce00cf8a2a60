"""cytomnt: CAR-T phenotyping from FCS files (blood and CSF) for MNT risk research.

Research use only: not a validated clinical decision tool.
"""
__version__ = "0.1.0"

from .panel import Panel  # noqa: E402
from .pipeline import analyze, analyze_sample, make_config  # noqa: E402
from .risk import evaluate as evaluate_risk  # noqa: E402

__all__ = ["Panel", "analyze", "analyze_sample", "evaluate_risk", "make_config", "__version__"]
