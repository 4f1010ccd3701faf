"""Loop commands: ``run``, ``approve``, ``reject``, ``watch``, ``status``.

The graph layer (``closedloop.graphs.runner``) is imported inside each handler.
"""

from __future__ import annotations

import argparse
from typing import Any

from closedloop.cli.common import (
    MODES,
    add_json,
    current_user,
    emit,
    loop_exit_code,
    settings_from,
)


def pending_text(state: dict[str, Any]) -> str:
    """What a paused run waits for, with the command that continues it."""
    pending = state.get("pending")
    if not pending:
        return ""
    if pending["kind"] == "approval":
        return (f"\n\nwaiting for approval #{pending['approval_id']}: "
                f"closedloop approve {pending['approval_id']}  |  "
                f"closedloop reject {pending['approval_id']}")
    return ("\n\nwaiting for evidence: once the system has run on, "
            f"`closedloop watch {pending['run_id']}`")


def _show(args: argparse.Namespace, state: dict[str, Any]) -> int:
    from closedloop.report import render_run

    emit(args, state, render_run(state) + pending_text(state))
    return loop_exit_code(state)


def cmd_run(args: argparse.Namespace) -> int:
    """Start a loop against an enterprise system through its connector; it runs until it pauses
    or ends."""
    from closedloop.graphs.runner import LoopRunner

    settings = settings_from(args)
    if args.connector:
        settings = settings.model_copy(update={"connector": args.connector})
    with LoopRunner(settings) as runner:
        state = runner.start(args.api, scope=args.scope, history=args.log)
    return _show(args, state)


def cmd_decide(args: argparse.Namespace) -> int:
    """Approve or reject a paused plan (by approval id or run id) and resume its loop."""
    from closedloop.graphs.runner import LoopRunner

    with LoopRunner(settings_from(args)) as runner:
        run_id = args.id if not args.id.isdigit() else runner.run_of_approval(int(args.id))
        state = runner.resume(run_id, {"decision": args.decision, "by": args.by,
                                       "comment": args.comment, "channel": "cli"},
                              expect="approval")
    return _show(args, state)


def cmd_watch(args: argparse.Namespace) -> int:
    """Resume a loop that waits for evidence after acting."""
    from closedloop.graphs.runner import LoopRunner

    with LoopRunner(settings_from(args)) as runner:
        state = runner.resume(args.run_id, {"checked_by": "cli"}, expect="evidence")
    return _show(args, state)


def cmd_status(args: argparse.Namespace) -> int:
    """A run's steps and what it waits for."""
    from closedloop.graphs.runner import LoopRunner

    with LoopRunner(settings_from(args)) as runner:
        state = runner.state(args.run_id)
        state["pending"] = runner.pending(args.run_id)
    return _show(args, state)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register run, approve, reject, watch and status."""
    r = sub.add_parser("run", help="start a loop against a running enterprise API")
    r.add_argument("--api", default=None,
                   help="base URL of the API, e.g. http://127.0.0.1:8765 (default: the "
                        "connector's base_url)")
    r.add_argument("--connector", default=None,
                   help="connector manifest, folder or bundled domain (helpdesk, o2c); "
                        "default: CLOSEDLOOP_CONNECTOR, else the bundled helpdesk connector")
    r.add_argument("--log", default=None, metavar="FILE",
                   help="mine this event log (.csv, .xes, .xes.gz, .parquet, OCEL 2.0) as the "
                        "history instead of the system's event feed; the feed still gives the "
                        "events after the change")
    r.add_argument("--scope", default=None,
                   help="scope whose policy governs the run (default: CLOSEDLOOP_SCOPE)")
    r.add_argument("--mode", choices=MODES, default=None,
                   help="default mode for a scope seen for the first time")
    add_json(r)
    r.set_defaults(func=cmd_run)

    for name in ("approve", "reject"):
        a = sub.add_parser(name, help=f"{name} a paused plan and resume its loop")
        a.add_argument("id", help="approval id (number) or run id")
        a.add_argument("--by", default=current_user(), help="who decides (default: $USER)")
        a.add_argument("--comment", default="", help="a note kept with the decision")
        add_json(a)
        a.set_defaults(func=cmd_decide, decision=name)

    w = sub.add_parser("watch", help="resume a loop that waits for evidence after acting")
    w.add_argument("run_id", help="id of the run, e.g. run-0123456789ab")
    add_json(w)
    w.set_defaults(func=cmd_watch)

    st = sub.add_parser("status", help="show a run's steps and what it waits for")
    st.add_argument("run_id", help="id of the run")
    add_json(st)
    st.set_defaults(func=cmd_status)
