"""Checks that request mappings and fixed read values fit the operations they fill."""

from __future__ import annotations

import json
from typing import Any

from closedloop.tools.connect.annotations import EVENTS_KEY, EventFeedAnnotation, FixedRequest
from closedloop.tools.connect.errors import AnnotationError
from closedloop.tools.connect.operations import OperationRef
from closedloop.tools.connect.templates import template_problems


def check_event_feed(ref: OperationRef, feed: EventFeedAnnotation) -> None:
    label = f"operation {ref.label}: {EVENTS_KEY}"
    for what, name in (("cursor.param", feed.cursor.param),
                       ("page_size_param", feed.page_size_param)):
        if name is not None and name not in ref.query_params:
            raise AnnotationError(f"{label}.{what} {name!r} is not a query parameter of it "
                                  f"(query parameters: {ref.query_params})")
    check_fixed(ref, feed.request, label,
                 [f"query:{n}" for n in (feed.cursor.param, feed.page_size_param) if n])
    uses_since = "{since}" in json.dumps(feed.request.model_dump())
    if uses_since != (feed.since is not None):
        raise AnnotationError(f"{label}: 'since' and a {{since}} in request values go together")


def check_fixed(ref: OperationRef, fixed: FixedRequest, label: str, supplied: Any) -> None:
    """Fixed read values fill every path parameter and every required query/header one."""
    missing_path = sorted(set(ref.path_params) - set(fixed.path))
    given = {f"query:{k}" for k in fixed.query} | {f"header:{k}" for k in fixed.headers}
    missing = [r for r in ref.required if r.split(":")[0] != "path" and r not in {*given, *supplied}]
    if missing_path or missing:
        raise AnnotationError(f"{label}.request does not fill path parameter(s) {missing_path} "
                              f"/ required parameter(s) {missing} of {ref.label}")


def check_request(target: OperationRef, mapping: Any, params: set[str], allowed: set[str],
                   where: str, idempotency_header: str | None) -> None:
    # Path, query and header names are the API's own (OData's $filter too), never sources.
    problems = [p for place in ("path", "query", "headers")
                for name, value in getattr(mapping, place).items()
                for p in template_problems(value, params, allowed, f"{where}.{place}.{name}")]
    problems += template_problems(getattr(mapping, "body", None), params, allowed, f"{where}.body")
    missing_path = [p for p in target.path_params if p not in mapping.path]
    extra_path = [p for p in mapping.path if p not in target.path_params]
    if missing_path:
        problems.append(f"{where}.path does not fill path parameter(s) {missing_path} "
                        f"of {target.label}")
    if extra_path:
        problems.append(f"{where}.path names {extra_path}, not path parameters of {target.label}")
    supplied = {f"query:{k}" for k in mapping.query} | {f"header:{k}" for k in mapping.headers}
    if idempotency_header:
        supplied.add(f"header:{idempotency_header}")
    missing = [r for r in target.required if not r.startswith("path:") and r not in supplied]
    if missing:
        problems.append(f"{where} does not supply required parameter(s) {missing} "
                        f"of {target.label}")
    if problems:
        raise AnnotationError("; ".join(problems))


__all__ = ["check_event_feed", "check_fixed", "check_request"]
