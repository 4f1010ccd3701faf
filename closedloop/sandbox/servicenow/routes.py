"""ServiceNow Table API-shaped routes over the helpdesk simulation (mounted by its app).

* ``GET /api/now/table/{table}`` with ``sysparm_query`` (see
  :mod:`closedloop.sandbox.servicenow.query`), ``sysparm_fields`` (``documentkey.<column>``
  dot-walks from an audit row to its incident), ``sysparm_limit``, ``sysparm_offset``,
  ``sysparm_no_count``; ``{"result": [...]}`` and ``X-Total-Count``;
* ``GET /api/now/table/{table}/{sys_id}``;
* ``PATCH``/``PUT /api/now/table/sys_user_group/{sys_id}``: ``u_headcount`` (0-50);
* ``POST /api/now/table/u_closedloop_rule`` and ``DELETE .../u_closedloop_rule/{sys_id}``;
* ``GET /api/x_clsd_loop/closedloop/state``: a scripted REST resource giving the groups
  keyed by sys_id (headcount and members) and the active rules in one read.

Writes go through the app's idempotency ledger and show in ``GET /writes``: with an
``Idempotency-Key`` header a replay returns the first answer; without one a PATCH is
idempotent by nature and a second DELETE answers 404, as on an instance. Basic auth
(``basic_auth=(user, password)``) guards every ``/api/`` route when given. The routes
stay out of the app's ``/openapi.json``: the connector takes the ServiceNow profile's spec.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable
from typing import Annotated, Any, Protocol

from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from closedloop.sandbox.idempotency import IdempotencyLedger
from closedloop.sandbox.models import RuleIn
from closedloop.sandbox.service import MAX_KEY_LENGTH, IdempotencyKey, keyed_write
from closedloop.sandbox.servicenow.query import QueryError, parse_query, pick_fields
from closedloop.sandbox.servicenow.tables import COLUMN_ATTRIBUTES, Record, TableView
from closedloop.sandbox.simulation import Simulation

TABLES = ("incident", "sys_audit", "sys_user_group", "u_closedloop_rule")
STATE_PATH = "/api/x_clsd_loop/closedloop/state"
MAX_LIMIT = 10_000
_OPS = {"=": "eq", "eq": "eq", "!=": "neq", "neq": "neq", "IN": "in", "in": "in"}


class HelpdeskState(Protocol):
    """What the routes need from the helpdesk app's state."""

    sim: Simulation
    ledger: IdempotencyLedger
    rules: dict[str, dict[str, Any]]

    def add_rule(self, body: RuleIn) -> dict[str, Any]: ...

    def remove_rule(self, rule_id: str) -> bool: ...


def sn_error(status: int, message: str, detail: str | None = None) -> JSONResponse:
    """An error in the Table API's shape."""
    return JSONResponse({"error": {"message": message, "detail": detail}, "status": "failure"},
                        status_code=status)


def _records(view: TableView, state: HelpdeskState, table: str) -> list[Record]:
    if table == "incident":
        return list(view.incidents.values())
    if table == "sys_user_group":
        return view.groups()
    if table == "u_closedloop_rule":
        return [view.rule_record(r) for r in state.rules.values()]
    return view.audit


def _page(view: TableView, state: HelpdeskState, table: str, query: str | None,
          offset: int, limit: int) -> tuple[list[Record], int]:
    """The matching records of one page and how many match in all."""
    parsed = parse_query(query)
    if table == "sys_audit" and parsed.order in ((), (("sys_created_on", False),)):
        # Audit rows are kept oldest first: start at the time bound, no sort needed.
        rows = view.audit_from(parsed.lower_bound("sys_created_on"))
        matched = [r for r in rows if all(c.test(r) for c in parsed.conditions)]
    else:
        matched = parsed.select(_records(view, state, table))
    return matched[offset:offset + limit], len(matched)


