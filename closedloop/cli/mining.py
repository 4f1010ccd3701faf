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
        settings = settings_from(args)
        if "bottleneck_threshold_hours" in settings.model_fields_set:
            threshold = settings.bottleneck_threshold_hours  # else the rule relative to the log
    mapping = ColumnMapping(
        case=args.case,
        activity=args.activity,
        timestamp=args.timestamp,
        start_timestamp=args.start,
        resource=args.resource,
        lifecycle=args.lifecycle,
    )
    started = time.perf_counter()
    frame = load_event_log(
        args.log, mapping=mapping, duplicates=args.duplicates, object_type=args.object_type
    )
    read_s = time.perf_counter() - started
    report = diagnose(
        frame,
        reference_model=args.reference,
        sla_hours=args.sla,
        bottleneck_threshold_hours=threshold,
        miner=args.miner,
        noise_threshold=args.noise,
    )
    report.timings_s = {"read": round(read_s, 3), **report.timings_s}
    report.duration_s = round(time.perf_counter() - started, 3)
    data = report.model_dump(mode="json")
    text = "\n".join([counts_line(data), render_mining(data), *detail_lines(data)])
    if args.out:
        from closedloop.tools.mining import write_models, write_process_map
        from closedloop.tools.mining.discovery import discover_from_frame, miner_options

        model = discover_from_frame(frame, **miner_options(args.miner, args.noise))
        files = {
            **write_process_map(report, args.out, bottleneck_threshold_hours=threshold),
            **write_models(model, args.out),
        }
        data["files"] = {kind: str(path) for kind, path in files.items()}
        text += "\nwrote " + ", ".join(data["files"].values())
    emit(args, data, text)
    return 0


def counts_line(report: dict) -> str:
    """What was read, dropped and analysed, in the words every surface uses."""
    dropped = report.get("events_dropped") or {}
    why = ", ".join(f"{n} {reason}" for reason, n in dropped.items())
    return (
        f"{report.get('events_read', report['events'])} events read, "
        f"{sum(dropped.values())} dropped{f' ({why})' if why else ''}, "
        f"{report['events']} events analysed as {report['activity_instances']} activity "
        f"instances"
    )


def detail_lines(report: dict) -> list[str]:
    """How bottlenecks were chosen, what was set aside, and each root-cause verdict."""
    lines = [f"bottleneck rule: {report.get('bottleneck_rule', '')}"]
    for e in report.get("bottlenecks_excluded", [])[:5]:
        lines.append(f"  not a queue: {e['activity']} ({e['reason']})")
    for rc in report.get("root_causes", []):
        if rc.get("verdict"):
            lines.append(f"root causes ({rc['target']}): {rc['verdict']}")
    return lines


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``mine``."""
    m = sub.add_parser(
        "mine",
        help="mining report of a CSV, XES, XES.gz, Parquet or OCEL 2.0 log",
        description="Diagnose an event log: bottlenecks, rework, conformance, SLA "
        "and root causes. A malformed log exits with code 2.",
    )
    m.add_argument("log", type=Path, help="CSV, XES, XES.gz, Parquet or OCEL 2.0 event log")
    add_json(m)
    m.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="absolute bottleneck threshold: mean waiting hours (default: the "
        "CLOSEDLOOP_BOTTLENECK_HOURS setting when set, else relative to the log)",
    )
    m.add_argument(
        "--duplicates",
        choices=("exact", "keep", "same-time"),
        default="exact",
        help="repeated events to drop: exact = rows equal in every column "
        "(default), keep = none, same-time = same case, activity, time, "
        "resource and lifecycle",
    )
    m.add_argument(
        "--object-type",
        default=None,
        help="OCEL 2.0 logs (.jsonocel, .xmlocel, .sqlite): the object type whose objects "
        "are the cases (required when the log has several)",
    )
    m.add_argument(
        "--miner",
        choices=("auto", "imd", "imf", "heuristics"),
        default="auto",
        help="discovery: auto (plain IM on a log without rare start/end activities, else the "
        "best F1 of the inductive candidates), imd, imf, heuristics",
    )
    m.add_argument(
        "--noise",
        type=float,
        default=None,
        help="noise threshold 0..1 of the inductive miner (default: auto / 0.2)",
    )
    m.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="reference model (BPMN or PNML) for conformance",
    )
    m.add_argument(
        "--sla",
        type=float,
        default=None,
        help="SLA on case cycle time in hours (breach rate, root causes)",
    )
    m.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the process map (SVG, PNG, offline HTML) and the model (BPMN, PNML)",
    )
    for flag in COLUMN_FLAGS:
        m.add_argument(
            f"--{flag}", default=None, help=f"column holding the {flag} (default: auto-detect)"
        )
    m.set_defaults(func=cmd_mine)
