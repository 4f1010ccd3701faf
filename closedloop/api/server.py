"""Serve the REST API and the Teams bot with uvicorn on loopback (``serve``), as the CLI does."""

from __future__ import annotations

import ipaddress
import logging

import uvicorn

from closedloop.settings import Settings, get_settings

log = logging.getLogger("closedloop.api")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_server(
    settings: Settings | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "info",
) -> uvicorn.Server:
    """A uvicorn server for the app of ``settings`` (not started: call ``.run()``)."""
    from closedloop.api.app import create_app
    from closedloop.identity import DEV_KEY_FILE, ensure_dev_key

    settings = settings or get_settings()
    created = ensure_dev_key(settings)
    if created is not None:
        # Printed once, when created; it stays readable by its owner only in the file.
        print(
            f"closedloop: no API key was configured; created the dev key (roles analyst, approver, admin)\n"
            f"  {created}\n  kept in {settings.home / DEV_KEY_FILE} (mode 0600); send it as "
            "'Authorization: Bearer <key>'",
            flush=True,
        )
    if not _is_loopback(host):
        log.warning(
            "serving the closedloop API on %s: use TLS in front of it (a proxy) and keys or OAuth "
            "tokens per person rather than the dev key",
            host,
        )
    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_level=log_level, lifespan="on"
    )
    return uvicorn.Server(config)


def serve(
    settings: Settings | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "info",
) -> None:
    """Serve the REST API and ``POST /teams/messages`` until interrupted (blocking)."""
    build_server(settings, host, port, log_level).run()