def _rule_body(view: TableView, body: dict[str, Any]) -> RuleIn:
    """A u_closedloop_rule record as the sandbox's rule (ValueError with the reason)."""
    unknown = set(body) - {"u_name", "u_condition_field", "u_condition_operator",
                           "u_condition_value", "u_action", "u_route_group",
                           "u_treatment_share", "active"}
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}")
    column = body.get("u_condition_field")
    if column not in COLUMN_ATTRIBUTES:
        raise ValueError(f"u_condition_field must be one of {sorted(COLUMN_ATTRIBUTES)}")
    op = _OPS.get(str(body.get("u_condition_operator", "=")))
    if op is None:
        raise ValueError(f"u_condition_operator must be one of {sorted(_OPS)}")
    value = body.get("u_condition_value")
    if op == "in" and isinstance(value, str):
        value = [v for v in value.split(",") if v]
    action: dict[str, Any] = {"type": body.get("u_action", "auto_resolve")}
    if action["type"] == "route":
        groups = {view.group_id(q): q for q in view.sim.staffing}
        action["queue"] = groups.get(str(body.get("u_route_group")), body.get("u_route_group"))
    return RuleIn.model_validate({
        "name": body.get("u_name"), "treatment_share": body.get("u_treatment_share"),
        "condition": {"field": COLUMN_ATTRIBUTES[column], "op": op, "value": value},
        "action": action,
    })


def add_servicenow_routes(app: FastAPI, state: HelpdeskState,
                          basic_auth: tuple[str, str] | None = None) -> TableView:
    """Mount the Table API-shaped routes on the helpdesk ``app``; the view they read."""
    sim, view = state.sim, TableView(state.sim)
    if basic_auth is not None:
        install_basic_auth(app, *basic_auth)

    def write(request: Request, key: str | None, body: Any,
              apply: Callable[[], tuple[int, Any]]) -> Response:
        if key is not None and (not key.strip() or len(key) > MAX_KEY_LENGTH):
            return sn_error(400, "Invalid Idempotency-Key", f"1 to {MAX_KEY_LENGTH} characters")
        if key is not None:
            status, payload = keyed_write(state.ledger, sim, request, key, body, apply, _reused)
        else:
            with sim.lock:
                status, payload = apply()
                state.ledger.record(method=request.method, path=request.url.path, key="",
                                    replayed=False, status=status, at_seq=sim.last_seq(),
                                    at=sim.calendar.iso(sim.now))
        if status == 204:
            return Response(status_code=204)
        return JSONResponse(payload, status_code=status)

    @app.get("/api/now/table/{table}", include_in_schema=False)
    def get_records(
        table: str,
        sysparm_query: str | None = None, sysparm_fields: str | None = None,
        sysparm_limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = MAX_LIMIT,
        sysparm_offset: Annotated[int, Query(ge=0)] = 0,
        sysparm_no_count: bool = False,
        sysparm_display_value: str | None = None,
        sysparm_exclude_reference_link: bool = False,
    ) -> Response:
        if table not in TABLES:
            return sn_error(400, f"Invalid table {table}")
        with sim.lock:
            view.sync()
            try:
                page, total = _page(view, state, table, sysparm_query, sysparm_offset,
                                    sysparm_limit)
            except QueryError as exc:
                return sn_error(400, "Invalid query", str(exc))
            if table == "sys_audit" and sysparm_fields and "documentkey." in sysparm_fields:
                names = [f.strip() for f in sysparm_fields.split(",") if f.strip()]
                result = [{n: view.dot_walk(row, n) for n in names} for row in page]
            else:
                result = [pick_fields(row, sysparm_fields) for row in page]
        headers = {} if sysparm_no_count else {"X-Total-Count": str(total)}
        return JSONResponse({"result": result}, headers=headers)

    @app.get("/api/now/table/{table}/{record_id}", include_in_schema=False)
    def get_record(table: str, record_id: str, sysparm_fields: str | None = None,
                   sysparm_exclude_reference_link: bool = False) -> Response:
        if table not in TABLES:
            return sn_error(400, f"Invalid table {table}")
        with sim.lock:
            view.sync()
            found = next((r for r in _records(view, state, table) if r["sys_id"] == record_id),
                         None)
        if found is None:
            return _not_found()
        return JSONResponse({"result": pick_fields(found, sysparm_fields)})

    def update_group(record_id: str, body: dict[str, Any], request: Request,
                     key: str | None) -> Response:
        def apply() -> tuple[int, Any]:
            queue = next((q for q in sim.staffing if view.group_id(q) == record_id), None)
            if queue is None:
                return 404, _not_found_body()
            extra = set(body) - {"u_headcount"}
            headcount = body.get("u_headcount")
            if extra or not isinstance(headcount, int) or isinstance(headcount, bool) \
                    or not 0 <= headcount <= 50:
                return 400, {"error": {"message": "Invalid update", "detail":
                             "only u_headcount (an integer 0-50) is writable"},
                             "status": "failure"}
            sim.set_staffing(queue, headcount)
            group = next(g for g in view.groups() if g["sys_id"] == record_id)
            return 200, {"result": group}

        return write(request, key, body, apply)

    @app.patch("/api/now/table/{table}/{record_id}", include_in_schema=False)
    @app.put("/api/now/table/{table}/{record_id}", include_in_schema=False)
    def patch_record(table: str, record_id: str, request: Request,
                     body: Annotated[dict[str, Any], Body()],
                     idempotency_key: IdempotencyKey = None) -> Response:
        if table != "sys_user_group":
            return _read_only(table)
        return update_group(record_id, body, request, idempotency_key)

    @app.post("/api/now/table/{table}", include_in_schema=False)
    def post_record(table: str, request: Request, body: Annotated[dict[str, Any], Body()],
                    idempotency_key: IdempotencyKey = None) -> Response:
        if table != "u_closedloop_rule":
            return _read_only(table)

        def apply() -> tuple[int, Any]:
            try:
                rule = _rule_body(view, body)
            except (ValueError, ValidationError) as exc:
                return 400, {"error": {"message": "Invalid rule", "detail": str(exc)},
                             "status": "failure"}
            return 201, {"result": view.rule_record(state.add_rule(rule))}

        return write(request, idempotency_key, body, apply)

    @app.delete("/api/now/table/{table}/{record_id}", include_in_schema=False)
    def delete_record(table: str, record_id: str, request: Request,
                      idempotency_key: IdempotencyKey = None) -> Response:
        if table != "u_closedloop_rule":
            return _read_only(table)

        def apply() -> tuple[int, Any]:
            rule_id = next((r["rule_id"] for r in state.rules.values()
                            if view.rule_record(r)["sys_id"] == record_id), None)
            if rule_id is None or not state.remove_rule(rule_id):
                return 404, _not_found_body()
            return 204, None

        return write(request, idempotency_key, None, apply)

    @app.get(STATE_PATH, include_in_schema=False)
    def get_state() -> dict[str, Any]:
        with sim.lock:
            groups = {g["sys_id"]: {**g, "members": view.members(g["name"])}
                      for g in view.groups()}
            rules = [view.rule_record(r) for r in state.rules.values()]
        return {"result": {"groups": groups, "rules": rules}}

    return view


