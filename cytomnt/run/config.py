"""A run's configuration: everything that decides a sample's numbers, validated before any file
is touched (a bad option is a :class:`ConfigError`, exit code 2, nothing written)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gating.auto.engine import EngineSettings, LearnedCuts

from cytomnt import __version__
from cytomnt.errors import ConfigError
from cytomnt.inputs.manifest import normalise_sample_type, read_manifest
from cytomnt.inputs.panel import Panel, PanelError
from cytomnt.inputs.rulesfile import built_in_rules
from cytomnt.inputs.strategies import StrategyChoice, load_strategy, strategy_kind
from cytomnt.ruo import RUO
from cytomnt.sample.gate import GateSettings
from cytomnt.sample.metrics import MetricSettings
from cytomnt.sample.privacy import IDENTIFYING_KEYWORDS, read_keyword_list
from cytomnt.sample.setup import Identification, SampleSetup



@dataclass
class AnalysisConfig:
    """Everything that decides a sample's numbers (recorded in run.json)."""

    panel: Panel = field(default_factory=Panel.default)
    strategy: str = "auto"
    wsp_group: str | None = None         # a FlowJo workspace strategy: this group's gates for every file
    wsp_sample: str | None = None        # ... or this workspace sample's gates for every file
    gate_map: dict = field(default_factory=dict)
    auto: EngineSettings = field(default_factory=EngineSettings)
    metrics: MetricSettings = field(default_factory=MetricSettings)
    spillover: str | None = None
    sample_type: str | None = None
    manifest: dict = field(default_factory=dict)
    learned: LearnedCuts = field(default_factory=LearnedCuts)   # control-tube, batch or --learned-cuts cuts
    control_file: str | None = None
    controls: dict = field(default_factory=dict)    # manifest control tube -> its LearnedCuts
    plots: bool = False                 # one PNG of the gates per sample (OUT/plots/<sample_id>.png)
    deidentify: bool = False            # no file names, paths or identifying keyword values in any output
    acquisition_qc: bool = True         # the template's acquisition-QC rows (flow rate, saturation)
    xlsx: bool = False                  # OUT/statistics.xlsx as well (openpyxl; costs a tenth of a second a run)
    identifying_keywords: tuple = field(default_factory=lambda: IDENTIFYING_KEYWORDS)
    keywords: tuple = ()                # FCS keywords copied into samples.csv, one column each ('$DATE', '$CYT')

    @property
    def strategy_choice(self) -> StrategyChoice:
        return StrategyChoice(self.strategy, self.wsp_group, self.wsp_sample, self.acquisition_qc)

    @property
    def uses_template(self) -> bool:
        """True when gates are found from the data (auto or a template), not given by the user."""
        return self.strategy_choice.uses_template

    @property
    def gating(self) -> GateSettings:
        return GateSettings(self.panel, self.strategy == "auto", self.auto, self.gate_map)

    def sample_setup(self) -> SampleSetup:
        """The configuration unpacked for the per-tube steps (once per run, sent to every worker)."""
        return SampleSetup(self.strategy_choice, self.gating, self.metrics,
                           Identification(self.manifest, self.sample_type, self.deidentify,
                                          tuple(self.identifying_keywords), tuple(self.keywords)),
                           self.learned, self.controls, self.control_file, self.spillover, self.plots,
                           self.strategy_label)

    @property
    def strategy_label(self) -> str:
        extra = "+control" if self.control_file or self.controls else ""
        extra += "+batch" if any(v.startswith("batch") for v in self.learned.source.values()) else ""
        kind = strategy_kind(self.strategy)
        if kind == "auto":
            return "auto" + extra
        label = {"template": "template", "opencyto": "csv", "gatingml": "xml", "workspace": "wsp"}[kind]
        if Path(self.strategy).suffix.lower() in (".gml", ".gatingml"):
            label = Path(self.strategy).suffix.lstrip(".").lower()
        chosen = f" group {self.wsp_group}" if self.wsp_group else f" sample {self.wsp_sample}" if self.wsp_sample else ""
        return f"{label}:{Path(self.strategy).name}{chosen}" + extra


def run_record(cfg: AnalysisConfig) -> dict:
    """The configuration and software versions behind a run (run.json; part of the store key)."""
    import flowio
    import flowkit
    return {
        "cytomnt": __version__, "flowkit": flowkit.__version__, "flowio": flowio.__version__,
        "strategy": cfg.strategy, "gate_map": cfg.gate_map,
        **({"wsp_group": cfg.wsp_group} if cfg.wsp_group else {}),
        **({"wsp_sample": cfg.wsp_sample} if cfg.wsp_sample else {}),
        "panel": {"source": cfg.panel.source, "roles": {k: list(v) for k, v in cfg.panel.roles.items()}},
        "auto": vars(cfg.auto), "metrics": vars(cfg.metrics), "spillover": cfg.spillover,
        "sample_type": cfg.sample_type,
        "acquisition_qc": cfg.acquisition_qc,
        **({"keywords": list(cfg.keywords)} if cfg.keywords else {}),
        "negative_control": cfg.control_file,
        "learned_cuts": {"cuts": cfg.learned.cuts, "source": cfg.learned.source, "reference": cfg.learned.reference},
        "manifest_controls": {name: {"cuts": lc.cuts, "reference": lc.reference} for name, lc in sorted(cfg.controls.items())},
        "research_use_only": RUO,
        "rules_version": _rules_version(),     # the flow-call thresholds come from this rules file
    }


