"""Pushed events: validate a batch a system sends (``POST /events``) and turn stored ones into the
canonical event frame.

A pushed event is one JSON object: ``event_id`` (unique per source), ``case_id``, ``activity``,
``timestamp`` (ISO 8601 with a zone), and optionally ``start_timestamp``, ``resource``,
``lifecycle``, ``attributes`` (case attributes, flat scalars) and ``cohort``
(``treatment``/``control``). :func:`validate_batch` names every error by item index and field;
:func:`frame_from_pushed` gives the same frame a file with the same rows would give (the event id
is bookkeeping and does not become a column). This module knows nothing of the store or the API.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from closedloop.tools.errors import EventLogError
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
from closedloop.tools.log.ingest import frame_from_records

MAX_BATCH_EVENTS = 10_000
MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 1_000
MAX_ATTRIBUTES = 50
SOURCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
# Where a case's cohort lives in the frame; the same column connectors map it to
# (closedloop.tools.connect.COHORT, not imported: connect imports this package).

Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ID_LENGTH)
]
SourceName = Annotated[str, StringConstraints(pattern=SOURCE_PATTERN)]
# No colon: a key could otherwise land on a standard column (``concept:name`` -> the case id).
AttributeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_ .\-]{0,99}$")]
AttributeValue = (
    Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH)] | bool | int | float | None
)


class PushedEvent(BaseModel):
    """One event as a system pushes it."""

    model_config = ConfigDict(extra="forbid")

    event_id: Identifier = Field(
        description="unique per source; a replay with a known id is skipped"
    )
    case_id: Identifier
    activity: Identifier
    timestamp: AwareDatetime = Field(description="completion time, ISO 8601 with a zone")
    start_timestamp: AwareDatetime | None = Field(default=None, description="start time, if known")
    resource: Annotated[str, StringConstraints(max_length=MAX_ID_LENGTH)] | None = None
    lifecycle: Annotated[str, StringConstraints(max_length=50)] | None = Field(
        default=None, description="start / complete / ... (paired as for files)"
    )
    attributes: dict[AttributeName, AttributeValue] = Field(
        default_factory=dict, max_length=MAX_ATTRIBUTES, description="case attributes (flat)"
    )
    cohort: Literal["treatment", "control"] | None = None

    @field_validator("timestamp", "start_timestamp")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _start_not_after_end(self) -> PushedEvent:
        if self.start_timestamp is not None and self.start_timestamp > self.timestamp:
            raise ValueError("start_timestamp is after timestamp")
        if "cohort" in self.attributes:
            raise ValueError("give the cohort in 'cohort', not in attributes")
        return self

    def digest(self) -> str:
        """A hash of the event's content (tells a true replay from a different event reusing an id)."""
        raw = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()


class EventItemError(BaseModel):
    """One problem in a pushed batch: the item's index, its field and what is wrong."""

    index: int | None = Field(
        description="position of the event in the batch (None: the batch itself)"
    )
    field: str
    message: str

    def __str__(self) -> str:
        where = f"events[{self.index}]" if self.index is not None else "batch"
        return f"{where}.{self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class BatchInvalid(EventLogError):
    """A pushed batch failed validation; nothing of it was stored."""

    def __init__(self, errors: list[EventItemError]) -> None:
        shown = "; ".join(str(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"{len(errors)} invalid field(s): {shown}{more}")
        self.errors = errors


class BatchTooLarge(EventLogError):
    """A pushed batch holds more events than one request may carry."""


def validate_batch(items: Any, max_events: int = MAX_BATCH_EVENTS) -> list[PushedEvent]:
    """Every item of ``items`` as a PushedEvent, or BatchInvalid listing each bad item and field
    (BatchTooLarge when there are more than ``max_events``)."""
    if not isinstance(items, list):
        raise BatchInvalid(
            [
                EventItemError(
                    index=None,
                    field="events",
                    message=f"expected a list, got {type(items).__name__}",
                )
            ]
        )
    if len(items) > max_events:
        raise BatchTooLarge(f"{len(items)} events in one batch; at most {max_events} per request")
    if not items:
        raise BatchInvalid([EventItemError(index=None, field="events", message="no events")])
    events: list[PushedEvent] = []
    errors: list[EventItemError] = []
    for i, item in enumerate(items):
        try:
            events.append(PushedEvent.model_validate(item))
        except ValidationError as exc:
            errors += [
                EventItemError(index=i, field=".".join(str(p) for p in e["loc"]), message=e["msg"])
                for e in exc.errors(include_url=False)
            ]
    if errors:
        raise BatchInvalid(errors)
    return events


def records_from_pushed(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records for :func:`frame_from_records` from pushed events (PushedEvent fields, as stored).

    Timestamps become ISO text in UTC (naive values, as SQLite returns them, are UTC).
    """
    records = []
    for event in events:
        row: dict[str, Any] = {
            CASE: event["case_id"],
            ACTIVITY: event["activity"],
            TIMESTAMP: _iso(event["timestamp"]),
        }
        if event.get("start_timestamp") is not None:
            row[START] = _iso(event["start_timestamp"])
        if event.get("resource") is not None:
            row[RESOURCE] = event["resource"]
        if event.get("lifecycle") is not None:
            row[LIFECYCLE] = event["lifecycle"]
        for key, value in (event.get("attributes") or {}).items():
            row[f"{CASE_PREFIX}{key}"] = value
        if event.get("cohort") is not None:
            row[COHORT] = event["cohort"]
        records.append(row)
    return records


def frame_from_pushed(events: Sequence[Mapping[str, Any]], source: str) -> pd.DataFrame:
    """The canonical event frame of pushed events in arrival order (``source`` names it)."""
    if not events:
        raise EventLogError(f"pushed source {source!r}: no events")
    frame = frame_from_records(records_from_pushed(events))
    frame.attrs.update(source=f"pushed:{source}", format="pushed")
    return frame


def _iso(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    raise EventLogError(f"pushed event time {value!r} is not a datetime")


__all__ = [
    "MAX_BATCH_EVENTS",
    "SOURCE_PATTERN",
    "BatchInvalid",
    "BatchTooLarge",
    "EventItemError",
    "PushedEvent",
    "SourceName",
    "frame_from_pushed",
    "records_from_pushed",
    "validate_batch",
]
