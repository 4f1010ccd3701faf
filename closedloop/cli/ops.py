"""Operations commands: ``policy``, ``sandbox``, ``serve``, ``eval``, ``db``."""

from __future__ import annotations

import argparse

from closedloop.cli.common import (
    MODES,
    add_json,
    current_user,
    emit,
    settings_from,
)
from closedloop.cli.evaluate import add_eval_command


def cmd_policy(args: argparse.Namespace) -> int:
    """Show a scope's policy; ``--set-mode``/``--kill-switch`` change it (audited, channel cli)."""
    from closedloop.governance import policy_for, set_policy
    from closedloop.store.db import open_store, transaction

    settings = settings_from(args)
    with transaction(open_store(settings.resolved_database_url())) as session:
        if args.set_mode or args.kill_switch:
            kill = None if args.kill_switch is None else args.kill_switch == "on"
            policy = set_policy(session, args.scope, mode=args.set_mode, kill_switch=kill,
                                by=args.by, channel="cli", default_mode=settings.default_mode)
        else:
            policy = policy_for(session, args.scope, settings.default_mode)
        data = policy.model_dump(mode="json")
    emit(args, data, f"scope {data['scope']}: mode {data['mode']}, kill switch "
                     f"{'ON' if data['kill_switch'] else 'off'}, caps {data['caps']}")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Serve a simulated enterprise system (helpdesk or order-to-cash) until interrupted."""
    from closedloop.sandbox.__main__ import main as sandbox_main

    return sandbox_main(["--domain", args.domain, "--regime", args.regime, "--port", str(args.port),
                         "--seed", str(args.seed), "--speed", str(args.speed)])


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the REST API and the Teams-style bot until interrupted."""
    from closedloop.api.server import serve

    serve(settings_from(args), host=args.host, port=args.port)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """Migrate the store to the latest schema."""
    from closedloop.store.migrate import upgrade

    url = settings_from(args).resolved_database_url()
    upgrade(url)
    print(f"store at {url.split('@')[-1]} is at the latest schema")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register policy, sandbox, eval, serve and db."""
    po = sub.add_parser("policy", help="show or change a scope's autonomy and kill switch")
    po.add_argument("scope", help="the scope, e.g. helpdesk")
    po.add_argument("--set-mode", choices=MODES, help="new autonomy mode of the scope")
    po.add_argument("--kill-switch", choices=["on", "off"],
                    help="on stops every write of the scope")
    po.add_argument("--by", default=current_user(),
                    help="who changes the policy, for the audit trail (default: $USER)")
    add_json(po)
    po.set_defaults(func=cmd_policy, mode=None)

    sb = sub.add_parser("sandbox", help="serve a simulated enterprise system's API on loopback")
    sb.add_argument("--domain", choices=("helpdesk", "o2c"), default="helpdesk",
                    help="helpdesk (ITSM tickets) or o2c (order-to-cash, SAP OData-shaped)")
    sb.add_argument("--regime", default="default",
                    help="its hidden dynamics, for benchmarks (python -m closedloop.sandbox "
                         "--list-regimes)")
    sb.add_argument("--port", type=int, default=8765, help="port (0 = any free port)")
    sb.add_argument("--seed", type=int, default=7, help="seed of the simulated system")
    sb.add_argument("--speed", type=float, default=0.0,
                    help="simulated seconds per real second (0 = manual clock)")
    sb.set_defaults(func=cmd_sandbox)

    add_eval_command(sub)

    sv = sub.add_parser("serve", help="serve the REST API and the Teams approval bot; creates a dev "
                                      "API key in CLOSEDLOOP_HOME/api-key on first start")
    sv.add_argument("--host", default="127.0.0.1",
                    help="interface to listen on (default loopback); every endpoint but /health, "
                         "/metrics and /docs needs an API key or OAuth token (docs/api.md)")
    sv.add_argument("--port", type=int, default=8080, help="port to listen on")
    sv.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="migrate the store to the latest schema")
    db.add_argument("action", choices=["upgrade"], help="upgrade: migrate to the latest schema")
    db.set_defaults(func=cmd_db)
