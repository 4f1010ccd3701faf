"""``closedloop mine``: the full diagnosis of an event log, optionally with map and models."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from closedloop.cli.common import add_json, emit, settings_from

COLUMN_FLAGS = ("case", "activity", "timestamp", "start", "resource", "lifecycle")


def cmd_mine(args: argparse.Namespace) -> int:
    """Diagnose a log; ``--out`` also writes the process map and the discovered model."""
    from closedloop.report import render_mining
    from closedloop.tools.log import ColumnMapping, load_event_log
    from closedloop.tools.mining import diagnose

    threshold = args.threshold
    if threshold is None:
        threshold = settings_from(args).bottleneck_threshold_hours
    mapping = ColumnMapping(case=args.case, activity=args.activity, timestamp=args.timestamp,
                            start_timestamp=args.start, resource=args.resource,
                            lifecycle=args.lifecycle)
    started = time.perf_counter()
    frame = load_event_log(args.log, mapping=mapping)
    read_s = time.perf_counter() - started
    report = diagnose(frame, reference_model=args.reference, sla_hours=args.sla,
                      bottleneck_threshold_hours=threshold)
    report.timings_s = {"read": round(read_s, 3), **report.timings_s}
    report.duration_s = round(time.perf_counter() - started, 3)
    data = report.model_dump(mode="json")
    text = render_mining(data)
    if args.out:
        from closedloop.tools.mining import write_models, write_process_map

        files = {**write_process_map(report, args.out, bottleneck_threshold_hours=threshold),
                 **write_models(frame, args.out)}
        data["files"] = {kind: str(path) for kind, path in files.items()}
        text += "\nwrote " + ", ".join(data["files"].values())
    emit(args, data, text)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``mine``."""
    m = sub.add_parser("mine", help="mining report of a CSV, XES, XES.gz or Parquet log",
                       description="Diagnose an event log: bottlenecks, rework, conformance, SLA "
                                   "and root causes. A malformed log exits with code 2.")
    m.add_argument("log", type=Path, help="CSV, XES, XES.gz or Parquet event log")
    add_json(m)
    m.add_argument("--threshold", type=float, default=None,
                   help="bottleneck waiting threshold in hours "
                        "(default: the CLOSEDLOOP_BOTTLENECK_HOURS setting)")
    m.add_argument("--reference", type=Path, default=None,
                   help="reference model (BPMN or PNML) for conformance")
    m.add_argument("--sla", type=float, default=None,
                   help="SLA on case cycle time in hours (breach rate, root causes)")
    m.add_argument("--out", type=Path, default=None,
                   help="folder for the process map (SVG, PNG, offline HTML) and the model "
                        "(BPMN, PNML)")
    for flag in COLUMN_FLAGS:
        m.add_argument(f"--{flag}", default=None,
                       help=f"column holding the {flag} (default: auto-detect)")
    m.set_defaults(func=cmd_mine)
