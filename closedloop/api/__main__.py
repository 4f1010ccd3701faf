"""Serve the REST API and the Teams bot: ``python -m closedloop.api [--host H] [--port P]``."""

from __future__ import annotations

import argparse
import sys

from closedloop.api.server import serve
from closedloop.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and serve until interrupted."""
    p = argparse.ArgumentParser(prog="python -m closedloop.api", description=__doc__)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (default loopback; every endpoint but /health, /metrics and "
        "/docs needs an API key or OAuth token)",
    )
    p.add_argument("--port", type=int, default=8080, help="port to listen on")
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level",
    )
    args = p.parse_args(argv)
    serve(get_settings(), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
