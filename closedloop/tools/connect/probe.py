"""Check a connector against its live API: what the loop needs, found or missing.

:func:`check_connector` builds the catalog of an annotated document, reads one
page of events and maps it, reads the state, and builds each action's request,
compensation and read-back WITHOUT sending them (only GETs are sent). Each
finding names the part it is about; ``missing`` and ``wrong`` findings make the
check fail, ``note`` findings do not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from closedloop.tools.connect.auth import make_connector_auth
from closedloop.tools.connect.catalog import Catalog, CatalogAction, build_catalog
from closedloop.tools.connect.errors import ConnectorError
from closedloop.tools.connect.examples import example_params, pointers_of, stand_in
from closedloop.tools.connect.readback import COHORT, map_events_page
from closedloop.tools.connect.request import (
    build_action_request,
    build_compensation_request,
    build_events_request,
    build_read_request,
    build_verify_request,
    typed_params,
)
from closedloop.tools.connect.spec import pointer_get
from closedloop.tools.connect.templates import fill_pointer
from closedloop.tools.log.columns import ACTIVITY, CASE, LIFECYCLE, RESOURCE, START, TIMESTAMP

Status = Literal["ok", "note", "missing", "wrong"]
CHECK_KEY = "closedloop-check-0001"  # the idempotency key shown on requests never sent
_FIELD_COLUMNS = {"case": CASE, "activity": ACTIVITY, "timestamp": TIMESTAMP, "start": START,
                  "resource": RESOURCE, "lifecycle": LIFECYCLE, "event_id": "event_id",
                  "cohort": COHORT}


class Finding(BaseModel):
    """One thing the check found about a part of the connector."""

    status: Status
    part: str = Field(description="catalog, auth, events, state, or 'action <name>'")
    message: str


class ConnectorCheck(BaseModel):
    """Everything a connector check found; ``ok`` when nothing is missing or wrong."""

    connector: str | None = None
    catalog_version: str | None = None
    base_url: str
    findings: list[Finding] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no finding is ``missing`` or ``wrong``."""
        return not self.problems

    @property
    def problems(self) -> list[Finding]:
        """The findings that make the check fail."""
        return [f for f in self.findings if f.status in ("missing", "wrong")]

    def add(self, status: Status, part: str, message: str) -> None:
        """Record a finding."""
        self.findings.append(Finding(status=status, part=part, message=message))


def check_connector(document: dict[str, Any], base_url: str,
                    env: Mapping[str, str] | None = None, timeout: float = 10.0) -> ConnectorCheck:
    """Check the annotated OpenAPI ``document`` against the API at ``base_url``.

    Sends only GETs (one events page, the state read); writes are built, never sent.
    """
    report = ConnectorCheck(base_url=base_url)
    try:
        catalog = build_catalog(document)
    except ConnectorError as exc:
        report.add("wrong", "catalog", str(exc))
        return report
    report.connector, report.catalog_version = catalog.connector.name, catalog.version
    report.add("ok", "catalog", f"{len(catalog.actions)} action(s): "
                                f"{', '.join(catalog.actions) or 'none'}")
    if not catalog.actions:
        report.add("missing", "catalog", "no x-closedloop-action: the loop can change nothing")
    auth = None
    try:
        auth = make_connector_auth(catalog.connector, base_url, os.environ if env is None else env)
    except ConnectorError as exc:
        report.add("missing", "auth", f"{exc} (the reads below go without credentials)")
    with httpx.Client(timeout=timeout, auth=auth) as client:
        rows = _check_events(report, catalog, base_url, client)
        state = _check_state(report, catalog, base_url, client)
    pools = _pools(catalog, state)
    for action in catalog.actions.values():
        _check_action(report, catalog, action, base_url, state, pools)
        _check_contract(report, action, rows)
    return report


def _get(client: httpx.Client, request: httpx.Request) -> Any:
    try:
        response = client.send(request)
    except httpx.HTTPError as exc:
        raise ConnectorError(f"GET {request.url.path}: {exc}") from exc
    if response.status_code >= 300:
        raise ConnectorError(f"GET {request.url.path}: HTTP {response.status_code} "
                             f"{response.text[:200]}")
    try:
        return response.json()
    except ValueError as exc:
        raise ConnectorError(f"GET {request.url.path}: the body is not JSON") from exc


