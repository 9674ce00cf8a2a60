"""The ``cytomnt`` command: a thin layer over the Python API.

Exit codes: 0 every file analysed; 1 the run finished but some files failed (see the
``status``/``error`` columns); 2 the run could not start (bad option, panel, strategy,
manifest or control file).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cytomnt.errors import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from cytomnt.hints import program, risk_command  # noqa: F401 - the demo's follow-up command
from cytomnt.ruo import RUO

#: Exit code after Ctrl-C (128 + SIGINT, as shells report it); finished results are kept.
EXIT_INTERRUPTED = 130


def _add_analysis_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--panel", help="panel YAML mapping roles to channel names (default: built-in)")
    p.add_argument("--strategy", default="auto",
                   help="'auto' (default), a gating template .yaml, an openCyto gating template .csv, "
                        "a Gating-ML 2.0 .xml, or a FlowJo 10 .wsp (each file gets the gates of the workspace "
                        "sample of its name; an OUT/cytomnt.wsp a reviewer corrected in FlowJo comes back this way)")
    p.add_argument("--wsp-group", help="with a .wsp strategy: this group's own gates for every file")
    p.add_argument("--wsp-sample", help="with a .wsp strategy: this workspace sample's gates for every file")
    p.add_argument("--keywords", help="FCS keywords as samples.csv columns, e.g. '$DATE,$BTIM,$CYT,TUBE NAME,$VOL'")
    p.add_argument("--gate-map", help="which user gate is which: 't_cell=T Cells,car=CAR+,cd4=CD4,cd8=CD8' or a YAML file")
    p.add_argument("--manifest", help="CSV: file, sample_id, patient_id, collection_date, sample_type[, alc_k_per_ul, control]")
    p.add_argument("--sample-type", choices=["pb", "csf", "bm", "product"], help="sample type for files the manifest does not type")
    p.add_argument("--negative-control", help="FCS of a CAR-negative control tube (FMO, a stained CAR-negative sample, "
                   "or an unstained tube): CAR+ T cells are counted net of what it predicts")
    p.add_argument("--spillover", help="spillover matrix CSV (detectors as header and first column) instead of $SPILLOVER")
    p.add_argument("--jobs", type=int, default=0,
                   help="worker processes (default 0 = every CPU this process may use; 1 = no pool)")
    p.add_argument("--executor", default="local", choices=["local", "dask"],
                   help="local process pool (default) or a Dask distributed cluster")
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786); without it a local Dask cluster")
    p.add_argument("--learned-cuts", help="learned_cuts.yaml of an earlier run: re-use its batch/control cuts")
    p.add_argument("--plots", action="store_true", help="write OUT/plots/<sample_id>.png with every gate drawn")
    p.add_argument("--deidentify", action="store_true",
                   help="keep file names, paths and identifying keyword values out of every output (README)")
    p.add_argument("--identifying-keywords", help="file of extra identifying keywords, one per line")
    p.add_argument("--no-report", action="store_true", help="do not write OUT/report.html")
    p.add_argument("--xlsx", action="store_true", help="also write OUT/statistics.xlsx (needs cytomnt[xlsx])")
    p.add_argument("--no-acquisition-qc", action="store_true",
                   help="keep every event: no flow-rate/signal or saturation cleaning before gating")
    p.add_argument("--clinical", help="clinical.csv: adds each patient's MNT risk to the report")
    p.add_argument("--labs", help="labs.csv: ALC over time in the report")
    p.add_argument("--treatments", help="treatments.csv: interventions on the report's timelines")


def cmd_analyze(a) -> int:
    from cytomnt.inputs.files import EarlyHashes, gather_inputs, out_problem
    if a.jobs < 0:                         # before anything heavy loads
        print(f"cytomnt: --jobs must be 0 (every CPU this process may use) or a positive number, not {a.jobs}",
              file=sys.stderr)
        return EXIT_USAGE
    bad_out = out_problem(a.out)
    if bad_out:
        print(f"cytomnt: --out {a.out}: {bad_out}", file=sys.stderr)
        return EXIT_USAGE
    items, note = gather_inputs(a.paths)
    if note:
        print(f"cytomnt: {note}", file=sys.stderr)
    early = EarlyHashes(items)             # a hashing process on another core while the rest loads
    try:
        from cytomnt.run.batch import run_batch
        from cytomnt.run.config import make_config
        from cytomnt.run.executors import default_jobs
        cfg = make_config(a.panel, a.strategy, a.gate_map, a.manifest, a.sample_type, a.negative_control,
                          a.spillover, learned_cuts=a.learned_cuts, plots=a.plots, deidentify=a.deidentify,
                          identifying_keywords=a.identifying_keywords, acquisition_qc=not a.no_acquisition_qc,
                          xlsx=a.xlsx, wsp_group=a.wsp_group, wsp_sample=a.wsp_sample, keywords=a.keywords)
    finally:
        hashes = early.stop()              # done or not: the workers hash what it did not
    from gating.parallel import preload

    from cytomnt.run.batch import RunInterrupted
    try:
        results, summary = run_batch(items, cfg, a.out, a.jobs or default_jobs(), a.executor, a.scheduler,
                                     progress=True, hashes=hashes,
                                     on_start=None if a.no_report else lambda: preload("cytomnt.exports.report"))
    except RunInterrupted as exc:
        print(f"\ncytomnt: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    for issue in summary.manifest_issues:
        print(f"cytomnt: manifest check: {issue}", file=sys.stderr)
    from cytomnt.run.summary import car_call_notes, keyword_notes
    rows = [r.row for r in results]
    for note in car_call_notes(rows) + keyword_notes(rows, cfg.keywords):
        print(f"cytomnt: {note}", file=sys.stderr)
    if summary.changes:
        from cytomnt.run.changes import summary as changes_line
        print(f"cytomnt: {changes_line(summary.changes, summary.analysed)} (every change: "
              f"{Path(a.out) / 'changes.csv'})", file=sys.stderr)
    report = ""
    if not a.no_report:
        from cytomnt.exports.report import build_report
        try:
            report = f", report {build_report(a.out, a.clinical, a.labs, treatments=a.treatments)}"
        except Exception as exc:  # noqa: BLE001 - the tables are written; the report must not fail the run
            print(f"cytomnt: report not written: {exc}", file=sys.stderr)
    print(f"{summary.line()}; results in {Path(a.out) / 'samples.csv'}{report}" +
          (f", failures in {Path(a.out) / 'errors.csv'}" if summary.failed else ""), file=sys.stderr)
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK


def cmd_panel(a) -> int:
    """Show which channel fills each role, then every channel of the file to copy names from.

    Panel and file problems are the usual mistakes here, so they end in one line naming the
    file and what to fix (exit 2), never in a traceback.
    """
    from gating import FcsReadError, read_fcs

    from cytomnt.inputs.panel import REQUIRED_ROLES, Panel, PanelError, channels_of, describe_channels
    try:
        panel = Panel.from_yaml(a.panel) if a.panel else Panel.default()
        sample = read_fcs(a.file).sample
    except (PanelError, FcsReadError) as exc:
        print(f"cytomnt: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"cytomnt: {a.file}: cannot be read as an FCS file ({exc.strerror or exc})", file=sys.stderr)
        return EXIT_USAGE
    channels = channels_of(sample, panel)
    rp = panel.resolve(channels, str(a.file), strict=False)
    print(f"{a.file} ({sample.event_count} events), panel {panel.source}")
    print(rp.describe())
    print(f"\nchannels in the file ({len(channels)}):")
    print(describe_channels(channels))
    missing = [r for r in REQUIRED_ROLES if r in rp.missing]
    if missing:
        print(f"missing required role(s): {', '.join(missing)}; the auto strategy cannot run on this file")
    try:                                    # exactly as `analyze` resolves it for the auto strategy
        panel.resolve(channels, str(a.file), strict=True)
    except PanelError as exc:
        print(f"`cytomnt analyze` stops at: {exc}")
        return EXIT_SOME_FAILED
    return EXIT_SOME_FAILED if missing else EXIT_OK


def cmd_inspect(a) -> int:
    """Describe files: 0 when every one reads, 1 otherwise (each says why)."""
    from cytomnt.inputs.inspect import inspect_file, render, to_json
    from cytomnt.inputs.panel import Panel
    from cytomnt.inputs.files import gather_inputs
    files, note = gather_inputs(a.files)          # folders searched like `analyze` does
    if note:
        print(f"cytomnt: {note}", file=sys.stderr)
    panel = Panel.from_yaml(a.panel) if a.panel else None
    infos = [inspect_file(f, panel) for f in files]
    print(to_json(infos) if a.json else "\n".join(render(i) for i in infos), end="" if not a.json else "\n")
    return EXIT_SOME_FAILED if any(i.error for i in infos) else EXIT_OK


def cmd_demo(a) -> int:
    from cytomnt.demo import run_demo
    ok = run_demo(Path(a.out), a.jobs)
    return EXIT_OK if ok else EXIT_SOME_FAILED


def cmd_generate(a) -> int:
    from cytomnt.demo import make_demo_set, write_fixtures
    if a.fixtures:
        for p in write_fixtures(a.out):
            print(p)
    else:
        print(make_demo_set(a.out))
    return EXIT_OK


def cmd_report(a) -> int:
    from cytomnt.exports.report import build_report
    path = build_report(a.out, a.clinical, a.labs, a.as_of, a.rules, a.alc_unit, a.treatments)
    print(f"report: {path}", file=sys.stderr)
    return EXIT_OK


def cmd_export(a) -> int:
    from cytomnt.exports.cells import ExportError, to_anndata, to_fcs
    if not a.flowjo and (not a.sample or len(a.sample) != 1 or not (a.anndata or a.population)):
        print("cytomnt: export needs one --sample ID with --anndata FILE.h5ad or --population POP, "
              "or --flowjo FILE.wsp", file=sys.stderr)
        return EXIT_USAGE
    for option, value in (("--anndata", a.anndata), ("--fcs", a.fcs), ("--flowjo", a.flowjo)):
        if value and Path(value).is_dir():
            print(f"cytomnt: {option} {value} is a folder; give a file name to write", file=sys.stderr)
            return EXIT_USAGE
    try:
        if a.flowjo:
            from cytomnt.exports.flowjo import export_workspace
            path, n = export_workspace(a.out, a.flowjo, a.sample)
            print(f"{path}: FlowJo workspace of {n} sample(s)")
        if a.anndata:
            ad = to_anndata(a.out, a.sample[0], a.fcs_input, a.anndata)
            print(f"{a.anndata}: {ad.n_obs} events x {ad.n_vars} channels, populations: {', '.join(ad.obs.columns)}")
        if a.population:
            sid = a.sample[0]
            path = to_fcs(a.out, sid, a.population, a.fcs or f"{sid}_{a.population}.fcs", a.fcs_input,
                          deidentify=a.deidentify)
            print(f"{path}: population {a.population} of {sid}")
    except ExportError as exc:
        print(f"cytomnt: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from cytomnt.cli_patients import add_patient_commands
    from cytomnt.failures import OneLineParser
    ap = OneLineParser(prog="cytomnt", description="CAR-T phenotyping from FCS files. " + RUO)
    from cytomnt import __version__
    ap.add_argument("--version", action="version", version=f"cytomnt {__version__}")
    ap.add_argument("--debug", action="store_true", help="show an error's Python traceback (or CYTOMNT_DEBUG=1)")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("analyze", help="analyse FCS files or folders into samples.csv and populations.csv")
    p.add_argument("paths", nargs="+", help="FCS files or folders (searched recursively for .fcs/.FCS/.lmd)")
    p.add_argument("--out", default="cytomnt-out", help="output folder (default cytomnt-out)")
    _add_analysis_options(p)
    p.set_defaults(func=cmd_analyze)
    add_patient_commands(sub)
    p = sub.add_parser("report", help="(re)build OUT/report.html from the results store")
    p.add_argument("out", help="the output folder of `cytomnt analyze`")
    p.add_argument("--clinical", help="clinical.csv, for the risk assessment and day 0 at infusion")
    p.add_argument("--labs", help="labs.csv (ALC over time)")
    p.add_argument("--treatments", help="treatments.csv (interventions on the timelines)")
    p.add_argument("--as-of", help="risk as of this date (YYYY-MM-DD; default today, as `cytomnt risk`)")
    p.add_argument("--rules")
    p.add_argument("--alc-unit", default="k_per_ul", choices=["k_per_ul", "cells_per_ul", "10^9/L"])
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("export", help="export gated events (AnnData, one population as FCS) or a FlowJo workspace")
    p.add_argument("out", help="the output folder of `cytomnt analyze`")
    p.add_argument("--sample", action="extend", nargs="+", help="sample id(s) (several for a workspace)")
    p.add_argument("--flowjo", metavar="FILE.wsp", help="a FlowJo 10 workspace of the samples (all without --sample)")
    p.add_argument("--anndata", metavar="FILE.h5ad")
    p.add_argument("--population", help="population to write as FCS")
    p.add_argument("--fcs", metavar="FILE.fcs", help="where to write the population's FCS")
    p.add_argument("--fcs-input", help="the sample's FCS file (needed after --deidentify)")
    p.add_argument("--deidentify", action="store_true", help="FCS export keeps only channel keywords and the spillover")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("panel", help="show which channel fills each panel role in a file")
    p.add_argument("file")
    p.add_argument("--panel")
    p.set_defaults(func=cmd_panel)
    p = sub.add_parser("inspect", help="describe FCS files: instrument, data sets, channels, ranges, time, roles")
    p.add_argument("files", nargs="+")
    p.add_argument("--panel")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("demo", help="generate two patients' blood and CSF tubes and analyse them")
    p.add_argument("--out", default="cytomnt-demo")
    p.add_argument("--jobs", type=int, default=2)
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("generate", help="write synthetic FCS files with known truth")
    p.add_argument("out")
    p.add_argument("--fixtures", action="store_true", help="the small test fixtures instead of the demo set")
    p.set_defaults(func=cmd_generate)
    return ap


def main(argv=None) -> int:
    from cytomnt.failures import debugging, explain, guard_streams, silence_stdout
    from cytomnt.startup import defer_flowkit_plotting
    args = build_parser().parse_args(argv)
    defer_flowkit_plotting()        # no command draws a FlowKit plot: a second less before the first gate
    if argv is None:                # the command line (not a test's captured streams)
        guard_streams()
    try:
        return args.func(args)
    except BrokenPipeError:         # `cytomnt ... | head`: the reader went away
        silence_stdout()
        return EXIT_OK
    except KeyboardInterrupt:       # outside a batch's loop (a batch says itself what it kept)
        print("\ncytomnt: interrupted; nothing is left half-written (every file is written whole or not "
              "at all); run the same command again", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback (unless asked)
        if debugging(args.debug):
            raise
        code, line = explain(exc, args.command)
        print(line, file=sys.stderr)
        return code


def run() -> None:
    """The ``cytomnt`` command: :func:`main`, then exit at once. Everything the command writes is
    closed by then; skipping the interpreter's teardown of FlowKit, bokeh, scipy and pandas
    saves half a second on every command."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass
    os._exit(code or 0)


if __name__ == "__main__":
    run()