def _reused(key: str) -> dict[str, Any]:
    return {"error": {"message": "Idempotency-Key reused",
                      "detail": f"{key!r} was already used for a different request"},
            "status": "failure"}


def _not_found_body() -> dict[str, Any]:
    return {"error": {"message": "No Record found",
                      "detail": "Record doesn't exist or ACL restricts the record retrieval"},
            "status": "failure"}


def _not_found() -> JSONResponse:
    return JSONResponse(_not_found_body(), status_code=404)


def _read_only(table: str) -> JSONResponse:
    return sn_error(403, "Operation Failed", f"ACL Exception: {table} is read-only here")


def install_basic_auth(app: FastAPI, username: str, password: str) -> None:
    """Require HTTP basic auth on every ``/api/`` route (the Table API's usual scheme)."""
    expected = b"Basic " + base64.b64encode(f"{username}:{password}".encode())

    @app.middleware("http")
    async def check_basic(request: Request, call_next: Callable[..., Any]) -> Any:
        if not request.url.path.startswith("/api/"):
            return await call_next(request)
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            response = sn_error(401, "User Not Authenticated",
                                "Required to provide Auth information")
            response.headers["WWW-Authenticate"] = 'Basic realm="Service-now"'
            return response
        return await call_next(request)


__all__ = ["STATE_PATH", "TABLES", "add_servicenow_routes", "install_basic_auth", "sn_error"]
