"""FastAPI app of the o2c sandbox: an SAP-OData-shaped sales order service over a simulation.

The OData service lives under :data:`SERVICE`; the sandbox's own controls
(``/health``, ``/clock``, ``/clock/advance``, ``/writes``) sit at the root. All
state is one :class:`~closedloop.sandbox.o2c.simulation.O2CSimulation` (behind its
lock) plus an idempotency ledger: every write needs an ``Idempotency-Key``
header and a replay returns the first answer unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from closedloop.sandbox.idempotency import IdempotencyLedger
from closedloop.sandbox.o2c import models as m
from closedloop.sandbox.o2c.feeds import (
    ORDER_FIELDS,
    RULE_FIELDS,
    TEAM_FIELDS,
    history_page,
    offset_page,
)
from closedloop.sandbox.o2c.odata import ODataError, error_response
from closedloop.sandbox.o2c.params import (
    CURRENCY,
    DEFAULT_REGIME,
    SALES_ORGANIZATION,
    params_for,
)
from closedloop.sandbox.o2c.rules import AutoApprovalRule
from closedloop.sandbox.o2c.simulation import O2CSimulation
from closedloop.sandbox.service import (
    MAX_KEY_LENGTH,
    IdempotencyKey,
    add_clock_routes,
    add_writes_route,
    clock_lifespan,
    install_bearer_auth,
    keyed_write,
)

SERVICE = "/sap/opu/odata/sap/API_SALES_ORDER_SRV"
DEFAULT_PAGE_SIZE = 5000
Filter = Annotated[str | None, Query(alias="$filter", description="e.g. CustomerSegment eq 'x'")]
OrderBy = Annotated[str | None, Query(alias="$orderby", description="Field [asc|desc], ...")]
Top = Annotated[int | None, Query(alias="$top", ge=1, le=100_000)]
Skip = Annotated[int | None, Query(alias="$skip", ge=0)]
SkipToken = Annotated[str | None, Query(alias="$skiptoken", description="from __next")]
InlineCount = Annotated[str | None, Query(alias="$inlinecount", pattern="^(allpages|none)$")]
Format = Annotated[str | None, Query(alias="$format", pattern="^json$")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": m.ODataErrorBody, "description": "Invalid request or Idempotency-Key"},
    401: {"model": m.ODataErrorBody, "description": "Missing or wrong bearer token"},
    404: {"model": m.ODataErrorBody, "description": "Unknown entity"},
    409: {"model": m.ODataErrorBody, "description": "Idempotency-Key reused for another request"},
}


class _State:
    """Everything one app instance owns."""

    def __init__(self, sim: O2CSimulation, page_size: int) -> None:
        self.sim = sim
        self.page_size = page_size
        self.ledger = IdempotencyLedger()
        self.rules: dict[str, dict[str, Any]] = {}
        self.rule_counter = 0

    def idempotent(self, request: Request, key: str | None, body: Any,
                   apply: Callable[[], tuple[int, dict[str, Any] | None]]) -> Response:
        """Run ``apply`` once per Idempotency-Key; replay or reject reuse of the key."""
        if not key or not key.strip() or len(key) > MAX_KEY_LENGTH:
            return error_response(400, "IdempotencyKey", "Writes need an Idempotency-Key header "
                                  f"of 1 to {MAX_KEY_LENGTH} characters, unique per write")
        status, payload = keyed_write(self.ledger, self.sim, request, key, body, apply, _reused)
        if status == 204:
            return Response(status_code=204)
        return JSONResponse(payload, status_code=status)

    def configuration(self) -> dict[str, Any]:
        """The ``GetConfiguration`` answer."""
        sim = self.sim
        with sim.lock:
            return {"d": {
                "SalesOrganization": SALES_ORGANIZATION, "Currency": CURRENCY,
                "ApprovalThresholdAmount": sim.approval_threshold,
                "Staffing": {n: t.headcount for n, t in sim.teams.items()},
                "WorkingHours": {n: [t.start_hour, t.end_hour] for n, t in sim.teams.items()},
                "AutoApprovalRules": list(self.rules.values()),
                "Now": sim.calendar.iso(sim.now),
            }}

    def threshold(self) -> dict[str, Any]:
        """The approval threshold entity."""
        return {"SalesOrganization": SALES_ORGANIZATION,
                "ThresholdAmount": self.sim.approval_threshold, "Currency": CURRENCY}


def _not_found(what: str, key: str) -> tuple[int, dict[str, Any]]:
    return 404, {"error": {"code": "NotFound", "message": {
        "lang": "en", "value": f"{what} {key!r} does not exist"}}}


def _missing(what: str, key: str) -> JSONResponse:
    status, body = _not_found(what, key)
    return JSONResponse(body, status_code=status)


def _query(**values: Any) -> dict[str, Any]:
    return {f"${k.rstrip('_')}": v for k, v in values.items() if v is not None}


def _reused(key: str) -> dict[str, Any]:
    return {"error": {"code": "IdempotencyKeyReused", "message": {
        "lang": "en", "value": f"Idempotency-Key {key!r} was already used for a "
        "different request"}}}


def create_app(seed: int = 7, start: datetime | None = None, speed: float = 0.0,
               api_token: str | None = None, page_size: int = DEFAULT_PAGE_SIZE,
               regime: str = DEFAULT_REGIME) -> FastAPI:
    """Build the o2c sandbox: a seeded order-to-cash simulation behind an OData-shaped API.

    ``speed`` > 0 runs the clock in the background (simulated seconds per real
    second); 0 leaves it manual (``POST /clock/advance``). With ``api_token`` every
    endpoint except ``/health`` needs ``Authorization: Bearer <token>``.
    ``page_size`` is the server's page size for entity sets and the event feed.
    ``regime`` names the hidden dynamics (:data:`closedloop.sandbox.o2c.params.REGIMES`;
    ValueError for an unknown one); the API never reveals it.
    """
    state = _State(O2CSimulation(seed=seed, start=start, params=params_for(regime)), page_size)
    sim = state.sim

    app = FastAPI(title="closedloop sandbox order-to-cash", version="1.0",
                  lifespan=clock_lifespan(sim, speed),
                  description="A simulated order-to-cash system with an API shaped like SAP "
                  "S/4HANA's sales order OData v2 service, for demos, tests and evals. "
                  "Times come from the simulation clock.")
    app.state.sandbox = state
    if api_token:
        install_bearer_auth(app, api_token, lambda: error_response(
            401, "Unauthorized", "Send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"}))

    @app.exception_handler(ODataError)
    async def odata_error(_: Request, exc: ODataError) -> JSONResponse:
        return error_response(400, "InvalidQuery", str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        return error_response(400, "InvalidRequest", problems)

    add_clock_routes(app, sim, speed, operation_ids=True)
    add_writes_route(app, sim, state.ledger, operation_ids=True)

    @app.get(f"{SERVICE}/A_SalesOrder", summary="Sales orders", response_model=m.OrdersPage,
             operation_id="listSalesOrders", responses=_ERRORS)
    def list_orders(request: Request, filter_: Filter = None, orderby: OrderBy = None,
                    top: Top = None, skip: Skip = None, skiptoken: SkipToken = None,
                    inlinecount: InlineCount = None, format_: Format = None) -> JSONResponse:
        with sim.lock:
            rows = [o.entity(sim.calendar) for o in sim.orders]
        query = _query(filter_=filter_, orderby=orderby, top=top, skip=skip,
                       skiptoken=skiptoken, inlinecount=inlinecount)
        base = str(request.url.replace(query=""))
        return JSONResponse(offset_page(rows, ORDER_FIELDS, query, base, state.page_size))

    @app.get(SERVICE + "/A_SalesOrder('{SalesOrder}')", summary="One sales order",
             response_model=m.OrderOut, operation_id="getSalesOrder", responses=_ERRORS)
    def get_order(SalesOrder: str) -> JSONResponse:
        with sim.lock:
            number = int(SalesOrder) - 5_000_000 if SalesOrder.isdigit() else 0
            if not 1 <= number <= len(sim.orders):
                return _missing("SalesOrder", SalesOrder)
            return JSONResponse({"d": sim.orders[number - 1].entity(sim.calendar)})

    @app.get(f"{SERVICE}/A_SalesOrderStatusHistory", response_model=m.HistoryPage,
             summary="Status history (change documents): one entry per completed activity, "
             "oldest first; page with $skiptoken", operation_id="listSalesOrderStatusHistory",
             responses=_ERRORS)
    def list_history(request: Request, filter_: Filter = None, orderby: OrderBy = None,
                     top: Top = None, skip: Skip = None, skiptoken: SkipToken = None,
                     inlinecount: InlineCount = None, format_: Format = None) -> JSONResponse:
        query = _query(filter_=filter_, orderby=orderby, top=top, skip=skip,
                       skiptoken=skiptoken, inlinecount=inlinecount)
        base = str(request.url.replace(query=""))
        return JSONResponse(history_page(sim, query, base, state.page_size))

    @app.get(f"{SERVICE}/A_Team", summary="Teams: headcount, working hours, live load",
             response_model=m.TeamsPage, operation_id="listTeams", responses=_ERRORS)
    def list_teams(request: Request, filter_: Filter = None, orderby: OrderBy = None,
                   format_: Format = None) -> JSONResponse:
        with sim.lock:
            rows = [t.entity() for t in sim.teams.values()]
        query = _query(filter_=filter_, orderby=orderby)
        base = str(request.url.replace(query=""))
        return JSONResponse(offset_page(rows, TEAM_FIELDS, query, base, state.page_size))

    @app.get(SERVICE + "/A_Team('{Team}')", summary="One team", response_model=m.TeamOut,
             operation_id="getTeam", responses=_ERRORS)
    def get_team(Team: str) -> JSONResponse:
        with sim.lock:
            if Team not in sim.teams:
                return _missing("Team", Team)
            return JSONResponse({"d": sim.teams[Team].entity()})

    @app.put(SERVICE + "/A_Team('{Team}')", summary="Set a team's headcount (and hours)",
             response_model=m.TeamOut, operation_id="updateTeam", responses=_ERRORS)
    def put_team(Team: str, body: m.TeamUpdate, request: Request,
                 idempotency_key: IdempotencyKey = None) -> Response:
        def apply() -> tuple[int, dict[str, Any]]:
            if Team not in sim.teams:
                return _not_found("Team", Team)
            previous = sim.set_team(Team, body.Headcount, body.WorkingHoursStart,
                                    body.WorkingHoursEnd)
            return 200, {"d": {**sim.teams[Team].entity(), "PreviousHeadcount": previous}}

        return state.idempotent(request, idempotency_key, body.model_dump(mode="json"), apply)

    threshold_path = SERVICE + "/A_ApprovalThreshold('{SalesOrganization}')"

    @app.get(threshold_path, summary="Manual-approval threshold of a sales organization",
             response_model=m.ThresholdOut, operation_id="getApprovalThreshold",
             responses=_ERRORS)
    def get_threshold(SalesOrganization: str) -> JSONResponse:
        if SalesOrganization != SALES_ORGANIZATION:
            return _missing("SalesOrganization", SalesOrganization)
        with sim.lock:
            return JSONResponse({"d": state.threshold()})

    @app.put(threshold_path, summary="Set the manual-approval threshold",
             response_model=m.ThresholdOut, operation_id="updateApprovalThreshold",
             responses=_ERRORS)
    def put_threshold(SalesOrganization: str, body: m.ThresholdUpdate,
                      request: Request, idempotency_key: IdempotencyKey = None) -> Response:
        def apply() -> tuple[int, dict[str, Any]]:
            if SalesOrganization != SALES_ORGANIZATION:
                return _not_found("SalesOrganization", SalesOrganization)
            previous = sim.set_threshold(body.ThresholdAmount)
            return 200, {"d": {**state.threshold(), "PreviousThresholdAmount": previous}}

        return state.idempotent(request, idempotency_key, body.model_dump(mode="json"), apply)

    rule_path = SERVICE + "/A_AutoApprovalRule('{RuleID}')"

    @app.get(f"{SERVICE}/A_AutoApprovalRule", summary="Active auto-approval rules",
             response_model=m.RulesPage, operation_id="listAutoApprovalRules", responses=_ERRORS)
    def list_rules(request: Request, filter_: Filter = None, orderby: OrderBy = None,
                   format_: Format = None) -> JSONResponse:
        with sim.lock:
            rows = list(state.rules.values())
        query = _query(filter_=filter_, orderby=orderby)
        base = str(request.url.replace(query=""))
        return JSONResponse(offset_page(rows, RULE_FIELDS, query, base, state.page_size))

    @app.post(f"{SERVICE}/A_AutoApprovalRule", status_code=201, response_model=m.RuleOut,
              summary="Auto-approve a segment's orders up to an amount, for a treatment share",
              operation_id="createAutoApprovalRule", responses=_ERRORS)
    def post_rule(body: m.AutoApprovalRuleIn, request: Request,
                  idempotency_key: IdempotencyKey = None) -> Response:
        def apply() -> tuple[int, dict[str, Any]]:
            state.rule_counter += 1
            rule_id = f"AR{state.rule_counter:04d}"
            sim.add_rule(AutoApprovalRule(rule_id, body.CustomerSegment, body.MaxAmount,
                                          body.TreatmentShare))
            entity = {"RuleID": rule_id, **body.model_dump(mode="json"),
                      "CreatedAt": sim.calendar.iso(sim.now)}
            state.rules[rule_id] = entity
            return 201, {"d": entity}

        return state.idempotent(request, idempotency_key, body.model_dump(mode="json"), apply)

    @app.get(rule_path, summary="One auto-approval rule", response_model=m.RuleOut,
             operation_id="getAutoApprovalRule", responses=_ERRORS)
    def get_rule(RuleID: str) -> JSONResponse:
        with sim.lock:
            if RuleID not in state.rules:
                return _missing("AutoApprovalRule", RuleID)
            return JSONResponse({"d": state.rules[RuleID]})

    @app.delete(rule_path, status_code=204, summary="Deactivate a rule (orders keep cohorts)",
                operation_id="deleteAutoApprovalRule", responses=_ERRORS)
    def delete_rule(RuleID: str, request: Request,
                    idempotency_key: IdempotencyKey = None) -> Response:
        def apply() -> tuple[int, dict[str, Any] | None]:
            if RuleID not in state.rules:
                return _not_found("AutoApprovalRule", RuleID)
            sim.remove_rule(RuleID)
            del state.rules[RuleID]
            return 204, None

        return state.idempotent(request, idempotency_key, None, apply)

    @app.get(f"{SERVICE}/GetConfiguration", summary="Function import: threshold, staffing, "
             "working hours and active rules in one read", response_model=m.ConfigurationOut,
             operation_id="getConfiguration")
    def get_configuration() -> dict[str, Any]:
        return state.configuration()

    return app


__all__ = ["SERVICE", "create_app"]
