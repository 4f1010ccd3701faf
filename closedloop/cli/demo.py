"""``closedloop demo``: the whole loop against a bundled sandbox (``closedloop.demo``)."""

from __future__ import annotations

import argparse

from closedloop.cli.common import add_json, emit, loop_exit_code, settings_from


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo to a verdict and print the run with its audit chain."""
    from closedloop.demo import run_demo
    from closedloop.report import audit_chain, render_run

    state = run_demo(settings_from(args), seed=args.seed, history_days=args.history_days,
                     observe_days=args.observe_days, auto_approve=args.yes, quiet=args.json,
                     domain=args.domain)
    emit(args, {"run_id": state["run_id"], "outcome": state.get("outcome"),
                "steps": state["steps"], "audit_chain": audit_chain(state)}, render_run(state))
    return loop_exit_code(state)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``demo``."""
    d = sub.add_parser("demo", help="run the whole loop against a bundled sandbox on loopback")
    d.add_argument("--domain", choices=("helpdesk", "o2c"), default="helpdesk",
                   help="which sandbox (and its connector): helpdesk or order-to-cash")
    d.add_argument("--yes", action="store_true", help="approve the plan without asking")
    add_json(d)
    d.add_argument("--seed", type=int, default=7, help="seed of the simulated system")
    d.add_argument("--history-days", type=float, default=21.0,
                   help="days the sandbox runs before observing")
    d.add_argument("--observe-days", type=float, default=14.0,
                   help="days it runs on after the change")
    d.set_defaults(func=cmd_demo)
