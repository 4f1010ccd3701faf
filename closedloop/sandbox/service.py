"""The HTTP plumbing both sandbox apps share: clock, control routes, keyed writes, auth.

Each domain's app (:mod:`closedloop.sandbox.app`, :mod:`closedloop.sandbox.o2c.app`)
keeps its own resources and error shapes and takes from here the background
clock, the ``/health``, ``/clock``, ``/clock/advance`` and ``/writes`` routes,
the Idempotency-Key replay logic and the bearer-token middleware.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response

from closedloop.sandbox.engine import EventSimulation
from closedloop.sandbox.idempotency import IdempotencyLedger, request_fingerprint
from closedloop.sandbox.models import AdvanceRequest, AdvanceResult, ClockState, Health, WriteRecord

TICK_SECONDS = 0.2
MAX_KEY_LENGTH = 255
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", description="Unique per write; replays are safe")
]
Sim = EventSimulation[Any, Any]


async def run_clock(sim: Sim, speed: float) -> None:
    """Advance the simulation ``speed`` simulated seconds per real second, forever."""
    last = time.monotonic()
    while True:
        await asyncio.sleep(TICK_SECONDS)
        now = time.monotonic()
        elapsed, last = now - last, now
        await asyncio.to_thread(sim.advance, elapsed * speed / 3600.0)


def clock_lifespan(
    sim: Sim, speed: float,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """An app lifespan that runs :func:`run_clock` while the app serves (when ``speed`` > 0)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(run_clock(sim, speed)) if speed > 0 else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return lifespan


def keyed_write(
    ledger: IdempotencyLedger, sim: Sim, request: Request, key: str, body: Any,
    apply: Callable[[], tuple[int, Any]], reused: Callable[[str], dict[str, Any]],
) -> tuple[int, Any]:
    """Run ``apply`` once per (validated) Idempotency-Key and log the write; (status, body).

    A replay with the same request returns the stored answer; reuse of the key for a
    different request answers 409 with ``reused(key)``.
    """
    method, path = request.method, request.url.path
    fingerprint = request_fingerprint(method, path, body)
    with sim.lock:
        stored = ledger.lookup(key)
        replayed = stored is not None and stored.fingerprint == fingerprint
        if stored is not None and not replayed:
            status, payload = 409, reused(key)
        elif stored is not None:
            status, payload = stored.status, stored.body
        else:
            status, payload = apply()
            ledger.store(key, fingerprint, status, payload or {})
        ledger.record(method=method, path=path, key=key, replayed=replayed,
                      status=status, at_seq=sim.last_seq(), at=sim.calendar.iso(sim.now))
    return status, payload


def add_clock_routes(app: FastAPI, sim: Sim, speed: float, operation_ids: bool = False) -> None:
    """``GET /health``, ``GET /clock`` and ``POST /clock/advance`` (named when ``operation_ids``)."""

    def op(name: str) -> dict[str, str]:
        return {"operation_id": name} if operation_ids else {}

    @app.get("/health", summary="Liveness check", response_model=Health, **op("health"))
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/clock", summary="Current simulation time", response_model=ClockState,
             **op("getClock"))
    def get_clock() -> dict[str, Any]:
        with sim.lock:
            return {"now": sim.calendar.iso(sim.now), "speed": speed}

    @app.post("/clock/advance", summary="Run the simulation forward (manual clock)",
              response_model=AdvanceResult, **op("advanceClock"))
    def advance_clock(body: AdvanceRequest) -> dict[str, Any]:
        with sim.lock:
            generated = sim.advance(body.hours)
            return {"now": sim.calendar.iso(sim.now), "events_generated": generated}


def add_writes_route(
    app: FastAPI, sim: Sim, ledger: IdempotencyLedger, operation_ids: bool = False,
) -> None:
    """``GET /writes``: every keyed write received, replays included."""
    op = {"operation_id": "listWrites"} if operation_ids else {}

    @app.get("/writes", summary="Every keyed write received, replays included",
             response_model=list[WriteRecord], **op)
    def get_writes() -> list[dict[str, Any]]:
        with sim.lock:
            return list(ledger.writes)


def install_bearer_auth(app: FastAPI, token: str, unauthorized: Callable[[], Response]) -> None:
    """Require ``Authorization: Bearer <token>`` everywhere but /health (and document it).

    ``unauthorized()`` builds the domain's 401 answer.
    """
    expected = f"Bearer {token}".encode()

    @app.middleware("http")
    async def check_token(request: Request, call_next: Callable[..., Any]) -> Any:
        if request.url.path == "/health":
            return await call_next(request)
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return unauthorized()
        return await call_next(request)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearerAuth": {"type": "http", "scheme": "bearer"}
            }
            for path, operations in schema.get("paths", {}).items():
                if path != "/health":
                    for operation in operations.values():
                        operation["security"] = [{"bearerAuth": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
