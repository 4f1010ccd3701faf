"""READ tools that collect evidence from the enterprise API."""

from __future__ import annotations

from typing import Any

import httpx

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ApiCallError


@read_tool
def fetch_events(client: httpx.Client, after_seq: int = 0, page_size: int = 5000, max_events: int = 2_000_000) -> list[dict[str, Any]]:
    """All events the system logged after sequence number ``after_seq`` (paged)."""
    events: list[dict[str, Any]] = []
    cursor: int | None = after_seq
    while cursor is not None:
        try:
            response = client.get("/events", params={"after_seq": cursor, "limit": page_size})
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ApiCallError(f"GET /events?after_seq={cursor} failed: {exc}") from exc
        page = response.json()
        events.extend(page["events"])
        if len(events) > max_events:
            raise ApiCallError(f"event feed exceeded {max_events} events; narrow the window")
        cursor = page.get("next_after_seq")
    return events


@read_tool
def fetch_config(client: httpx.Client) -> dict[str, Any]:
    """The system's current configuration (staffing per queue, active rules)."""
    try:
        response = client.get("/config")
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ApiCallError(f"GET /config failed: {exc}") from exc
    return response.json()