def _check_events(report: ConnectorCheck, catalog: Catalog, base_url: str,
                  client: httpx.Client) -> list[dict[str, Any]] | None:
    if catalog.events is None:
        report.add("missing", "events", "no x-closedloop-events: the loop cannot read history "
                                        "or new events from the system")
        return None
    try:
        request = build_events_request(catalog, base_url, None)
        rows, following = map_events_page(catalog, _get(client, request), None)
    except ConnectorError as exc:
        report.add("wrong", "events", str(exc))
        return None
    more = "more pages follow" if following is not None else "no further page"
    report.add("ok", "events", f"GET {request.url.path}: {len(rows)} event(s) on the first "
                               f"page, {more}")
    if not rows:
        report.add("note", "events", "the first page is empty: the mapping is not checked")
        return rows
    fields = catalog.events.annotation.fields
    for field in ("case", "activity", "timestamp"):
        empty = sum(1 for row in rows if row.get(_FIELD_COLUMNS[field]) in (None, ""))
        if empty:
            pointer = getattr(fields, field) or "activity_rules"
            report.add("wrong", "events", f"{field} ({pointer}) is empty in {empty} of "
                                          f"{len(rows)} event(s)")
    optional = {f: getattr(fields, f) for f in ("start", "resource", "lifecycle", "event_id")}
    optional |= {f"case:{name}": pointer for name, pointer in fields.case_attributes.items()}
    for field, pointer in optional.items():
        column = _FIELD_COLUMNS.get(field, field)
        if pointer is not None and all(row.get(column) is None for row in rows):
            # Missing only when an action's data contract needs it (checked per action).
            report.add("note", "events", f"{field} ({pointer}) is empty in every event of the "
                                         "first page")
    if catalog.events.annotation.cohort is not None and all(r.get(COHORT) is None for r in rows):
        report.add("note", "events", "no event of the first page shows a cohort (normal before "
                                     "any split-traffic change)")
    return rows


def _check_state(report: ConnectorCheck, catalog: Catalog, base_url: str,
                 client: httpx.Client) -> Any:
    if catalog.state is None:
        report.add("note", "state", "no x-closedloop-state: no before-state and no capacity "
                                    "read from the system")
        return None
    try:
        request = build_read_request(catalog, base_url)
        state = _get(client, request)
    except ConnectorError as exc:
        report.add("wrong", "state", str(exc))
        return None
    report.add("ok", "state", f"GET {request.url.path}: read")
    annotation = catalog.state.annotation
    for name, pointer in annotation.values.items():
        if not _has(state, pointer):
            report.add("missing", "state", f"value {name!r}: nothing at {pointer}")
    if annotation.pool_capacity and not _pools(catalog, state):
        report.add("missing", "state", f"pool_capacity {annotation.pool_capacity}: no pools there")
    return state


def _pools(catalog: Catalog, state: Any) -> list[str]:
    template = catalog.state.annotation.pool_capacity if catalog.state else None
    if state is None or not template or "{pool}" not in template:
        return []
    try:
        found = pointer_get(state, template.split("/{pool}")[0])
    except (KeyError, TypeError):
        return []
    return [str(k) for k in found] if isinstance(found, dict) else []


def _has(document: Any, pointer: str) -> bool:
    try:
        pointer_get(document, pointer)
    except (KeyError, TypeError):
        return False
    return True


def _show(request: httpx.Request) -> str:
    body = request.content.decode() if request.content else ""
    return f"{request.method} {request.url.path}{' ' + body if body else ''}"


