"""Fault knobs for the sandboxes: the bad days of an enterprise API, on loopback.

Per request (control routes excepted), with seeded randomness: a 5xx before anything
happens (``error_rate``), a 429 with ``Retry-After`` (``throttle_rate``), extra latency
(``latency_s``), a slow answer past the client's timeout while the write still happens
(``timeout_rate``, ``timeout_s``), and an answer lost after the write committed: the
connection is cut after the status line (``lost_rate``). ``correlation`` is the chance
that a fault repeats on the next request (bursts). Reads get faults too unless
``writes_only``.

Set them with ``CLOSEDLOOP_SANDBOX_FAULTS`` (JSON) at start or ``PUT /faults`` at run time;
``GET /faults`` shows the knobs and how many faults of each kind were injected.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

FAULTS_ENV = "CLOSEDLOOP_SANDBOX_FAULTS"
CONTROL_PATHS = (
    "/health",
    "/clock",
    "/clock/advance",
    "/writes",
    "/faults",
    "/openapi.json",
    "/docs",
    "/redoc",
)
KINDS = ("error", "throttle", "timeout", "lost")


class FaultConfig(BaseModel):
    """The knobs (rates are probabilities per request, 0..1)."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_status: int = Field(default=503, ge=500, le=599)
    throttle_rate: float = Field(default=0.0, ge=0, le=1)
    retry_after_s: float = Field(default=1.0, ge=0, le=3600)
    latency_s: float = Field(default=0.0, ge=0, le=60)
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    timeout_s: float = Field(default=2.0, ge=0, le=300)
    lost_rate: float = Field(default=0.0, ge=0, le=1)
    correlation: float = Field(default=0.0, ge=0, le=1)
    writes_only: bool = False
    seed: int = 0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> FaultConfig:
        """The knobs in ``CLOSEDLOOP_SANDBOX_FAULTS`` (none: no faults); ValueError if malformed."""
        raw = (os.environ if env is None else env).get(FAULTS_ENV, "").strip()
        if not raw:
            return cls()
        try:
            return cls.model_validate(json.loads(raw))
        except ValueError as exc:
            raise ValueError(f"{FAULTS_ENV} is not a valid fault config: {exc}") from exc


class FaultState:
    """The live knobs, the random stream and the counts (thread-safe)."""

    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self.set(config)

    def set(self, config: FaultConfig) -> None:
        """Replace the knobs (and restart the seeded stream and the counts)."""
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)
            self._last: str | None = None
            self.counts = dict.fromkeys(KINDS, 0)
            self.requests = 0

    def draw(self, method: str, path: str) -> str | None:
        """The fault for this request (None: none)."""
        with self._lock:
            c = self.config
            if path in CONTROL_PATHS or (c.writes_only and method == "GET"):
                return None
            self.requests += 1
            if self._last is not None and self._rng.random() < c.correlation:
                kind: str | None = self._last
            else:
                kind = None
                roll = self._rng.random()
                for name, rate in (
                    ("error", c.error_rate),
                    ("throttle", c.throttle_rate),
                    ("timeout", c.timeout_rate),
                    ("lost", c.lost_rate),
                ):
                    if roll < rate:
                        kind = name
                        break
                    roll -= rate
            if kind == "lost" and method == "GET":
                kind = "error"  # a lost read answer is just a failed read
            self._last = kind
            if kind is not None:
                self.counts[kind] += 1
            return kind


class _LostAnswer(Exception):
    """Raised after the status line went out: the server cuts the connection."""


class FaultMiddleware:
    """ASGI middleware injecting the faults of a :class:`FaultState`."""

    def __init__(self, app: Any, state: FaultState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = self.state.draw(scope["method"], scope["path"])
        config = self.state.config
        if config.latency_s and scope["path"] not in CONTROL_PATHS:
            await asyncio.sleep(config.latency_s)
        if kind == "error":
            await _answer(
                send,
                config.error_status,
                {"error": "injected_fault", "detail": "service unavailable"},
            )
            return
        if kind == "throttle":
            await _answer(
                send,
                429,
                {"error": "throttled", "detail": "too many requests"},
                {"retry-after": f"{config.retry_after_s:g}"},
            )
            return
        if kind == "timeout":  # slow: the client gives up, the write still happens afterwards
            await asyncio.sleep(config.timeout_s)
        if kind != "lost":
            await self.app(scope, receive, send)
            return

        async def cut(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                await send(message)
                raise _LostAnswer("answer lost after commit (injected)")
            await send(message)

        await self.app(scope, receive, cut)


async def _answer(
    send: Any, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    raw = json.dumps(body).encode()
    pairs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    pairs += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": pairs})
    await send({"type": "http.response.body", "body": raw})


def install_faults(app: FastAPI, config: FaultConfig | None = None) -> FaultState:
    """Add the fault middleware and ``GET``/``PUT /faults`` to a sandbox app; its live state."""
    state = FaultState(config or FaultConfig())
    app.add_middleware(FaultMiddleware, state=state)

    def get_faults() -> dict[str, Any]:
        return {
            "config": state.config.model_dump(),
            "counts": dict(state.counts),
            "requests": state.requests,
        }

    def put_faults(body: FaultConfig) -> dict[str, Any]:
        state.set(body)
        return get_faults()

    app.add_api_route("/faults", get_faults, methods=["GET"], include_in_schema=False)
    app.add_api_route("/faults", put_faults, methods=["PUT"], include_in_schema=False)
    app.state.faults = state
    return state


__all__ = ["FAULTS_ENV", "FaultConfig", "FaultState", "install_faults"]
