"""An enterprise system as the loop knows it: one connector's catalog bound to a base URL.

Every read and write of the loop goes through a :class:`System`: the event
feed paged by its cursor, the state read, and the requests of catalog actions
(their before-state, compensation and read-back). Requests are built by
``closedloop.tools.connect``; anything outside the catalog cannot be built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel

from closedloop.tools.act.invoke import ApiRequest, CircuitBreaker, send_http
from closedloop.tools.connect import (
    COHORT,
    Catalog,
    ConnectorError,
    build_action_request,
    build_before_request,
    build_catalog,
    build_compensation_request,
    build_events_request,
    build_read_request,
    build_verify_request,
    fill_path,
    fill_pointer,
    make_connector_auth,
    map_events_page,
    pointer_get,
    verify_readback,
)
from closedloop.tools.errors import ApiCallError

MAX_EVENTS = 2_000_000
# How measure_cohorts reads cohorts: "<tag>:treatment" / "<tag>:control" in this column.
MEASURE_COLUMN = "case:experiment"
COHORT_TAG = "cohort"


class EventPosition(BaseModel):
    """Where the next incremental read starts: the cursor of the last page and how many of
    its events were already read (a caught-up feed gives no next cursor)."""

    cursor: Any = None
    skip: int = 0


class EventBatch(BaseModel):
    """Events read through the connector, in the canonical event-frame columns."""

    rows: list[dict[str, Any]]
    position: EventPosition
    source: str


class System:
    """A connector's catalog bound to a base URL and an authenticated HTTP client."""

    def __init__(
        self,
        catalog: Catalog,
        base_url: str,
        client: httpx.Client,
        read_retries: int = 3,
        backoff_s: float = 0.2,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.catalog = catalog
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.read_retries = read_retries
        self.backoff_s = backoff_s
        # One breaker per connector and base URL: every read and write of this system shares it.
        self.breaker = breaker if breaker is not None else CircuitBreaker()

    @classmethod
    def open(
        cls,
        document: dict[str, Any],
        base_url: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        read_retries: int = 3,
    ) -> System:
        """The system of an annotated OpenAPI document at ``base_url`` (auth from ``env``; the
        credentials go only to trusted URLs, see ``closedloop.tools.connect.trusted_roots``)."""
        catalog = build_catalog(document)
        auth = make_connector_auth(catalog.connector, base_url, os.environ if env is None else env)
        return cls(
            catalog, base_url, httpx.Client(timeout=timeout, auth=auth), read_retries=read_retries
        )

    @property
    def name(self) -> str:
        """The connector's name."""
        return self.catalog.connector.name

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

    def _get(self, request: httpx.Request) -> Any:
        """A read, retried on transient failures (reads are always safe to repeat)."""
        response, _ = send_http(
            self.client,
            lambda: request,
            method="GET",
            path=request.url.path,
            replay_safe=True,
            retries=self.read_retries,
            backoff_s=self.backoff_s,
            breaker=self.breaker,
        )
        try:
            return response.json() if response.content else None
        except ValueError as exc:
            raise ApiCallError(f"GET {request.url.path}: the answer is not JSON") from exc

    def events_source(self) -> str:
        """Where events come from (the feed's URL without query), for the store."""
        if self.catalog.events is None:
            raise ConnectorError(f"connector {self.name!r} has no event feed")
        feed = self.catalog.events
        return fill_path(
            self.base_url, feed.operation.path, dict(feed.annotation.request.path), "events source"
        )

    def read_events(
        self, position: EventPosition | None = None, max_events: int = MAX_EVENTS
    ) -> EventBatch:
        """Every event after ``position`` (None: the whole history), paging with the feed's cursor."""
        position = position or EventPosition()
        cursor, skip = position.cursor, position.skip
        rows: list[dict[str, Any]] = []
        while True:
            page = self._get(build_events_request(self.catalog, self.base_url, cursor))
            mapped, following = map_events_page(self.catalog, page, cursor)
            rows.extend(mapped[skip:])
            if len(rows) > max_events:
                raise ApiCallError(f"event feed exceeded {max_events} events; narrow the window")
            if following is None:
                return EventBatch(
                    rows=rows,
                    source=self.events_source(),
                    position=EventPosition(cursor=cursor, skip=max(skip, len(mapped))),
                )
            cursor, skip = following, 0

    def read_state(self) -> Any:
        """The body of the connector's state read."""
        return self._get(build_read_request(self.catalog, self.base_url))

    def state_values(self, state: Any) -> dict[str, Any]:
        """The state's named values (``x-closedloop-state.values``)."""
        if self.catalog.state is None:
            return {}
        return {
            name: _at(state, pointer)
            for name, pointer in self.catalog.state.annotation.values.items()
        }

    def pools(self, state: Any) -> dict[str, Any]:
        """Capacity per pool from the state read (``pool_capacity``), empty if not declared."""
        template = self.catalog.state.annotation.pool_capacity if self.catalog.state else None
        if not template or "{pool}" not in template:
            return {}
        found = _at(state, template.split("/{pool}")[0])
        return dict(found) if isinstance(found, dict) else {}

    def current_value(self, action: str, params: dict[str, Any], state: Any) -> Any:
        """What the state read shows now where ``action``'s read-back looks (None if unknown)."""
        verify = self.catalog.action(action).annotation.verify
        if verify is None or verify.operation is not None:
            return None
        try:
            return _at(state, fill_pointer(verify.pointer, params, f"action {action!r}"))
        except ConnectorError:
            return None

    def read_before(self, action: str, params: dict[str, Any]) -> Any:
        """The before-state of ``action`` (its ``before`` read, else the state read; None if none)."""
        if self.catalog.state is None and self.catalog.action(action).annotation.before is None:
            return None
        return self._get(build_before_request(self.catalog, action, params, self.base_url))

    def action_request(
        self, action: str, params: dict[str, Any], key: str, before: Any = None
    ) -> ApiRequest:
        """The request of a catalog action (NotInCatalogError for anything else)."""
        built = build_action_request(self.catalog, action, params, self.base_url, key, before)
        return ApiRequest.of(built, key)

    def compensation_request(
        self, action: str, params: dict[str, Any], response: Any, before: Any, key: str
    ) -> ApiRequest | None:
        """The request that undoes a performed action (None if it declares no compensation)."""
        if not self.catalog.action(action).reversible:
            return None
        built = build_compensation_request(
            self.catalog,
            action,
            params,
            self.base_url,
            response=response,
            before=before,
            idempotency_key=key,
        )
        return ApiRequest.of(built, key)

    def verify(self, action: str, params: dict[str, Any], response: Any) -> bool | None:
        """Whether the read-back shows the change (None when the action declares no read-back)."""
        if self.catalog.action(action).annotation.verify is None:
            return None
        readback = self._get(
            build_verify_request(self.catalog, action, params, self.base_url, response)
        )
        return verify_readback(self.catalog, action, params, response, readback)


def _at(document: Any, pointer: str) -> Any:
    try:
        return pointer_get(document, pointer)
    except (KeyError, IndexError, TypeError):
        return None


def measurement_records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Connector rows with each case's mapped cohort where ``measure_cohorts`` reads it
    (``<COHORT_TAG>:treatment`` / ``:control``); rows without a cohort match neither."""
    return [{**row, MEASURE_COLUMN: f"{COHORT_TAG}:{row.get(COHORT)}"} for row in rows]


__all__ = ["COHORT_TAG", "EventBatch", "EventPosition", "System", "measurement_records"]