def _check_action(report: ConnectorCheck, catalog: Catalog, action: CatalogAction,
                  base_url: str, state: Any, pools: list[str]) -> None:
    part = f"action {action.name}"
    annotation = action.annotation
    try:
        params = typed_params(catalog, action.name, example_params(
            annotation.params, pools, annotation.roles.get("pool")))
    except ConnectorError as exc:
        report.add("missing", part, f"no valid example parameters ({exc}); add "
                                    "'examples: [{...}]' to its params schema")
        return
    uses_state = annotation.before is None and state is not None
    try:
        request = build_action_request(catalog, action.name, params, base_url, CHECK_KEY,
                                       before=state if uses_state else None)
    except ConnectorError as exc:
        report.add("wrong", part, str(exc))
        return
    report.add("ok", part, f"would send {_show(request)} (not sent)")
    response = stand_in(annotation.model_dump(include={"compensation", "verify"}), "$response",
                        params, part)
    if annotation.compensation is None:
        report.add("note", part, "no compensation: irreversible, the gate asks more of it")
    else:
        before = _before(report, part, annotation.compensation.model_dump(), params,
                         state if uses_state else None)
        try:
            undo = build_compensation_request(catalog, action.name, params, base_url,
                                              response=response, before=before,
                                              idempotency_key=CHECK_KEY)
            report.add("ok", part, f"undo would be {_show(undo)} (not sent)")
        except ConnectorError as exc:
            report.add("wrong", part, f"compensation: {exc}")
    _check_verify(report, catalog, action, base_url, params, response, state)


def _before(report: ConnectorCheck, part: str, template: dict[str, Any],
            params: dict[str, Any], state: Any) -> Any:
    """The before-state to build a compensation with: the real state read when it has every
    value the compensation takes from it, else a stand-in."""
    stand = stand_in(template, "$before", params, part)
    if state is None:
        return stand
    for pointer in _paths(stand):
        if not _has(state, pointer):
            if not any("{" in t for t in pointers_of(template, "$before")):
                return state  # no parameter in the pointers: building names what is missing
            # A pointer filled with example parameters may point at nothing for a good reason.
            report.add("note", part, f"compensation: the state read has nothing at {pointer} "
                                     "for the example parameters; checked with a stand-in")
            return stand
    return state


def _paths(document: Any, prefix: str = "") -> list[str]:
    if not isinstance(document, dict) or not document:
        return [prefix] if prefix else []
    return [p for key, value in document.items()
            for p in _paths(value, f"{prefix}/{key.replace('~', '~0').replace('/', '~1')}")]


def _check_verify(report: ConnectorCheck, catalog: Catalog, action: CatalogAction,
                  base_url: str, params: dict[str, Any], response: Any, state: Any) -> None:
    part = f"action {action.name}"
    verify = action.annotation.verify
    if verify is None:
        report.add("note", part, "no read-back: the loop cannot confirm the change took")
        return
    try:
        readback = build_verify_request(catalog, action.name, params, base_url, response)
        pointer = fill_pointer(verify.pointer, params, f"{part} verify")
    except ConnectorError as exc:
        report.add("wrong", part, f"read-back: {exc}")
        return
    report.add("ok", part, f"read-back would GET {readback.url.path} at {pointer}")
    if verify.operation is None and state is not None and not _has(state, pointer):
        # A pointer filled with example parameters may point at nothing for a good reason.
        status: Status = "note" if pointer != verify.pointer else "missing"
        report.add(status, part, f"the state read has nothing at {pointer} (read-back pointer "
                                 f"{verify.pointer})")


def _check_contract(report: ConnectorCheck, action: CatalogAction,
                    rows: list[dict[str, Any]] | None) -> None:
    if not rows:
        return
    for field in action.annotation.data_contract.required_fields:
        if field == "cohort":
            continue  # cohorts show only once a split-traffic change runs
        if field == "case_attributes":
            found = any(k.startswith("case:") and v is not None for r in rows for k, v in r.items())
        else:
            column = _FIELD_COLUMNS.get(field, f"case:{field}")
            found = any(row.get(column) is not None for row in rows)
        if not found:
            report.add("missing", f"action {action.name}",
                       f"its data contract needs {field!r}, empty in every event of the first page")


__all__ = ["CHECK_KEY", "ConnectorCheck", "Finding", "check_connector"]
