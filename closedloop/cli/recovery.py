"""Recovery commands: ``resume`` (a run interrupted by a crash) and ``deadletter list|replay``.

The graph layer is imported inside each handler.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from closedloop.cli.common import EXIT_STATE, EXIT_USAGE, add_json, emit, settings_from


def cmd_resume(args: argparse.Namespace) -> int:
    """Resume an interrupted run from its last checkpoint (``--all``: every interrupted run)."""
    from closedloop.cli.loop import pending_text
    from closedloop.graphs.runner import LoopRunner
    from closedloop.report import render_run

    with LoopRunner(settings_from(args)) as runner:
        if args.all:
            states = runner.recover_interrupted()
            emit(
                args,
                states,
                f"{len(states)} interrupted runs resumed"
                + "".join(f"\n  {s['run_id']}: {s.get('outcome') or 'waiting'}" for s in states),
            )
            return 0
        if not args.run_id:
            print("closedloop resume: give a RUN_ID or --all", file=sys.stderr)
            return EXIT_USAGE
        state = runner.recover(args.run_id)
    emit(args, state, render_run(state) + pending_text(state))
    return 0


def _letter(row: Any) -> dict[str, Any]:
    return row.model_dump(mode="json")


def cmd_deadletter(args: argparse.Namespace) -> int:
    """List dead letters, or replay one with the same idempotency key."""
    from closedloop.graphs.deadletters import replay_dead_letter
    from closedloop.graphs.runner import LoopRunner
    from closedloop.store.outbox import list_dead_letters

    with LoopRunner(settings_from(args)) as runner:
        if args.action == "list":
            rows = [
                _letter(r) for r in list_dead_letters(runner.engine, None if args.all else "open")
            ]
            text = "\n".join(
                f"#{r['id']} {r['status']:8} {r['kind']:12} execution {r['execution_id']} "
                f"run {r['run_id']}: {r['reason'][:120]}"
                for r in rows
            )
            emit(args, rows, text or "no dead letters")
            return 0
        result = replay_dead_letter(runner.context, args.id)
    emit(
        args,
        result,
        f"dead letter #{result['dead_letter']} {result['status']}: execution "
        f"{result['execution_id']} is {result['execution_status']}, plan "
        f"{result['plan_status']}",
    )
    return 0 if result["status"] == "resolved" else EXIT_STATE


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register resume and deadletter."""
    r = sub.add_parser("resume", help="resume a run interrupted by a crash from its checkpoint")
    r.add_argument("run_id", nargs="?", help="id of the run")
    r.add_argument("--all", action="store_true", help="every interrupted run")
    add_json(r)
    r.set_defaults(func=cmd_resume)

    d = sub.add_parser("deadletter", help="writes that could not be completed: list or replay")
    dsub = d.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = dsub.add_parser("list", help="open dead letters (--all: resolved ones too)")
    ls.add_argument("--all", action="store_true", help="resolved dead letters too")
    add_json(ls)
    ls.set_defaults(func=cmd_deadletter)
    rp = dsub.add_parser("replay", help="send a dead letter again with the same idempotency key")
    rp.add_argument("id", type=int, help="dead letter number")
    add_json(rp)
    rp.set_defaults(func=cmd_deadletter)
