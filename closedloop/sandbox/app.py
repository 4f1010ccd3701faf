"""FastAPI app of the simulated helpdesk: clock, events, staffing and rules over HTTP.

All state lives in one :class:`~closedloop.sandbox.simulation.Simulation` (behind
its lock) plus an idempotency ledger. Writes (staffing, rules) need an
``Idempotency-Key`` header; replays return the first response unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from closedloop.sandbox.idempotency import IdempotencyLedger, request_fingerprint
from closedloop.sandbox.models import (
    AdvanceRequest,
    AdvanceResult,
    ClockState,
    ErrorBody,
    EventsPage,
    Health,
    QueueState,
    RuleDeleted,
    RuleIn,
    RuleOut,
    SandboxConfig,
    StaffingIn,
    StaffingOut,
    WriteRecord,
)
from closedloop.sandbox.rules import Rule
from closedloop.sandbox.simulation import SimEvent, Simulation

TICK_SECONDS = 0.2
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", description="Unique per write; replays are safe")
]
MAX_KEY_LENGTH = 255
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Missing or invalid Idempotency-Key"},
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorBody, "description": "Unknown queue or rule"},
    409: {"model": ErrorBody, "description": "Idempotency-Key reused with a different request"},
}


def _error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


class _State:
    """Everything one app instance owns."""

    def __init__(self, sim: Simulation, speed: float) -> None:
        self.sim = sim
        self.speed = speed
        self.ledger = IdempotencyLedger()
        self.rules: dict[str, dict[str, Any]] = {}
        self.rule_counter = 0

    def event_json(self, event: SimEvent) -> dict[str, Any]:
        """One event as its HTTP representation."""
        return {
            "seq": event.seq,
            "event_id": f"ev-{self.sim.seed}-{event.seq:08d}",
            "case_id": event.case_id,
            "activity": event.activity,
            "lifecycle": event.lifecycle,
            "timestamp": self.sim.calendar.iso(event.t_ms / 1000.0),
            "resource": event.resource,
            "attributes": event.attributes,
        }

    def idempotent(
        self, request: Request, key: str | None, body: Any,
        apply: Callable[[], tuple[int, dict[str, Any]]],
    ) -> JSONResponse:
        """Run ``apply`` once per Idempotency-Key; replay or reject reuse of the key."""
        if not key or not key.strip():
            return _error(400, "missing_idempotency_key",
                          "Writes need an Idempotency-Key header (any unique string per write)")
        if len(key) > MAX_KEY_LENGTH:
            return _error(400, "invalid_idempotency_key",
                          f"Idempotency-Key is longer than {MAX_KEY_LENGTH} characters")
        method, path = request.method, request.url.path
        fingerprint = request_fingerprint(method, path, body)
        sim = self.sim
        with sim.lock:
            stored = self.ledger.lookup(key)
            replayed = stored is not None and stored.fingerprint == fingerprint
            if stored is not None and not replayed:
                status, payload = 409, {
                    "error": "idempotency_key_reused",
                    "detail": f"Idempotency-Key {key!r} was already used for a different request",
                }
            elif stored is not None:
                status, payload = stored.status, stored.body
            else:
                status, payload = apply()
                self.ledger.store(key, fingerprint, status, payload)
            self.ledger.record(method=method, path=path, key=key, replayed=replayed,
                               status=status, at_seq=sim.last_seq(), at=sim.calendar.iso(sim.now))
        return JSONResponse(payload, status_code=status)


async def _run_clock(sim: Simulation, speed: float) -> None:
    """Advance the simulation ``speed`` simulated seconds per real second, forever."""
    last = time.monotonic()
    while True:
        await asyncio.sleep(TICK_SECONDS)
        now = time.monotonic()
        elapsed, last = now - last, now
        await asyncio.to_thread(sim.advance, elapsed * speed / 3600.0)


def create_app(
    seed: int = 7, start: datetime | None = None, speed: float = 0.0,
    api_token: str | None = None,
) -> FastAPI:
    """Build the sandbox app: a seeded helpdesk simulation behind a small REST API.

    ``speed`` > 0 runs the clock in the background (simulated seconds per real
    second); 0 leaves it manual (``POST /clock/advance``). With ``api_token`` every
    endpoint except ``/health`` requires ``Authorization: Bearer <token>``.
    """
    state = _State(Simulation(seed=seed, start=start), speed)
    sim = state.sim

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_run_clock(sim, speed)) if speed > 0 else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="closedloop sandbox helpdesk",
        version="1.0",
        description="A simulated enterprise IT helpdesk (ITSM) with hidden dynamics, "
        "for demos, tests and evals. Times come from the simulation clock.",
        lifespan=lifespan,
    )
    app.state.sandbox = state

    if api_token:
        _install_auth(app, api_token)

    @app.get("/health", summary="Liveness check", response_model=Health)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/clock", summary="Current simulation time", response_model=ClockState)
    def get_clock() -> dict[str, Any]:
        with sim.lock:
            return {"now": sim.calendar.iso(sim.now), "speed": speed}

    @app.post("/clock/advance", summary="Run the simulation forward (manual clock)",
              response_model=AdvanceResult)
    def advance_clock(body: AdvanceRequest) -> dict[str, Any]:
        with sim.lock:
            generated = sim.advance(body.hours)
            return {"now": sim.calendar.iso(sim.now), "events_generated": generated}

    @app.get("/events", summary="Ticket events, oldest first, paginated by seq",
             response_model=EventsPage)
    def get_events(
        after_seq: Annotated[int, Query(ge=0, description="Only events with a larger seq")] = 0,
        limit: Annotated[int, Query(ge=1, le=10000, description="Page size")] = 5000,
        since: Annotated[
            datetime | None, Query(description="Only events at or after (ISO 8601)")
        ] = None,
        until: Annotated[datetime | None, Query(description="Only events before (ISO 8601)")] = None,
    ) -> JSONResponse:
        page, next_after = sim.query_events(after_seq, limit, since, until)
        # Built directly (the response model documents it): pages are large.
        return JSONResponse(
            {"events": [state.event_json(e) for e in page], "next_after_seq": next_after}
        )

    @app.get("/config", summary="Current staffing and active rules", response_model=SandboxConfig)
    def get_config() -> dict[str, Any]:
        with sim.lock:
            return {"staffing": dict(sim.staffing), "rules": list(state.rules.values())}

    @app.get("/queues", summary="Live agents, busy agents and waiting tickets per queue",
             response_model=dict[str, QueueState])
    def get_queues() -> dict[str, Any]:
        return sim.queue_stats()

    @app.put("/config/staffing/{queue}", summary="Set the number of agents of a queue",
             response_model=StaffingOut, responses=_ERRORS)
    def put_staffing(
        queue: str, body: StaffingIn, request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        def apply() -> tuple[int, dict[str, Any]]:
            if queue not in sim.staffing:
                known = ", ".join(sim.staffing)
                return 404, {"error": "unknown_queue",
                             "detail": f"Unknown queue {queue!r}; known queues: {known}"}
            previous = sim.set_staffing(queue, body.agents)
            return 200, {"queue": queue, "agents": body.agents, "previous_agents": previous}

        return state.idempotent(request, idempotency_key, body.model_dump(mode="json"), apply)

    @app.post("/rules", summary="Add an automation rule with a treatment/control split",
              response_model=RuleOut, status_code=201, responses=_ERRORS)
    def post_rule(
        body: RuleIn, request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        def apply() -> tuple[int, dict[str, Any]]:
            state.rule_counter += 1
            rule_id = f"R{state.rule_counter:04d}"
            value = body.condition.value
            sim.add_rule(Rule(
                rule_id=rule_id, name=body.name, field=body.condition.field,
                op=body.condition.op, value=value if isinstance(value, str) else tuple(value),
                action_type=body.action.type, queue=getattr(body.action, "queue", None),
                treatment_share=body.treatment_share,
            ))
            out = {"rule_id": rule_id, **body.model_dump(mode="json"),
                   "created_at": sim.calendar.iso(sim.now)}
            state.rules[rule_id] = out
            return 201, out

        return state.idempotent(request, idempotency_key, body.model_dump(mode="json"), apply)

    @app.delete("/rules/{rule_id}", summary="Deactivate a rule (assigned tickets keep labels)",
                response_model=RuleDeleted, responses=_ERRORS)
    def delete_rule(
        rule_id: str, request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        def apply() -> tuple[int, dict[str, Any]]:
            if rule_id not in state.rules:
                return 404, {"error": "unknown_rule", "detail": f"No active rule {rule_id!r}"}
            sim.remove_rule(rule_id)
            del state.rules[rule_id]
            return 200, {"rule_id": rule_id, "deleted": True}

        return state.idempotent(request, idempotency_key, None, apply)

    @app.get("/writes", summary="Every keyed write received, replays included",
             response_model=list[WriteRecord])
    def get_writes() -> list[dict[str, Any]]:
        with sim.lock:
            return list(state.ledger.writes)

    return app


def _install_auth(app: FastAPI, token: str) -> None:
    """Require ``Authorization: Bearer <token>`` everywhere but /health (and document it)."""
    expected = f"Bearer {token}".encode()

    @app.middleware("http")
    async def check_token(request: Request, call_next: Callable[..., Any]) -> Any:
        if request.url.path == "/health":
            return await call_next(request)
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return _error(401, "unauthorized", "Send Authorization: Bearer <token>",
                          headers={"WWW-Authenticate": "Bearer"})
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


__all__ = ["create_app"]
