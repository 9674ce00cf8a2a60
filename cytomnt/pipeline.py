"""FCS files in, CAR-T phenotype table out: the per-sample pipeline and the batch loop.

``analyze`` is the Python face of ``cytomnt analyze``: read -> compensate -> transform ->
gate (auto, Gating-ML or FlowJo) -> metrics, one row per file. A file that cannot be read
or gated gets ``status=error`` with a specific message; the rest of the batch runs.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import flowkit as fk
import numpy as np
import pandas as pd

from gating import FcsReadError, find_fcs_files, read_fcs
from gating.files import atomic_write
from gating.preprocess import Compensation, CompensationError, compensation_for
from gating.strategy import (Population, StrategyError, WorkspaceStrategies, gate_sample, gatingml_bytes,
                             populations_frame, read_gatingml)

from . import __version__
from gating.engine import EngineSettings, GatingError, LearnedCuts
from gating.template import Template, TemplateError

from .autogate import POPULATIONS, auto_gate, batch_cuts, control_cuts, default_template, read_template
from .gatemap import counts_from, parse_gate_map
from .manifest import ManifestEntry, infer_sample_type, normalise_sample_type, read_manifest
from .metrics import Counts, MetricSettings, phenotype
from .panel import Panel, PanelError, ResolvedPanel, channels_of
from .privacy import IDENTIFYING_KEYWORDS, identifying_values, path_secrets, pseudonym, read_keyword_list, scrub

#: samples.csv columns, in order.
SAMPLE_COLUMNS = (
    "sample_id", "file", "sha256", "patient_id", "collection_date", "sample_type", "sample_type_source",
    "status", "error", "events", "singlets", "live", "lymphocytes", "t_cells", "t_cd4", "t_cd8",
    "t_cd4_cd8_ratio", "car_t", "car_cd4", "car_cd8", "car_pct_of_t", "car_pct_of_t_ci_low",
    "car_pct_of_t_ci_high", "car_cd4_cd8_ratio", "car_predominance", "carneg_cd4", "carneg_cd8",
    "carneg_cd4_cd8_ratio", "car_cd4_enrichment", "beads", "alc_k_per_ul", "car_t_per_ul",
    "car_t_per_ul_source", "qc_flags", "compensation", "transform", "strategy", "panel",
)
COUNT_COLUMNS = ("events", "singlets", "live", "lymphocytes", "t_cells", "t_cd4", "t_cd8", "car_t",
                 "car_cd4", "car_cd8", "beads", "carneg_cd4", "carneg_cd8")

#: Exit codes of ``cytomnt analyze`` (documented in the README).
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


class ConfigError(ValueError):
    """The run cannot start: a bad panel, strategy, manifest or control file."""


@dataclass
class AnalysisConfig:
    """Everything that decides a sample's numbers (recorded in run.json)."""

    panel: Panel = field(default_factory=Panel.default)
    strategy: str = "auto"
    gate_map: dict = field(default_factory=dict)
    auto: EngineSettings = field(default_factory=EngineSettings)
    metrics: MetricSettings = field(default_factory=MetricSettings)
    spillover: str | None = None
    sample_type: str | None = None
    manifest: dict = field(default_factory=dict)
    learned: LearnedCuts = field(default_factory=LearnedCuts)   # control-tube, batch or --learned-cuts cuts
    control_file: str | None = None
    plots: bool = False                 # one PNG of the gates per sample (OUT/plots/<sample_id>.png)
    deidentify: bool = False            # no file names, paths or identifying keyword values in any output
    identifying_keywords: tuple = field(default_factory=lambda: IDENTIFYING_KEYWORDS)

    @property
    def strategy_label(self) -> str:
        extra = "+control" if self.control_file else ""
        extra += "+batch" if any(v.startswith("batch") for v in self.learned.source.values()) else ""
        if self.strategy == "auto":
            return "auto" + extra
        kind = Path(self.strategy).suffix.lstrip('.').lower()
        kind = "template" if kind in ("yaml", "yml") else kind
        return f"{kind}:{Path(self.strategy).name}" + extra


