"""Build the HTTP request of a catalog action, its compensation, or a read, without sending it.

Only operations in the catalog can be built; anything else raises
:class:`~closedloop.tools.connect.errors.NotInCatalogError`. A check (or a
reviewer) can show the exact request before anything is sent.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from closedloop.tools.connect.annotations import RequestMap
from closedloop.tools.connect.catalog import Catalog, OperationRef
from closedloop.tools.connect.errors import RequestBuildError
from closedloop.tools.connect.templates import render


def _url(base_url: str, op: OperationRef, path_values: dict[str, Any], where: str) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        value = path_values.get(name)
        if value is None or str(value) in ("", ".", ".."):
            raise RequestBuildError(f"{where}: path parameter {name!r} has no usable value "
                                    f"({value!r})")
        return quote(str(value), safe="")

    return base_url.rstrip("/") + re.sub(r"\{([^}]+)\}", fill, op.path)


def _request(
    catalog: Catalog, op: OperationRef, mapping: RequestMap, params: dict[str, Any],
    base_url: str, where: str, idempotency_key: str | None,
    response: Any = None, before: Any = None,
) -> httpx.Request:
    path = render(mapping.path, params, f"{where}.path", response, before) or {}
    query = render(mapping.query, params, f"{where}.query", response, before) or {}
    headers = render(mapping.headers, params, f"{where}.headers", response, before) or {}
    body = render(mapping.body, params, f"{where}.body", response, before)
    header_name = catalog.connector.idempotency_header
    if op.method != "GET" and header_name:
        if not idempotency_key:
            raise RequestBuildError(f"{where}: writes need an idempotency key "
                                    f"({header_name} header)")
        headers[header_name] = idempotency_key
    return httpx.Request(
        op.method, _url(base_url, op, path, where),
        params={k: _query_value(v) for k, v in query.items()},
        headers={k: str(v) for k, v in headers.items()},
        json=body if body is not None and op.method != "GET" else None,
    )


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    return value


def typed_params(catalog: Catalog, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validated parameters of ``action`` as plain JSON (defaults filled in)."""
    try:
        model = catalog.validate_params(action, params)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise RequestBuildError(f"action {action!r}: invalid parameters: {problems}") from exc
    return model.model_dump(mode="json")


def build_action_request(
    catalog: Catalog, action: str, params: dict[str, Any], base_url: str,
    idempotency_key: str | None = None,
) -> httpx.Request:
    """The request that performs ``action`` with ``params`` (not sent)."""
    entry = catalog.action(action)
    values = typed_params(catalog, action, params)
    return _request(catalog, entry.operation, entry.annotation.request, values, base_url,
                    f"action {action!r} request", idempotency_key)


def build_compensation_request(
    catalog: Catalog, action: str, params: dict[str, Any], base_url: str,
    response: Any = None, before: Any = None, idempotency_key: str | None = None,
) -> httpx.Request:
    """The request that undoes a performed ``action``, from its response or the before-state."""
    entry = catalog.action(action)
    compensation = entry.annotation.compensation
    if compensation is None:
        raise RequestBuildError(f"action {action!r} declares no compensation (irreversible)")
    values = typed_params(catalog, action, params)
    op = catalog.operation(compensation.operation)
    return _request(catalog, op, compensation, values, base_url,
                    f"action {action!r} compensation", idempotency_key, response, before)


def build_events_request(
    catalog: Catalog, base_url: str, cursor: Any = None, page_size: int | None = None,
) -> httpx.Request:
    """The request for the page of events after ``cursor`` (the feed's initial cursor if None)."""
    if catalog.events is None:
        raise RequestBuildError(f"connector {catalog.connector.name!r} has no event feed")
    feed = catalog.events.annotation
    query: dict[str, Any] = {}
    value = feed.cursor.initial if cursor is None else cursor
    if value is not None:
        query[feed.cursor.param] = value
    if feed.page_size_param:
        query[feed.page_size_param] = page_size or feed.page_size
    return httpx.Request("GET", _url(base_url, catalog.events.operation, {}, "events"),
                         params=query)


def build_read_request(catalog: Catalog, base_url: str, operation_id: str | None = None,
                       path: dict[str, Any] | None = None) -> httpx.Request:
    """A GET of the state read (or of another read operation in the catalog)."""
    if operation_id is None:
        if catalog.state is None:
            raise RequestBuildError(f"connector {catalog.connector.name!r} has no state read")
        op = catalog.state.operation
    else:
        op = catalog.operation(operation_id)
        if op.method != "GET":
            raise RequestBuildError(f"operation {op.label} is not a read")
    return httpx.Request("GET", _url(base_url, op, path or {}, f"read {op.operation_id}"))


__all__ = [
    "build_action_request",
    "build_compensation_request",
    "build_events_request",
    "build_read_request",
    "typed_params",
]
