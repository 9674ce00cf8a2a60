"""cytomnt: CAR-T phenotyping from FCS files (blood and CSF) for MNT risk research.

Research use only: not a validated clinical decision tool.

Packages, lowest first: ``inputs`` -> ``sample`` -> ``run`` -> ``patients`` -> ``exports``; each
may import those before it (and ``gating``); the top-level modules (command line, demo,
synthetic data) may import any. ``errors`` and ``ruo`` are imported by all.

The public names are imported on first use, so ``import cytomnt`` (and ``cytomnt --help``)
does not load FlowKit and the plotting stack.
"""
__version__ = "0.3.0"

_PUBLIC = {
    "Panel": ("cytomnt.inputs.panel", "Panel"),
    "analyze": ("cytomnt.run.batch", "analyze"),
    "analyze_sample": ("cytomnt.run.batch", "analyze_sample"),
    "make_config": ("cytomnt.run.config", "make_config"),
    "evaluate_risk": ("cytomnt.patients.risk", "evaluate"),
    "build_report": ("cytomnt.exports.report", "build_report"),
    "export_workspace": ("cytomnt.exports.flowjo", "export_workspace"),
    "to_anndata": ("cytomnt.exports.cells", "to_anndata"),
    "to_fcs": ("cytomnt.exports.cells", "to_fcs"),
}
__all__ = [*_PUBLIC, "__version__"]


def __dir__():
    return sorted(__all__)


def __getattr__(name):
    if name in _PUBLIC:
        import importlib
        module, attr = _PUBLIC[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cytomnt' has no attribute {name!r}")