@dataclass
class SampleResult:
    """One sample's row for samples.csv, its populations, and its gates as Gating-ML."""

    row: dict
    populations: pd.DataFrame
    gatingml: bytes | None = None
    plot_png: bytes | None = None
    statistics: pd.DataFrame = field(default_factory=pd.DataFrame)


_STRATEGY_CACHE: dict[str, object] = {}


def load_strategy(spec: str):
    """'auto' or a template .yaml -> a :class:`Template`; a Gating-ML .xml or FlowJo .wsp -> the
    object that gives each file's FlowKit strategy."""
    if spec == "auto":
        return default_template()
    if spec in _STRATEGY_CACHE:
        return _STRATEGY_CACHE[spec]
    p = Path(spec)
    if not p.exists():
        raise ConfigError(f"strategy {spec}: file not found (use 'auto', a Gating-ML .xml or a FlowJo .wsp)")
    if p.suffix.lower() in (".yaml", ".yml"):
        obj = read_template(p)
    elif p.suffix.lower() == ".wsp":
        obj = WorkspaceStrategies(p)
    elif p.suffix.lower() in (".xml", ".gml", ".gatingml"):
        obj = read_gatingml(p)
    else:
        raise ConfigError(f"strategy {spec}: unknown kind '{p.suffix}'; expected 'auto', a template .yaml, "
                          f".xml (Gating-ML 2.0) or .wsp (FlowJo 10)")
    _STRATEGY_CACHE[spec] = obj
    return obj


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: Percentiles behind FlowJo's robust CV: rCV = 100 x (P84.13 - P15.87) / 2 / median.
RCV_LOW, RCV_HIGH = 15.87, 84.13


