"""The ``closedloop`` command line: demo, run/approve/reject/watch, mine, sandbox, policy, db."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

# pm4py prints progress bars; keep them out of --json output.
os.environ.setdefault("TQDM_DISABLE", "1")

EXIT_USAGE, EXIT_INPUT, EXIT_STATE = 2, 2, 3


def _settings(args: argparse.Namespace):
    from closedloop.settings import Settings

    overrides: dict[str, Any] = {}
    if getattr(args, "db", None):
        overrides["DATABASE_URL"] = args.db
    if getattr(args, "home", None):
        overrides["CLOSEDLOOP_HOME"] = args.home
    if getattr(args, "mode", None):
        overrides["CLOSEDLOOP_MODE"] = args.mode
    return Settings(**overrides)


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(text)


def cmd_mine(args: argparse.Namespace) -> int:
    import time

    from closedloop.report import render_mining
    from closedloop.tools.log.ingest import ColumnMapping, load_event_log
    from closedloop.tools.mining.diagnose import diagnose

    mapping = ColumnMapping(case=args.case, activity=args.activity, timestamp=args.timestamp,
                            start_timestamp=args.start, resource=args.resource, lifecycle=args.lifecycle)
    started = time.perf_counter()
    frame = load_event_log(args.log, mapping=mapping)
    read_s = time.perf_counter() - started
    report = diagnose(frame, reference_model=args.reference, sla_hours=args.sla,
                      bottleneck_threshold_hours=args.threshold)
    report.timings_s = {"read": round(read_s, 3), **report.timings_s}
    report.duration_s = round(time.perf_counter() - started, 3)
    data = report.model_dump(mode="json")
    text = render_mining(data)
    if args.out:
        from closedloop.tools.mining.export import write_models
        from closedloop.tools.mining.visual import write_process_map

        files = {**write_process_map(report, args.out, bottleneck_threshold_hours=args.threshold),
                 **write_models(frame, args.out)}
        data["files"] = {kind: str(path) for kind, path in files.items()}
        text += "\nwrote " + ", ".join(data["files"].values())
    _emit(args, data, text)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from closedloop.demo import run_demo

    state = run_demo(_settings(args), seed=args.seed, history_days=args.history_days,
                     observe_days=args.observe_days, auto_approve=args.yes, quiet=args.json)
    from closedloop.report import audit_chain, render_run

    _emit(args, {"run_id": state["run_id"], "outcome": state.get("outcome"), "steps": state["steps"],
                 "audit_chain": audit_chain(state)}, render_run(state))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from closedloop.graphs.runner import LoopRunner
    from closedloop.report import render_run

    with LoopRunner(_settings(args)) as runner:
        state = runner.start(args.api, scope=args.scope)
    _emit(args, state, render_run(state) + _pending_text(state))
    return 0


def _decide(args: argparse.Namespace, decision: str) -> int:
    from closedloop.graphs.runner import LoopRunner
    from closedloop.report import render_run

    with LoopRunner(_settings(args)) as runner:
        run_id = args.id if not args.id.isdigit() else runner.run_of_approval(int(args.id))
        state = runner.resume(run_id, {"decision": decision, "by": args.by, "comment": args.comment,
                                       "channel": "cli"}, expect="approval")
    _emit(args, state, render_run(state) + _pending_text(state))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from closedloop.graphs.runner import LoopRunner
    from closedloop.report import render_run

    with LoopRunner(_settings(args)) as runner:
        state = runner.resume(args.run_id, {"checked_by": "cli"}, expect="evidence")
    _emit(args, state, render_run(state) + _pending_text(state))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from closedloop.graphs.runner import LoopRunner
    from closedloop.report import render_run

    with LoopRunner(_settings(args)) as runner:
        state = runner.state(args.run_id)
        state["pending"] = runner.pending(args.run_id)
    _emit(args, state, render_run(state) + _pending_text(state))
    return 0


def _pending_text(state: dict[str, Any]) -> str:
    pending = state.get("pending")
    if not pending:
        return ""
    if pending["kind"] == "approval":
        return (f"\n\nwaiting for approval #{pending['approval_id']}: "
                f"closedloop approve {pending['approval_id']}  |  closedloop reject {pending['approval_id']}")
    return f"\n\nwaiting for evidence: once the system has run on, `closedloop watch {pending['run_id']}`"


def cmd_policy(args: argparse.Namespace) -> int:
    from closedloop.graphs.gate import policy_for
    from closedloop.store.db import open_store, transaction
    from closedloop.store.models import utcnow

    settings = _settings(args)
    with transaction(open_store(settings.resolved_database_url())) as session:
        policy = policy_for(session, args.scope, settings.default_mode)
        if args.set_mode:
            policy.mode = args.set_mode
        if args.kill_switch:
            policy.kill_switch = args.kill_switch == "on"
        if args.set_mode or args.kill_switch:
            policy.updated_at, policy.updated_by = utcnow(), args.by
        data = policy.model_dump(mode="json")
    _emit(args, data, f"scope {data['scope']}: mode {data['mode']}, kill switch "
                      f"{'ON' if data['kill_switch'] else 'off'}, caps {data['caps']}")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from closedloop.sandbox.__main__ import main as sandbox_main

    return sandbox_main(["--port", str(args.port), "--seed", str(args.seed), "--speed", str(args.speed)])


def cmd_serve(args: argparse.Namespace) -> int:
    from closedloop.api.server import serve

    serve(_settings(args), host=args.host, port=args.port)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from closedloop.evals.runner import run_suite

    report = run_suite(_settings(args), folder=args.cases, threshold=args.threshold)
    lines = [f"{'PASS' if c.passed else 'FAIL'}  {c.case}: " + "; ".join(
        f"{s.scorer} {'ok' if s.passed else 'FAILED: ' + s.detail}" for s in c.scores) for c in report.cases]
    lines.append(f"pass rate {report.pass_rate:.0%} (threshold {report.threshold:.0%})")
    _emit(args, report.model_dump(mode="json"), "\n".join(lines))
    return 0 if report.passed else 1


def cmd_db(args: argparse.Namespace) -> int:
    from closedloop.store.migrate import upgrade

    url = _settings(args).resolved_database_url()
    upgrade(url)
    print(f"store at {url.split('@')[-1]} is at the latest schema")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="closedloop", description="Process mining -> governed action, closed loop.")
    p.add_argument("--db", help="store URL (overrides DATABASE_URL)")
    p.add_argument("--home", help="folder for the default SQLite store and artefacts (CLOSEDLOOP_HOME)")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run the whole loop against the bundled sandbox on loopback")
    d.add_argument("--yes", action="store_true", help="approve the plan without asking")
    d.add_argument("--json", action="store_true")
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--history-days", type=float, default=21.0, help="days the sandbox runs before observing")
    d.add_argument("--observe-days", type=float, default=14.0, help="days it runs on after the change")
    d.set_defaults(func=cmd_demo)

    m = sub.add_parser("mine", help="mining report of a CSV, XES, XES.gz or Parquet log")
    m.add_argument("log", type=Path)
    m.add_argument("--json", action="store_true")
    m.add_argument("--threshold", type=float, default=2.0, help="bottleneck waiting threshold in hours")
    m.add_argument("--reference", type=Path, default=None, help="reference model (BPMN or PNML) for conformance")
    m.add_argument("--sla", type=float, default=None, help="SLA on case cycle time in hours (breach rate, root causes)")
    m.add_argument("--out", type=Path, default=None,
                   help="folder for the process map (SVG, PNG, offline HTML) and the model (BPMN, PNML)")
    for flag in ("case", "activity", "timestamp", "start", "resource", "lifecycle"):
        m.add_argument(f"--{flag}", default=None, help=f"column holding the {flag} (default: auto-detect)")
    m.set_defaults(func=cmd_mine)

    r = sub.add_parser("run", help="start a loop against a running enterprise API")
    r.add_argument("--api", required=True, help="base URL of the API, e.g. http://127.0.0.1:8765")
    r.add_argument("--scope", default=None)
    r.add_argument("--mode", choices=["shadow", "assisted", "supervised"], default=None,
                   help="default mode for a scope seen for the first time")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_run)

    for name, decision in (("approve", "approve"), ("reject", "reject")):
        a = sub.add_parser(name, help=f"{name} a paused plan and resume its loop")
        a.add_argument("id", help="approval id (number) or run id")
        a.add_argument("--by", default=os.environ.get("USER", "cli-user"))
        a.add_argument("--comment", default="")
        a.add_argument("--json", action="store_true")
        a.set_defaults(func=lambda args, d=decision: _decide(args, d))

    w = sub.add_parser("watch", help="resume a loop that waits for evidence after acting")
    w.add_argument("run_id")
    w.add_argument("--json", action="store_true")
    w.set_defaults(func=cmd_watch)

    st = sub.add_parser("status", help="show a run's steps and what it waits for")
    st.add_argument("run_id")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    po = sub.add_parser("policy", help="show or change a scope's autonomy and kill switch")
    po.add_argument("scope")
    po.add_argument("--set-mode", choices=["shadow", "assisted", "supervised"])
    po.add_argument("--kill-switch", choices=["on", "off"])
    po.add_argument("--by", default=os.environ.get("USER", "cli-user"))
    po.add_argument("--json", action="store_true")
    po.set_defaults(func=cmd_policy, mode=None)

    sb = sub.add_parser("sandbox", help="serve the simulated helpdesk API on loopback")
    sb.add_argument("--port", type=int, default=8765)
    sb.add_argument("--seed", type=int, default=7)
    sb.add_argument("--speed", type=float, default=0.0, help="simulated seconds per real second (0 = manual clock)")
    sb.set_defaults(func=cmd_sandbox)

    ev = sub.add_parser("eval", help="run the shadow-mode eval suite; exit 1 below the pass-rate threshold")
    ev.add_argument("--cases", type=Path, default=None, help="folder of *.yaml cases (default: bundled)")
    ev.add_argument("--threshold", type=float, default=1.0)
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_eval)

    sv = sub.add_parser("serve", help="serve the REST API and the Teams-style approval bot")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8080)
    sv.set_defaults(func=cmd_serve)

    from closedloop.twin_cli import add_twin_commands

    add_twin_commands(sub)

    db = sub.add_parser("db", help="migrate the store to the latest schema")
    db.add_argument("action", choices=["upgrade"])
    db.set_defaults(func=cmd_db)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; errors become one line on stderr and a non-zero exit."""
    from pydantic import ValidationError

    from closedloop.graphs.runner import NotPaused, RunNotFound
    from closedloop.tools.errors import EventLogError, ToolError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EventLogError as exc:
        print(f"closedloop: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except (RunNotFound, NotPaused) as exc:
        print(f"closedloop: {exc}", file=sys.stderr)
        return EXIT_STATE
    except (ToolError, ValidationError) as exc:
        print(f"closedloop: {type(exc).__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_STATE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
