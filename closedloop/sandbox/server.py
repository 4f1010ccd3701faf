"""Run a sandbox app with uvicorn on loopback, in a background thread or in the foreground.

Two domains are bundled: ``helpdesk`` (the default) and ``o2c`` (order-to-cash).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import uvicorn
from fastapi import FastAPI

from closedloop.sandbox.app import create_app
from closedloop.sandbox.faults import FaultConfig, install_faults
from closedloop.sandbox.o2c.app import create_app as create_o2c_app
from closedloop.sandbox.o2c.params import REGIMES as O2C_REGIMES
from closedloop.sandbox.params import DEFAULT_REGIME
from closedloop.sandbox.params import REGIMES as HELPDESK_REGIMES

DEFAULT_HOST = "127.0.0.1"
#: App factory per domain; each takes seed, start, speed, api_token and regime keywords.
DOMAINS: dict[str, Callable[..., FastAPI]] = {"helpdesk": create_app, "o2c": create_o2c_app}
#: The named regimes (hidden dynamics) of each domain, with a one-line summary each.
REGIMES: dict[str, dict[str, str]] = {
    "helpdesk": {name: r.summary for name, r in HELPDESK_REGIMES.items()},
    "o2c": {name: r.summary for name, r in O2C_REGIMES.items()},
}


def create_domain_app(domain: str = "helpdesk", **options: Any) -> FastAPI:
    """The app of a bundled domain (ValueError for an unknown one)."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown sandbox domain {domain!r}; known: {', '.join(DOMAINS)}")
    app = DOMAINS[domain](**options)
    install_faults(app, FaultConfig.from_env())  # off unless CLOSEDLOOP_SANDBOX_FAULTS or PUT /faults
    return app


def bind_socket(host: str = DEFAULT_HOST, port: int = 0) -> socket.socket:
    """A listening-ready TCP socket bound to ``host:port`` (port 0 picks a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class SandboxServer:
    """The sandbox served by uvicorn in a background thread on 127.0.0.1.

    Use as a context manager (``with SandboxServer() as server: server.url``) or call
    ``start()`` / ``stop()``. ``port=0`` picks a free port. ``domain`` picks the
    bundled app (``helpdesk`` or ``o2c``) and ``regime`` its hidden dynamics (see
    :data:`REGIMES`); ``app`` serves a ready-made app instead.
    """

    def __init__(
        self, seed: int = 7, port: int = 0, speed: float = 0.0,
        api_token: str | None = None, start: datetime | None = None,
        host: str = DEFAULT_HOST, domain: str = "helpdesk", app: FastAPI | None = None,
        regime: str = DEFAULT_REGIME,
    ) -> None:
        self.seed = seed
        self.port = port
        self.speed = speed
        self.api_token = api_token
        self.start_time = start
        self.host = host
        self.domain = domain
        self.regime = regime
        self.app = app if app is not None else create_domain_app(
            domain, seed=seed, start=start, speed=speed, api_token=api_token, regime=regime)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (valid after ``start()``)."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        """Bind, start serving in a daemon thread and wait until it accepts requests."""
        if self._thread is not None:
            return self
        self._socket = bind_socket(self.host, self.port)
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]},
            name=f"sandbox-{self.port}", daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sandbox server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit, wait for the thread and release the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server, self._thread, self._socket = None, None, None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
