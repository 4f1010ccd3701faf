"""Interpret reads through a connector: event pages as canonical rows, read-back checks."""

from __future__ import annotations

import re
from typing import Any

from closedloop.tools.connect.catalog import Catalog
from closedloop.tools.connect.errors import RequestBuildError
from closedloop.tools.connect.feed import activity_of, event_time, next_cursor
from closedloop.tools.connect.spec import pointer_get
from closedloop.tools.connect.templates import fill_pointer, render
from closedloop.tools.log.columns import (
    ACTIVITY,
    CASE,
    CASE_PREFIX,
    COHORT,
    LIFECYCLE,
    RESOURCE,
    START,
    TIMESTAMP,
)

EVENT_ID = "event_id"
_COLUMNS = {"case": CASE, "activity": ACTIVITY, "timestamp": TIMESTAMP, "start": START,
            "resource": RESOURCE, "lifecycle": LIFECYCLE, "event_id": EVENT_ID}


def _get(item: Any, pointer: str) -> Any:
    try:
        return pointer_get(item, pointer)
    except KeyError:
        return None


def map_events_page(catalog: Catalog, page: Any,
                    cursor: Any = None) -> tuple[list[dict[str, Any]], Any]:
    """Rows in the canonical event-frame columns, and the next cursor (None when caught up).

    ``cursor`` is the one this page was requested with (offset feeds count on from it).
    """
    if catalog.events is None:
        raise RequestBuildError(f"connector {catalog.connector.name!r} has no event feed")
    feed = catalog.events.annotation
    items = _get(page, feed.items)
    if not isinstance(items, list):
        raise RequestBuildError(f"event page has no list at {feed.items!r}")
    rows = []
    for item in items:
        row: dict[str, Any] = {}
        for field, column in _COLUMNS.items():
            pointer = getattr(feed.fields, field)
            if pointer is not None:
                row[column] = _get(item, pointer)
        row[ACTIVITY] = activity_of(feed.fields, item)
        for column in (TIMESTAMP, START):
            if column in row:
                row[column] = event_time(row[column], feed.fields.time_format)
        if feed.fields.case_attributes_from is not None:
            attributes = _get(item, feed.fields.case_attributes_from)
            if isinstance(attributes, dict):
                row.update({f"{CASE_PREFIX}{k}": v for k, v in attributes.items()})
        for name, pointer in feed.fields.case_attributes.items():
            row[f"{CASE_PREFIX}{name}"] = _get(item, pointer)
        if feed.cohort is not None:
            raw = _get(item, feed.cohort.pointer)
            text = "" if raw is None else str(raw)
            row[COHORT] = ("treatment" if re.search(feed.cohort.treatment_pattern, text)
                           else "control" if re.search(feed.cohort.control_pattern, text)
                           else None)
        rows.append(row)
    return rows, next_cursor(feed, page, items, cursor)


def verify_readback(catalog: Catalog, action: str, params: dict[str, Any], response: Any,
                    readback: Any) -> bool:
    """Whether ``readback`` (the verify operation's body after the write) shows the change."""
    verify = catalog.action(action).annotation.verify
    if verify is None:
        raise RequestBuildError(f"action {action!r} declares no read-back verification")
    where = f"action {action!r} verify"
    value = _get(readback, fill_pointer(verify.pointer, params, where))
    if verify.equals is not None:
        expected = render(verify.equals, params, where, response=response)
        if value != expected:
            return False
    if verify.contains is not None:
        expected = render(verify.contains.value, params, where, response=response)
        if not isinstance(value, list):
            return False
        if not any(isinstance(i, dict) and i.get(verify.contains.key) == expected for i in value):
            return False
    return True


__all__ = ["COHORT", "EVENT_ID", "map_events_page", "verify_readback"]
