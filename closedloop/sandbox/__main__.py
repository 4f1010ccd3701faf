"""Serve a sandbox in the foreground: ``python -m closedloop.sandbox --port 8765 --seed 7``.

``--domain o2c`` serves the order-to-cash system instead of the helpdesk;
``--regime NAME`` picks the domain's hidden dynamics (``--list-regimes`` shows them).

Prints the base URL once the port is bound, then serves until killed. The bearer
token, if any, is read from ``--api-token`` or the ``CLOSEDLOOP_SANDBOX_TOKEN``
environment variable (preferred: it stays out of the process list).
"""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from closedloop.sandbox.params import DEFAULT_REGIME
from closedloop.sandbox.server import (
    DEFAULT_HOST,
    DOMAINS,
    REGIMES,
    bind_socket,
    create_domain_app,
)
from closedloop.sandbox.simclock import parse_iso

TOKEN_ENV = "CLOSEDLOOP_SANDBOX_TOKEN"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, bind the port, print the URL and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m closedloop.sandbox",
                                     description="Simulated enterprise system with an API.")
    parser.add_argument("--domain", choices=sorted(DOMAINS), default="helpdesk",
                        help="which system to simulate (default helpdesk)")
    parser.add_argument("--host", default=DEFAULT_HOST, help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (0 = pick a free one)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--speed", type=float, default=0.0,
                        help="simulated seconds per real second (0 = manual clock)")
    parser.add_argument("--start", default=None,
                        help="simulation start, ISO 8601 UTC (default 2026-01-05T00:00:00Z)")
    parser.add_argument("--api-token", default=None,
                        help=f"require this bearer token (or set {TOKEN_ENV})")
    parser.add_argument("--regime", default=DEFAULT_REGIME,
                        help="hidden dynamics of the domain (default 'default'; "
                        "see --list-regimes)")
    parser.add_argument("--list-regimes", action="store_true",
                        help="print each domain's regimes and exit")
    args = parser.parse_args(argv)
    if args.list_regimes:
        for domain, regimes in REGIMES.items():
            for name, summary in regimes.items():
                print(f"{domain:9} {name:24} {summary}")
        return 0
    if args.regime not in REGIMES[args.domain]:
        parser.error(f"unknown regime {args.regime!r} for {args.domain}; "
                     f"known: {', '.join(REGIMES[args.domain])}")
    if args.speed < 0:
        parser.error("--speed must be >= 0")
    try:
        start = parse_iso(args.start) if args.start else None
    except ValueError:
        parser.error(f"--start is not an ISO 8601 timestamp: {args.start!r}")
    token = args.api_token or os.environ.get(TOKEN_ENV) or None
    app = create_domain_app(args.domain, seed=args.seed, start=start, speed=args.speed,
                            api_token=token, regime=args.regime)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    print(f"http://{args.host}:{port}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
