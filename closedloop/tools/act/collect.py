"""READ tools that collect evidence from the enterprise system, through its connector."""

from __future__ import annotations

from typing import Any

from closedloop.tools.act.system import EventBatch, EventPosition, System
from closedloop.tools.base import read_tool
from closedloop.tools.connect.scope import clip_to_scope


@read_tool
def fetch_events(system: System, position: EventPosition | None = None) -> EventBatch:
    """Every event the system logged after ``position`` (None: the whole history), paged by the
    connector's cursor, in the canonical event-frame columns; each case clipped at the milestone
    the connector's ``case_scope`` declares as its end for the KPIs (if any)."""
    batch = system.read_events(position)
    feed = system.catalog.events
    scope = feed.annotation.case_scope if feed is not None else None
    if scope is None:
        return batch
    clipped = clip_to_scope(batch.rows, scope)
    source = f"{batch.source} (cases end at {' or '.join(scope.until)}: {scope.why})"
    return batch.model_copy(update={"rows": clipped.rows, "source": source})


@read_tool
def fetch_config(system: System) -> dict[str, Any]:
    """The system's current state read, with its named values and capacity per pool."""
    state = system.read_state()
    return {"state": state, "values": system.state_values(state), "pools": system.pools(state)}
