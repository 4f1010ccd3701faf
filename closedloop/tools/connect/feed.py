"""Reading a connector's event feed: the page requests, the next cursor, times and activities.

A feed pages in one of three ways (``cursor.kind``): ``token`` (the page holds
a cursor that goes back in a query parameter), ``offset`` (a query parameter
advances by the number of items read; ``has_more_pointer`` or an empty page
ends) or ``next_link`` (the page holds the URL of the next one, OData's
``@odata.nextLink``, Salesforce's ``nextRecordsUrl``). Incremental reads by
time fill ``{since}`` in the feed's fixed request values with a watermark (the
latest timestamp read so far); ``{page_size}`` is filled too, for page sizes
that go in a header (``Prefer: odata.maxpagesize={page_size}``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx

from closedloop.tools.connect.annotations import EventFeedAnnotation, FieldMap
from closedloop.tools.connect.catalog import Catalog
from closedloop.tools.connect.errors import RequestBuildError
from closedloop.tools.connect.spec import pointer_get
from closedloop.tools.connect.urls import fill_path, resolve_link

_ODATA_DATE = re.compile(r"^/Date\((-?\d+)(?:[+-]\d{4})?\)/$")


def _get(item: Any, pointer: str) -> Any:
    try:
        return pointer_get(item, pointer)
    except KeyError:
        return None


def _fill(value: Any, since: str | None, page_size: int) -> Any:
    if not isinstance(value, str):
        return value
    text = value.replace("{page_size}", str(page_size))
    return text.replace("{since}", since) if since is not None else text


def _feed(catalog: Catalog) -> EventFeedAnnotation:
    if catalog.events is None:
        raise RequestBuildError(f"connector {catalog.connector.name!r} has no event feed")
    return catalog.events.annotation


def build_events_request(
    catalog: Catalog, base_url: str, cursor: Any = None, page_size: int | None = None,
    since: str | None = None,
) -> httpx.Request:
    """The request for the page after ``cursor`` (None: the first page after ``since``).

    ``since`` is a watermark from :func:`watermark` (default: the feed's initial one).
    For a ``next_link`` feed a cursor is the link itself, followed only on the API's host.
    """
    feed = _feed(catalog)
    size = page_size or feed.page_size
    stamp = since if since is not None else (feed.since.initial if feed.since else None)
    fixed = feed.request
    headers = {k: str(_fill(v, stamp, size)) for k, v in fixed.headers.items()}
    if feed.cursor.kind == "next_link" and cursor is not None:
        return httpx.Request("GET", resolve_link(base_url, cursor, "events"), headers=headers)
    query = {k: _fill(v, stamp, size) for k, v in fixed.query.items()}
    query = {k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()}
    value = feed.cursor.initial if cursor is None else cursor
    if feed.cursor.kind == "offset" and value is None:
        value = 0
    if value is not None and feed.cursor.param is not None:
        query[feed.cursor.param] = value
    if feed.page_size_param:
        query[feed.page_size_param] = size
    path = {k: _fill(v, stamp, size) for k, v in fixed.path.items()}
    url = fill_path(base_url, catalog.events.operation.path, path, "events")  # type: ignore[union-attr]
    return httpx.Request("GET", url, params=query, headers=headers)


def next_cursor(feed: EventFeedAnnotation, page: Any, items: list[Any], cursor: Any) -> Any:
    """The cursor of the page after this one, None when the feed is caught up."""
    if feed.cursor.kind == "offset":
        if feed.cursor.has_more_pointer is not None:
            more = _get(page, feed.cursor.has_more_pointer) is True
        else:
            more = bool(items)
        start = feed.cursor.initial if cursor is None else cursor
        return int(start or 0) + len(items) if more and items else None
    found = _get(page, feed.cursor.response_pointer or "")
    return None if found in (None, "") else found


def event_time(value: Any, fmt: str) -> Any:
    """A timestamp as ISO 8601 (UTC) from the feed's ``time_format``; as read for ``as_is``."""
    if value is None or fmt == "as_is":
        return value
    if fmt == "odata_date":
        # OData v2 JSON: milliseconds since the epoch in UTC; a +hhmm suffix only says
        # which offset the value was entered in, the instant is the same.
        match = _ODATA_DATE.match(str(value))
        if match is None:
            return value
        moment = datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)
        return moment.isoformat().replace("+00:00", "Z")
    try:
        seconds = float(value) / (1000 if fmt == "epoch_ms" else 1)
    except (TypeError, ValueError):
        return value
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def _matches(found: Any, wanted: Any) -> bool:
    return found in wanted if isinstance(wanted, list) else found == wanted


def activity_of(fields: FieldMap, item: Any) -> Any:
    """The activity of one item: the first matching rule, else the activity pointer's value."""
    for rule in fields.activity_rules:
        if all(_matches(_get(item, p), v) for p, v in rule.when.items()):
            return rule.activity
    return _get(item, fields.activity)


def _moment(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def watermark(catalog: Catalog, timestamps: list[Any], previous: str | None = None) -> str | None:
    """The ``since`` of the next read: the latest of ``timestamps`` (read rows' times), formatted
    by the feed's ``since.format``; ``previous`` when nothing later was read."""
    feed = _feed(catalog)
    latest = max(((m, t) for t in timestamps if (m := _moment(t)) is not None),
                 default=None, key=lambda pair: pair[0])
    if latest is None:
        return previous
    last = _moment(previous) if previous is not None else None
    if last is not None and latest[0] <= last:
        return previous
    if feed.since is None or feed.since.format is None:
        return str(latest[1])
    return latest[0].astimezone(UTC).strftime(feed.since.format)


__all__ = ["activity_of", "build_events_request", "event_time", "next_cursor", "watermark"]