def _statistics(sample: fk.Sample, comp: Compensation, pops: list[Population],
                rp: ResolvedPanel) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per population and fluorescence channel: median, mean and robust CV of compensated values.

    Returns the wide median table (``median_<role or $PnN>`` columns of populations.csv) and the
    long FlowJo-style statistics table. Compensated with the inverse matrix (within ~1e-12 of
    FlowKit's solve) and kept as float32, channels contiguous (7 significant digits), so each
    population is one gather and one selection pass for all its percentiles.
    """
    raw = sample.get_events(source="raw")
    fluoro = list(sample.fluoro_indices)
    by_channel = np.ascontiguousarray(raw[:, fluoro].T, dtype=np.float32)
    if comp.matrix is not None:
        det = [sample.get_channel_index(d) for d in comp.matrix.detectors]
        pos = [fluoro.index(d) for d in det]
        inv = np.linalg.inv(np.asarray(comp.matrix.matrix, dtype=float)).astype(np.float32)
        by_channel[pos] = inv.T @ by_channel[pos]
    role_of = {ch.pnn: role for role, ch in rp.channels.items()}
    labels = [role_of.get(sample.pnn_labels[i], sample.pnn_labels[i]) for i in fluoro]
    medians, long_rows = [], []
    for p in pops:
        st = _row_stats(by_channel[:, np.flatnonzero(p.membership)])
        medians.append(st["median"])
        pct_parent = 100.0 * p.count / p.parent_count if p.parent_count else np.nan
        pct_total = 100.0 * p.count / sample.event_count if sample.event_count else np.nan
        for j, i in enumerate(fluoro):
            long_rows.append((p.name, p.parent, p.count, pct_parent, pct_total, sample.pnn_labels[i],
                              sample.pns_labels[i] or "", labels[j], st["median"][j], st["mean"][j], st["rcv"][j]))
    wide = pd.DataFrame(np.array(medians).reshape(len(pops), len(fluoro)), columns=[f"median_{x}" for x in labels])
    long = pd.DataFrame(long_rows, columns=["population", "parent", "count", "pct_parent", "pct_total", "channel",
                                            "marker", "role", "median", "mean", "rcv_pct"])
    return wide, long


def _row_stats(x: np.ndarray) -> dict:
    """Median (mean of the two middle values when even), mean and robust CV of each row, from one
    selection pass (nearest-rank percentiles for the rCV)."""
    nrow, n = x.shape
    if n == 0:
        nan = np.full(nrow, np.nan)
        return {"median": nan, "mean": nan, "rcv": nan}
    k = n // 2
    lo = min(max(int(np.ceil(RCV_LOW / 100 * n)) - 1, 0), n - 1)
    hi = min(max(int(np.ceil(RCV_HIGH / 100 * n)) - 1, 0), n - 1)
    part = np.partition(x, sorted({lo, k, hi}), axis=1)
    med = part[:, k].astype(float)
    if n % 2 == 0:
        med = (part[:, :k].max(axis=1).astype(float) + med) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rcv = np.where(med != 0, 100.0 * (part[:, hi].astype(float) - part[:, lo].astype(float)) / 2.0 / np.abs(med),
                       np.nan)
    return {"median": med, "mean": x.mean(axis=1, dtype=np.float64), "rcv": rcv}


def _auto_populations(g) -> list[Population]:
    b = g.builder
    pops = []
    for gate_name, gate_path in g.strategy.get_gate_ids():
        parent = gate_path[-1]
        pops.append(Population(gate_name, tuple(gate_path), b.count(gate_name),
                               b.count(parent) if parent != "root" else len(b.events), b.members(gate_name)))
    return pops


def _sample_type(entry: ManifestEntry | None, cfg: AnalysisConfig, metadata: dict, file: str) -> tuple[str, str]:
    if entry is not None and entry.sample_type:
        return entry.sample_type, "manifest"
    if cfg.sample_type:
        return cfg.sample_type, "option"
    inferred = infer_sample_type(metadata, file)
    return (inferred, "inferred") if inferred else ("unknown", "unknown")


def analyze_sample(item, cfg: AnalysisConfig, sha256: str | None = None) -> SampleResult:
    """Analyse one file (a path) or one FlowKit ``Sample``; never raises for a bad file.

    ``sha256``: the file's hash when the caller has it already (the batch runner does).
    """
    if isinstance(item, fk.Sample):
        path, name = None, str(item.id)
    else:
        path = Path(item)
        name = path.name
    entry = cfg.manifest.get(name) or (cfg.manifest.get(str(path)) if path else None)
    sid = entry.sample_id if entry else (Path(name).stem if path else name)
    secrets: list[str] = []
    if cfg.deidentify:
        # the file name and path may carry the patient's name: the id comes from the manifest or a hash
        secrets = path_secrets(path) if path is not None else [name]
        if path is not None and not sha256:
            sha256 = sha256_file(path) if path.exists() else hashlib.sha256(str(path).encode()).hexdigest()
        if entry is None:
            sid = pseudonym(sha256 or hashlib.sha256(np.ascontiguousarray(item.get_events(source="raw")).tobytes()).hexdigest())
    result = _analyze(item, path, name, entry, sid, cfg, sha256, secrets)
    if cfg.deidentify:
        result.row["file"] = ""
        result.row["error"] = scrub(result.row["error"] or "", secrets)
    result.row["error"] = printable(result.row["error"] or "")
    return result


def printable(text: str) -> str:
    """Control characters (from a corrupt file's bytes) escaped, so logs, CSV and xlsx stay valid."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _analyze(item, path: Path | None, name: str, entry, sid: str, cfg: AnalysisConfig, sha256: str | None,
             secrets: list[str]) -> SampleResult:
    row: dict = {c: None for c in SAMPLE_COLUMNS}
    row.update(sample_id=sid, file=str(path) if path else "", status="ok", error="", strategy=cfg.strategy_label,
               panel=cfg.panel.source, patient_id=entry.patient_id if entry else "",
               collection_date=entry.collection_date if entry else "",
               alc_k_per_ul=entry.alc_k_per_ul if entry else None)
    flags: list[str] = []
    try:
        if path is not None:
            row["sha256"] = sha256 or (sha256_file(path) if path.exists() else "")
            loaded = read_fcs(path, sid)
            sample, flags = loaded.sample, list(loaded.notes)
        else:
            sample = item
            row["sha256"] = hashlib.sha256(np.ascontiguousarray(sample.get_events(source="raw")).tobytes()).hexdigest()
        if cfg.deidentify:
            secrets += identifying_values(sample.get_metadata(), cfg.identifying_keywords)
        stype, ssrc = _sample_type(entry, cfg, sample.get_metadata(), name)
        row["sample_type"], row["sample_type_source"] = stype, ssrc
        if ssrc == "inferred":
            flags.append("SAMPLE_TYPE_INFERRED")
        row["events"] = int(sample.event_count)
        comp = compensation_for(sample, cfg.spillover, name)
        row["compensation"] = comp.describe()
        if comp.matrix is None:
            flags.append("NO_COMPENSATION")
        strategy_src = load_strategy(cfg.strategy)
        if isinstance(strategy_src, Template):
            rp = cfg.panel.resolve(channels_of(sample, cfg.panel), name, strict=cfg.strategy == "auto")
            g = auto_gate(sample, rp, comp, cfg.auto, cfg.learned, strategy_src)
            flags += [f"GATE_SKIPPED:{d}" for p, dims in g.skipped.items() for d in dims if p != "beads"]
            flags += g.flags
            pops = _auto_populations(g)
            strategy = g.strategy
            members = g.builder._members
            counts = {k: (g.builder.count(k) if k in members and k not in g.skipped else None)
                      for k in POPULATIONS}
            counts["events"] = int(sample.event_count)
            row["transform"] = g.transform_text
        else:
            rp = cfg.panel.resolve(channels_of(sample, cfg.panel), name, strict=False)
            strategy = strategy_src.for_file(name) if isinstance(strategy_src, WorkspaceStrategies) else strategy_src
            pops = gate_sample(strategy, sample)
            counts, mflags = counts_from(pops, cfg.gate_map, int(sample.event_count), name)
            flags += mflags
            row["transform"] = "; ".join(sorted({type(x).__name__ for x in strategy.transformations.values()})) or "none"
        row.update({k: counts.get(k) for k in ("events", "singlets", "live", "lymphocytes", "t_cells", "t_cd4",
                                                "t_cd8", "car_t", "car_cd4", "car_cd8", "beads")})
        metrics, mflags = phenotype(Counts(**{k: counts.get(k) for k in Counts.__dataclass_fields__}), cfg.metrics,
                                    alc_k_per_ul=row["alc_k_per_ul"], beads_per_test=cfg.panel.beads_per_test,
                                    test_volume_ul=cfg.panel.test_volume_ul)
        row.update(metrics)
        flags += mflags
        popdf = populations_frame(pops, sid, int(sample.event_count))
        stats = pd.DataFrame()
        if len(pops):
            wide, stats = _statistics(sample, comp, pops, rp)
            popdf = pd.concat([popdf, wide], axis=1)
            stats.insert(0, "sample_id", sid)
        try:
            gml = gatingml_bytes(strategy, sample_id=sid if isinstance(strategy_src, WorkspaceStrategies) else None)
        except Exception as exc:  # noqa: BLE001 - the counts stand; say why no Gating-ML was written
            gml = None
            flags.append("GATINGML_NOT_WRITTEN")
            row["error"] = f"Gating-ML export failed: {exc}"
        png = _plot(strategy, sample, pops, sid, row, sample_id=sid if isinstance(strategy_src, WorkspaceStrategies)
                    else None) if cfg.plots else None
        row["qc_flags"] = ";".join(dict.fromkeys(flags))
        return SampleResult(row, popdf, gml, png, stats)
    except (FcsReadError, PanelError, CompensationError, StrategyError, ConfigError, GatingError, ValueError,
            KeyError, IndexError, LookupError) as exc:
        row.update(status="error", error=str(exc), qc_flags=";".join(dict.fromkeys(flags)))
        return SampleResult(row, pd.DataFrame(), None)
    except Exception as exc:  # noqa: BLE001 - a batch never stops for one file
        row.update(status="error", error=f"{type(exc).__name__}: {exc}", qc_flags=";".join(dict.fromkeys(flags)))
        return SampleResult(row, pd.DataFrame(), None)


def _plot(strategy, sample, pops: list[Population], sid: str, row: dict, sample_id=None) -> bytes | None:
    """The sample's gate plot as PNG bytes (written with the tables), or None if drawing failed."""
    import tempfile

    from gating.plot import plot_sample
    membership = {(p.name, p.path): p.membership for p in pops}
    title = f"{sid}  ({row.get('sample_type') or '?'}; CAR {row.get('car_pct_of_t', float('nan')):.1f}% of T)" \
        if isinstance(row.get("car_pct_of_t"), float) and math.isfinite(row["car_pct_of_t"]) else sid
    try:
        with tempfile.TemporaryDirectory() as d:
            path = plot_sample(strategy, sample, membership, Path(d) / "p.png", title, sample_id)
            return path.read_bytes()
    except Exception:  # noqa: BLE001 - a plot never costs a sample its numbers
        return None


def _unique_ids(results: list[SampleResult]) -> None:
    """Make sample ids unique (two tubes named alike in different folders): suffix with a hash."""
    seen: dict[str, int] = {}
    for r in results:
        seen[r.row["sample_id"]] = seen.get(r.row["sample_id"], 0) + 1
    for r in results:
        sid = r.row["sample_id"]
        if seen[sid] > 1:
            new = f"{sid}_{(r.row['sha256'] or hashlib.sha256(r.row['file'].encode()).hexdigest())[:8]}"
            r.row["sample_id"] = new
            if len(r.populations):
                r.populations["sample_id"] = new
            r.row["qc_flags"] = ";".join(filter(None, [r.row["qc_flags"], "DUPLICATE_SAMPLE_ID"]))


def results_frame(results: Sequence[SampleResult]) -> pd.DataFrame:
    df = pd.DataFrame([r.row for r in results], columns=list(SAMPLE_COLUMNS))
    for c in COUNT_COLUMNS:
        df[c] = pd.array(df[c], dtype="Int64")
    return df.sort_values(["sample_id", "file"], kind="stable").reset_index(drop=True)


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    return df.sort_values(["sample_id"], kind="stable").reset_index(drop=True)


def write_outputs(results: Sequence[SampleResult], out: str | Path, cfg: AnalysisConfig) -> pd.DataFrame:
    """samples, populations and statistics as CSV and Parquet (and .xlsx with openpyxl),
    gates/<sample_id>.xml, plots/<sample_id>.png and run.json under ``out``; all atomically."""
    out = Path(out)
    df = results_frame(results)
    popdf = _concat([r.populations for r in results],
                    ["sample_id", "population", "parent", "path", "count", "pct_parent", "pct_total"])
    stats = _concat([r.statistics for r in results],
                    ["sample_id", "population", "parent", "count", "pct_parent", "pct_total", "channel", "marker",
                     "role", "median", "mean", "rcv_pct"])
    tables = {"samples": df, "populations": popdf, "statistics": stats}
    for name, table in tables.items():
        atomic_write(out / f"{name}.csv", table.to_csv(index=False, float_format="%.6g", lineterminator="\n").encode())
        atomic_write(out / f"{name}.parquet", _parquet_bytes(table))
    _write_xlsx(out / "statistics.xlsx", tables)
    for r in results:
        if r.gatingml is not None:
            atomic_write(out / "gates" / f"{r.row['sample_id']}.xml", r.gatingml)
        if r.plot_png is not None:
            atomic_write(out / "plots" / f"{r.row['sample_id']}.png", r.plot_png)
    if cfg.learned.cuts:
        cfg.learned.to_yaml(out / "learned_cuts.yaml")
    atomic_write(out / "run.json", json.dumps(run_record(cfg), indent=2, sort_keys=True, default=str).encode())
    return df


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    import io
    buf = io.BytesIO()
    clean = df.copy()
    for c in clean.columns:
        if clean[c].dtype == object:
            clean[c] = clean[c].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    clean.to_parquet(buf, index=False)
    return buf.getvalue()


def _write_xlsx(path: Path, tables: dict[str, pd.DataFrame]) -> None:
    """One workbook, a sheet per table, when openpyxl is installed (``pip install 'cytomnt[xlsx]'``)."""
    import importlib.util
    import warnings
    if importlib.util.find_spec("openpyxl") is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    try:
        with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
            for name, table in tables.items():
                table.to_excel(xw, sheet_name=name, index=False)
        os.replace(tmp, path)
    except Exception as exc:  # noqa: BLE001 - the optional workbook never costs the other outputs
        tmp.unlink(missing_ok=True)
        warnings.warn(f"{path} not written: {exc}")


def run_record(cfg: AnalysisConfig) -> dict:
    """The configuration and software versions behind a run."""
    import flowio
    import flowkit
    return {
        "cytomnt": __version__, "flowkit": flowkit.__version__, "flowio": flowio.__version__,
        "strategy": cfg.strategy, "gate_map": cfg.gate_map, "panel": {"source": cfg.panel.source,
                                                                      "roles": {k: list(v) for k, v in cfg.panel.roles.items()}},
        "auto": vars(cfg.auto), "metrics": vars(cfg.metrics), "spillover": cfg.spillover,
        "sample_type": cfg.sample_type,
        "negative_control": cfg.control_file,
        "learned_cuts": {"cuts": cfg.learned.cuts, "source": cfg.learned.source},
        "research_use_only": RUO,
    }


RUO = ("Research use only. cytomnt is not a validated clinical decision tool; its numbers and "
       "flags must not be used on their own to guide patient care.")


def make_config(panel=None, strategy="auto", gate_map=None, manifest=None, sample_type=None,
                negative_control=None, spillover=None, auto: EngineSettings | None = None,
                metrics: MetricSettings | None = None, learned_cuts=None, plots: bool = False,
                deidentify: bool = False, identifying_keywords=None) -> AnalysisConfig:
    """Validate options and build the run's configuration (raises :class:`ConfigError`)."""
    try:
        p = panel if isinstance(panel, Panel) else (Panel.from_yaml(panel) if panel else Panel.default())
    except PanelError as exc:
        raise ConfigError(str(exc)) from exc
    cfg = AnalysisConfig(panel=p, strategy=str(strategy or "auto"), auto=auto or EngineSettings(),
                         metrics=metrics or MetricSettings(), spillover=str(spillover) if spillover else None,
                         plots=plots, deidentify=deidentify)
    if identifying_keywords:
        try:
            cfg.identifying_keywords = read_keyword_list(identifying_keywords)
        except OSError as exc:
            raise ConfigError(f"identifying keywords file {identifying_keywords}: cannot be read ({exc.strerror})") from exc
    try:
        cfg.gate_map = parse_gate_map(gate_map)
        if sample_type:
            cfg.sample_type = normalise_sample_type(sample_type, "--sample-type")
        if manifest is not None:
            cfg.manifest = manifest if isinstance(manifest, dict) else read_manifest(manifest)
        load_strategy(cfg.strategy)
    except (StrategyError, TemplateError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    if spillover and not Path(spillover).exists():
        raise ConfigError(f"spillover file {spillover}: not found")
    if learned_cuts is not None:
        try:
            cfg.learned = learned_cuts if isinstance(learned_cuts, LearnedCuts) else LearnedCuts.from_yaml(learned_cuts)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"learned cuts {learned_cuts}: cannot be read ({exc})") from exc
    if negative_control is not None:
        if not isinstance(load_strategy(cfg.strategy), Template):
            raise ConfigError("--negative-control sets cuts of the auto strategy or a template; it cannot be used "
                              f"with --strategy {cfg.strategy}")
        cfg.learned = cfg.learned.merge(_control_from(negative_control, cfg))
        cfg.control_file = str(negative_control if not isinstance(negative_control, fk.Sample) else negative_control.id)
        if deidentify:
            cfg.control_file = "sha256:" + (sha256_file(Path(negative_control))[:16]
                                            if not isinstance(negative_control, fk.Sample) else "sample")
    return cfg


def _control_from(spec, cfg: AnalysisConfig) -> LearnedCuts:
    try:
        sample = spec if isinstance(spec, fk.Sample) else read_fcs(spec).sample
        name = str(spec) if not isinstance(spec, fk.Sample) else str(spec.id)
        rp = cfg.panel.resolve(channels_of(sample, cfg.panel), name)
        comp = compensation_for(sample, cfg.spillover, name)
        return control_cuts(sample, rp, comp, cfg.auto, load_strategy(cfg.strategy))
    except (FcsReadError, PanelError, CompensationError, GatingError, ValueError) as exc:
        raise ConfigError(f"negative control: {exc}") from exc


def _loader(item, cfg: AnalysisConfig):
    """A callable reading one input for batch learning: (sample, resolved panel, compensation)."""
    def load():
        sample = item if isinstance(item, fk.Sample) else read_fcs(item).sample
        name = str(getattr(item, "id", item))
        return (sample, cfg.panel.resolve(channels_of(sample, cfg.panel), name, strict=cfg.strategy == "auto"),
                compensation_for(sample, cfg.spillover, name))
    return load


def learn_batch_cuts(items, cfg: AnalysisConfig) -> None:
    """Learn the template's ``learn: batch`` cuts once from all inputs (unless already given)."""
    template = load_strategy(cfg.strategy)
    if not isinstance(template, Template):
        return
    todo = [g.population for g in template.gates if g.learn == "batch" and g.population not in cfg.learned.cuts]
    if todo:
        cfg.learned = batch_cuts([_loader(i, cfg) for i in items], cfg.auto, template, cfg.learned)


def analyze(inputs, panel=None, strategy="auto", gate_map=None, manifest=None, sample_type=None,
            negative_control=None, spillover=None, out=None, jobs: int = 1, config: AnalysisConfig | None = None,
            progress=None, learned_cuts=None, plots: bool = False, executor: str = "local",
            scheduler: str | None = None, deidentify: bool = False) -> pd.DataFrame:
    """Analyse FCS files (paths, folders searched recursively) or FlowKit ``Sample`` objects.

    Returns the samples table (one row per input, see ``SAMPLE_COLUMNS``). With ``out``, also
    writes samples.csv, populations.csv, errors.csv, gates/<sample_id>.xml and run.json there,
    and keeps every result in ``out/results.sqlite``, so a re-run reuses what is done.
    """
    from .batch import run_batch
    cfg = config or make_config(panel, strategy, gate_map, manifest, sample_type, negative_control, spillover,
                                learned_cuts=learned_cuts, plots=plots, deidentify=deidentify)
    results, _ = run_batch(inputs, cfg, out, jobs, executor, scheduler, progress=progress or False)
    return results_frame(results)


def collect_inputs(inputs) -> list:
    if isinstance(inputs, (str, Path, fk.Sample)):
        inputs = [inputs]
    samples = [i for i in inputs if isinstance(i, fk.Sample)]
    paths = find_fcs_files([i for i in inputs if not isinstance(i, fk.Sample)])
    return samples + paths
