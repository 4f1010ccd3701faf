"""FastAPI app of the simulated helpdesk: clock, events, staffing and rules over HTTP.

All state lives in one :class:`~closedloop.sandbox.simulation.Simulation` (behind
its lock) plus an idempotency ledger. Writes (staffing, rules) need an
``Idempotency-Key`` header; replays return the first response unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from closedloop.sandbox.idempotency import IdempotencyLedger
from closedloop.sandbox.models import (
    ErrorBody,
    EventsPage,
    QueueState,
    RuleDeleted,
    RuleIn,
    RuleOut,
    SandboxConfig,
    StaffingIn,
    StaffingOut,
)
from closedloop.sandbox.params import DEFAULT_REGIME, params_for
from closedloop.sandbox.rules import Rule
from closedloop.sandbox.service import (
    MAX_KEY_LENGTH,
    IdempotencyKey,
    add_clock_routes,
    add_writes_route,
    clock_lifespan,
    install_bearer_auth,
    keyed_write,
)
from closedloop.sandbox.servicenow import add_servicenow_routes
from closedloop.sandbox.simulation import SimEvent, Simulation

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

    def add_rule(self, body: RuleIn) -> dict[str, Any]:
        """Activate a new rule (the caller holds the simulation lock); its stored record."""
        self.rule_counter += 1
        rule_id = f"R{self.rule_counter:04d}"
        value = body.condition.value
        self.sim.add_rule(Rule(
            rule_id=rule_id, name=body.name, field=body.condition.field,
            op=body.condition.op, value=value if isinstance(value, str) else tuple(value),
            action_type=body.action.type, queue=getattr(body.action, "queue", None),
            treatment_share=body.treatment_share,
        ))
        out = {"rule_id": rule_id, **body.model_dump(mode="json"),
               "created_at": self.sim.calendar.iso(self.sim.now)}
        self.rules[rule_id] = out
        return out

    def remove_rule(self, rule_id: str) -> bool:
        """Deactivate a rule (the caller holds the simulation lock); False if unknown."""
        if rule_id not in self.rules:
            return False
        self.sim.remove_rule(rule_id)
        del self.rules[rule_id]
        return True

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
        status, payload = keyed_write(self.ledger, self.sim, request, key, body, apply, _reused)
        return JSONResponse(payload, status_code=status)


def _reused(key: str) -> dict[str, Any]:
    return {
        "error": "idempotency_key_reused",
        "detail": f"Idempotency-Key {key!r} was already used for a different request",
    }


def create_app(
    seed: int = 7, start: datetime | None = None, speed: float = 0.0,
    api_token: str | None = None, regime: str = DEFAULT_REGIME,
    servicenow_auth: tuple[str, str] | None = None,
) -> FastAPI:
    """Build the sandbox app: a seeded helpdesk simulation behind a small REST API.

    ``speed`` > 0 runs the clock in the background (simulated seconds per real
    second); 0 leaves it manual (``POST /clock/advance``). With ``api_token`` every
    endpoint except ``/health`` requires ``Authorization: Bearer <token>``.
    ``regime`` names the hidden dynamics (:data:`closedloop.sandbox.params.REGIMES`;
    ValueError for an unknown one); the API never reveals it. The same simulation is
    also served as a ServiceNow-style Table API (:mod:`closedloop.sandbox.servicenow`),
    behind basic auth when ``servicenow_auth`` = (user, password) is given.
    """
    state = _State(Simulation(seed=seed, start=start, params=params_for(regime)), speed)
    sim = state.sim

    app = FastAPI(
        title="closedloop sandbox helpdesk",
        version="1.0",
        description="A simulated enterprise IT helpdesk (ITSM) with hidden dynamics, "
        "for demos, tests and evals. Times come from the simulation clock.",
        lifespan=clock_lifespan(sim, speed),
    )
    app.state.sandbox = state

    if api_token:
        install_bearer_auth(app, api_token, lambda: _error(
            401, "unauthorized", "Send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"}))

    add_clock_routes(app, sim, speed)

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
            return 201, state.add_rule(body)

        return state.idempotent(request, idempotency_key, body.model_dump(mode="json"), apply)

    @app.delete("/rules/{rule_id}", summary="Deactivate a rule (assigned tickets keep labels)",
                response_model=RuleDeleted, responses=_ERRORS)
    def delete_rule(
        rule_id: str, request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        def apply() -> tuple[int, dict[str, Any]]:
            if not state.remove_rule(rule_id):
                return 404, {"error": "unknown_rule", "detail": f"No active rule {rule_id!r}"}
            return 200, {"rule_id": rule_id, "deleted": True}

        return state.idempotent(request, idempotency_key, None, apply)

    add_writes_route(app, sim, state.ledger)
    add_servicenow_routes(app, state, basic_auth=servicenow_auth)
    return app


__all__ = ["create_app"]
