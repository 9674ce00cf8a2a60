"""Loading a gating strategy named by ``--strategy``: the built-in template, a template .yaml,
an openCyto gating template .csv, a Gating-ML .xml or a FlowJo .wsp.

Loaded strategies are cached by the file's path *and content*, so a template edited between
two runs in one process is read again (and never stored under the new configuration's hash).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from cytomnt.errors import ConfigError
from cytomnt.inputs.panel import ROLES

if TYPE_CHECKING:                   # loaded with the template module, on first use
    from gating.auto.template import Template

STRATEGY_KINDS = ("auto", "template .yaml", "openCyto template .csv", "Gating-ML 2.0 .xml", "FlowJo 10 .wsp")
_CACHE: dict[tuple[str, str], object] = {}
BUILT_IN_TEMPLATE = "data/car_t_template.yaml"     # the CAR-T hierarchy (``--strategy auto``)


def strategy_kind(spec: str) -> str:
    """'auto', 'template', 'opencyto', 'gatingml' or 'workspace' (from the file extension)."""
    if spec == "auto":
        return "auto"
    suffix = Path(spec).suffix.lower()
    kinds = {".yaml": "template", ".yml": "template", ".csv": "opencyto", ".xml": "gatingml", ".gml": "gatingml",
             ".gatingml": "gatingml", ".wsp": "workspace"}
    if suffix not in kinds:
        what = "is a folder, not a strategy file" if Path(spec).is_dir() else \
            f"unknown kind '{suffix}'" if suffix else "has no extension to tell its kind"
        raise ConfigError(f"strategy {spec}: {what}; expected {', '.join(STRATEGY_KINDS)}")
    return kinds[suffix]


def strategy_bytes(spec: str) -> bytes:
    """The content behind a strategy: the built-in template's text for 'auto', else the file
    (plus an openCyto template's scales file), so a changed file gives a new configuration hash."""
    if spec == "auto":
        return resources.files("cytomnt").joinpath(BUILT_IN_TEMPLATE).read_bytes()
    p = Path(spec)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"strategy {spec}: file not found (use {', '.join(STRATEGY_KINDS)})") from None
    except OSError as exc:
        raise ConfigError(f"strategy {spec}: cannot be read ({exc.strerror})") from exc
    if strategy_kind(spec) == "opencyto" and scales_path(p).exists():
        data += b"\0" + scales_path(p).read_bytes()
    return data


def scales_path(csv_path: Path) -> Path:
    """Where an openCyto template's channel scales live: ``<name>.scales.yaml`` beside it."""
    return csv_path.with_name(csv_path.stem + ".scales.yaml")


#: Template rows of the acquisition QC (``--no-acquisition-qc`` leaves them out).
ACQUISITION_QC_ROWS = ("flow_stable", "acquired")


@dataclass(frozen=True)
class StrategyChoice:
    """The strategy a run applies: ``--strategy``, for a FlowJo workspace the group or sample whose
    gates every file gets, and whether a template keeps its acquisition-QC rows."""

    spec: str = "auto"
    wsp_group: str | None = None
    wsp_sample: str | None = None
    acquisition_qc: bool = True

    @property
    def kind(self) -> str:
        return strategy_kind(self.spec)

    @property
    def uses_template(self) -> bool:
        """True when gates are found from the data (auto or a template), not given by the user."""
        return self.kind in ("auto", "template")

    def load(self):
        """The loaded strategy as the run applies it (a template without its QC rows when switched off)."""
        src = load_strategy(self.spec, wsp_group=self.wsp_group, wsp_sample=self.wsp_sample)
        if not self.acquisition_qc and hasattr(src, "without"):
            return src.without(ACQUISITION_QC_ROWS)
        return src


@lru_cache(maxsize=1)
def default_template() -> "Template":
    """The built-in CAR-T template (parsed once per process)."""
    from gating.auto.template import load_template
    res = resources.files("cytomnt").joinpath(BUILT_IN_TEMPLATE)
    return load_template("car_t_template.yaml (built-in)", roles=ROLES, text=res.read_text())


def read_template(path: str | Path) -> "Template":
    """A user's template; plain dims must be panel roles."""
    from gating.auto.template import load_template
    return load_template(path, roles=ROLES)


def load_strategy(spec: str, wsp_group: str | None = None, wsp_sample: str | None = None):
    """'auto' or a template .yaml -> a ``gating.auto.template.Template``; a Gating-ML .xml, an
    openCyto .csv -> a FlowKit ``GatingStrategy``; a FlowJo .wsp -> ``WorkspaceStrategies``
    (every file gets the gates of workspace group ``wsp_group`` or sample ``wsp_sample`` if given,
    else those of the workspace sample of its name)."""
    kind = strategy_kind(spec)
    if (wsp_group or wsp_sample) and kind != "workspace":
        raise ConfigError(f"--wsp-group and --wsp-sample choose gates in a FlowJo workspace; strategy {spec} is not a .wsp")
    if kind == "auto":
        return default_template()
    key = (str(Path(spec).resolve()), hashlib.sha256(strategy_bytes(spec)).hexdigest(), wsp_group, wsp_sample)
    if key not in _CACHE:
        _CACHE[key] = _read(Path(spec), kind, wsp_group, wsp_sample)
    return _CACHE[key]


def _read(p: Path, kind: str, wsp_group: str | None = None, wsp_sample: str | None = None):
    from gating.formats.strategy import StrategyError, WorkspaceStrategies, read_gatingml
    from gating.auto.template import TemplateError
    try:
        if kind == "template":
            return read_template(p)
        if kind == "workspace":
            return WorkspaceStrategies(p, group=wsp_group, sample=wsp_sample)
        if kind == "opencyto":
            return _read_opencyto(p)
        return read_gatingml(p)
    except (StrategyError, TemplateError) as exc:
        raise ConfigError(str(exc)) from exc


def _read_opencyto(p: Path):
    from gating.formats.opencyto import read_opencyto_template, read_scales
    sp = scales_path(p)
    if not sp.exists():
        raise ConfigError(
            f"strategy {p}: an openCyto template's gate coordinates are on the scale the expert drew them; "
            f"say which scale in {sp} (e.g. 'default: {{transform: logicle, T: 262143, M: 4.5, A: 0, W: 0.5, "
            f"divide_by: 4.5}}' and per channel 'channels: {{7-AAD-A: {{W: 0.915}}, FSC-A: {{transform: linear}}}}')")
    return read_opencyto_template(p, read_scales(sp))