def _rules_version() -> str:
    return str(built_in_rules()["version"])


def make_config(panel=None, strategy="auto", gate_map=None, manifest=None, sample_type=None,
                negative_control=None, spillover=None, auto: EngineSettings | None = None,
                metrics: MetricSettings | None = None, learned_cuts=None, plots: bool = False,
                deidentify: bool = False, identifying_keywords=None, acquisition_qc: bool = True,
                xlsx: bool = False, wsp_group: str | None = None, wsp_sample: str | None = None,
                keywords=None) -> AnalysisConfig:
    """Validate options and build the run's configuration (raises :class:`ConfigError`)."""
    from cytomnt.inputs.gatemap import parse_gate_map
    try:
        p = panel if isinstance(panel, Panel) else (Panel.from_yaml(panel) if panel else Panel.default())
    except PanelError as exc:
        raise ConfigError(str(exc)) from exc
    cfg = AnalysisConfig(panel=p, strategy=str(strategy or "auto"), auto=auto or EngineSettings(),
                         metrics=metrics or default_metric_settings(),
                         spillover=str(spillover) if spillover else None,
                         plots=plots, deidentify=deidentify, acquisition_qc=acquisition_qc, xlsx=xlsx,
                         wsp_group=wsp_group or None, wsp_sample=wsp_sample or None)
    if identifying_keywords:
        try:
            cfg.identifying_keywords = read_keyword_list(identifying_keywords)
        except OSError as exc:
            raise ConfigError(f"identifying keywords file {identifying_keywords}: cannot be read ({exc.strerror})") from exc
    cfg.keywords = _keyword_columns(keywords, cfg)
    try:
        cfg.gate_map = parse_gate_map(gate_map)
        if sample_type:
            cfg.sample_type = normalise_sample_type(sample_type, "--sample-type")
        if manifest is not None:
            cfg.manifest = manifest if isinstance(manifest, dict) else read_manifest(manifest)
        load_strategy(cfg.strategy, wsp_group=cfg.wsp_group, wsp_sample=cfg.wsp_sample)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if spillover and not Path(spillover).exists():
        raise ConfigError(f"spillover file {spillover}: not found")
    if learned_cuts is not None:
        try:
            cfg.learned = learned_cuts if isinstance(learned_cuts, LearnedCuts) else LearnedCuts.from_yaml(learned_cuts)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"learned cuts {learned_cuts}: cannot be read ({exc})") from exc
    manifest_controls = sorted({e.control for e in cfg.manifest.values() if e.control})
    if manifest_controls:
        from cytomnt.run.learning import control_cuts_from
        if not cfg.uses_template:
            raise ConfigError("the manifest's control column sets cuts of the auto strategy or a template; it cannot "
                              f"be used with --strategy {cfg.strategy}")
        cfg.controls = {c: control_cuts_from(c, cfg.gating, cfg.spillover, cfg.strategy_choice) for c in manifest_controls}
    if negative_control is not None:
        from cytomnt.run.learning import control_cuts_from
        if not cfg.uses_template:
            raise ConfigError("--negative-control sets cuts of the auto strategy or a template; it cannot be used "
                              f"with --strategy {cfg.strategy}")
        cfg.learned = cfg.learned.merge(control_cuts_from(negative_control, cfg.gating, cfg.spillover,
                                                            cfg.strategy_choice))
        cfg.control_file = _control_label(negative_control, deidentify)
    return cfg


def default_metric_settings() -> MetricSettings:
    """Metric settings with the built-in rules file's flow-call thresholds (one source of truth)."""
    return MetricSettings.from_rules(dict(built_in_rules().get("flow_calls") or {}))


def _control_label(control, deidentify: bool) -> str:
    """How run.json names the control tube (a hash when de-identifying: its name may identify)."""
    from cytomnt.inputs.files import sha256_file
    if hasattr(control, "get_events"):
        return "sha256:sample" if deidentify else str(control.id)
    return "sha256:" + sha256_file(Path(control))[:16] if deidentify else str(control)


def _keyword_columns(keywords, cfg: AnalysisConfig) -> tuple[str, ...]:
    """``--keywords '$DATE,$CYT,TUBE NAME'`` (or a list) as column names; identifying ones are
    refused with --deidentify (their values are what de-identification keeps out)."""
    from cytomnt.sample.privacy import normalise
    if not keywords:
        return ()
    names = [k.strip() for k in (keywords.split(",") if isinstance(keywords, str) else keywords) if k.strip()]
    from cytomnt.sample.results import SAMPLE_COLUMNS
    clash = [k for k in names if k in SAMPLE_COLUMNS]
    if clash:
        raise ConfigError(f"--keywords {', '.join(clash)}: already a samples.csv column; name the FCS keyword "
                          f"as it is in the file (e.g. '$DATE', '$CYT', 'TUBE NAME')")
    if cfg.deidentify:
        secret = {normalise(k) for k in cfg.identifying_keywords}
        bad = [k for k in names if normalise(k) in secret]
        if bad:
            raise ConfigError(f"--keywords {', '.join(bad)}: identifying keyword(s), left out of every output "
                              f"with --deidentify")
    return tuple(dict.fromkeys(names))

