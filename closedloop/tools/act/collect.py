"""READ tools that collect evidence from the enterprise system, through its connector."""

from __future__ import annotations

from typing import Any

from closedloop.tools.act.system import EventBatch, EventPosition, System
from closedloop.tools.base import read_tool


@read_tool
def fetch_events(system: System, position: EventPosition | None = None) -> EventBatch:
    """Every event the system logged after ``position`` (None: the whole history), paged by the
    connector's cursor, in the canonical event-frame columns."""
    return system.read_events(position)


@read_tool
def fetch_config(system: System) -> dict[str, Any]:
    """The system's current state read, with its named values and capacity per pool."""
    state = system.read_state()
    return {"state": state, "values": system.state_values(state), "pools": system.pools(state)}
