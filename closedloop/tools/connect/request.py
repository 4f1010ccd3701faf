"""Build the HTTP request of a catalog action, its compensation, or a read, without sending it.

Only operations in the catalog can be built; anything else raises
:class:`~closedloop.tools.connect.errors.NotInCatalogError`. A check (or a
reviewer) can show the exact request before anything is sent.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError

from closedloop.tools.connect.annotations import ReadCall, RequestMap
from closedloop.tools.connect.catalog import Catalog, OperationRef
from closedloop.tools.connect.errors import RequestBuildError
from closedloop.tools.connect.feed import build_events_request
from closedloop.tools.connect.templates import render
from closedloop.tools.connect.urls import fill_path


def _url(base_url: str, op: OperationRef, path_values: dict[str, Any], where: str) -> str:
    return fill_path(base_url, op.path, path_values, where)


def _request(
    catalog: Catalog, op: OperationRef, mapping: RequestMap | ReadCall | Any,
    params: dict[str, Any],
    base_url: str, where: str, idempotency_key: str | None,
    response: Any = None, before: Any = None,
) -> httpx.Request:
    path = render(mapping.path, params, f"{where}.path", response, before) or {}
    query = render(mapping.query, params, f"{where}.query", response, before) or {}
    headers = render(mapping.headers, params, f"{where}.headers", response, before) or {}
    body = render(getattr(mapping, "body", None), params, f"{where}.body", response, before)
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
    idempotency_key: str | None = None, before: Any = None,
) -> httpx.Request:
    """The request that performs ``action`` with ``params`` (not sent).

    ``before`` is the before-state, for requests that carry a value of it (an ETag in
    ``If-Match``, say).
    """
    entry = catalog.action(action)
    values = typed_params(catalog, action, params)
    return _request(catalog, entry.operation, entry.annotation.request, values, base_url,
                    f"action {action!r} request", idempotency_key, before=before)


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


def build_before_request(catalog: Catalog, action: str, params: dict[str, Any],
                         base_url: str) -> httpx.Request:
    """The read giving ``action``'s before-state: its ``before`` read, else the state read."""
    before = catalog.action(action).annotation.before
    if before is None:
        return build_read_request(catalog, base_url)
    if isinstance(before, str):
        return build_read_request(catalog, base_url, before)
    values = typed_params(catalog, action, params)
    return _request(catalog, _read_op(catalog, before.operation), before, values, base_url,
                    f"action {action!r} before", None)


def build_verify_request(catalog: Catalog, action: str, params: dict[str, Any], base_url: str,
                         response: Any = None) -> httpx.Request:
    """The read-back of ``action`` after it was performed (its ``verify`` read)."""
    verify = catalog.action(action).annotation.verify
    if verify is None:
        raise RequestBuildError(f"action {action!r} declares no read-back verification")
    if verify.operation is None:
        return build_read_request(catalog, base_url)
    values = typed_params(catalog, action, params)
    return _request(catalog, _read_op(catalog, verify.operation), verify, values, base_url,
                    f"action {action!r} verify", None, response=response)


def _read_op(catalog: Catalog, operation_id: str) -> OperationRef:
    op = catalog.operation(operation_id)
    if op.method != "GET":
        raise RequestBuildError(f"operation {op.label} is not a read")
    return op


def build_read_request(catalog: Catalog, base_url: str, operation_id: str | None = None,
                       path: dict[str, Any] | None = None) -> httpx.Request:
    """A GET of the state read (or of another read operation in the catalog)."""
    fixed: dict[str, Any] = {"path": {}, "query": {}, "headers": {}}
    if operation_id is None:
        if catalog.state is None:
            raise RequestBuildError(f"connector {catalog.connector.name!r} has no state read")
        op = catalog.state.operation
        fixed = catalog.state.annotation.request.model_dump()
    else:
        op = _read_op(catalog, operation_id)
    query = {k: _query_value(v) for k, v in fixed["query"].items()}
    return httpx.Request("GET", _url(base_url, op, {**fixed["path"], **(path or {})},
                                     f"read {op.operation_id}"),
                         params=query, headers=fixed["headers"])


__all__ = [
    "build_action_request",
    "build_before_request",
    "build_compensation_request",
    "build_events_request",
    "build_read_request",
    "build_verify_request",
    "typed_params",
]
