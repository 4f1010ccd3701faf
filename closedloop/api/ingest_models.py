"""Typed bodies of the live-input endpoints: pushed events, mining a pushed source, alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field

from closedloop.api.models import ErrorOut, UtcDatetime
from closedloop.tools.log.ingest_events import SOURCE_PATTERN, EventItemError


class EventErrorsOut(ErrorOut):
    """A refused batch (nothing stored): every bad item by index and field."""

    errors: list[EventItemError] = Field(default_factory=list)


class EventsAccepted(BaseModel):
    """What a batch did: new events stored, replays skipped (idempotent by event id)."""

    source: str
    received: int
    inserted: int
    duplicates: int = Field(
        description="events whose id the source had pushed before (or repeated)"
    )
    conflicts: list[str] = Field(
        default_factory=list,
        description="ids of duplicates whose content differs from the stored event (first 100; "
        "the stored version is kept)",
    )


class EventView(BaseModel):
    """A stored pushed event; ``seq`` is its arrival position (use it as ``after``)."""

    seq: int
    event_id: str
    case_id: str
    activity: str
    timestamp: UtcDatetime
    start_timestamp: UtcDatetime | None
    resource: str | None
    lifecycle: str | None
    cohort: str | None
    attributes: dict[str, Any]
    received_at: UtcDatetime


class EventsPage(BaseModel):
    source: str
    events: list[EventView]
    next_after: int = Field(description="cursor for the next page: pass it as ?after=")
    more: bool = Field(description="true when a full page came back (there may be more)")


class MineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(pattern=SOURCE_PATTERN, description="the pushed source to mine")
    bottleneck_threshold_hours: float | None = Field(
        default=None, gt=0, description="default: CLOSEDLOOP_BOTTLENECK_HOURS"
    )
    sla_hours: float | None = Field(default=None, gt=0)


class MineOut(BaseModel):
    source: str
    events: int
    dataset_id: int
    mining_run_id: int
    insights: int
    report: dict[str, Any] = Field(description="the MiningReport of closedloop.tools.mining.mine")


def _names(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class AlertIn(BaseModel):
    """A process-mining alert, whatever its sender calls the fields (aliases below)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    source: str | None = Field(
        default=None, pattern=SOURCE_PATTERN, description="sender, e.g. celonis (or from the path)"
    )
    alert_id: str | None = Field(
        default=None,
        max_length=200,
        validation_alias=_names("alert_id", "alertId", "signal_id", "signalId", "id"),
    )
    process: str = Field(
        min_length=1,
        max_length=200,
        validation_alias=_names("process", "processName", "process_name", "scope"),
    )
    activity: str = Field(
        default="",
        max_length=200,
        validation_alias=_names("activity", "activityName", "activity_name", "task"),
    )
    kpi: str = Field(
        min_length=1,
        max_length=200,
        validation_alias=_names(
            "kpi", "kpiName", "kpi_name", "metric", "metricName", "metric_name", "signal"
        ),
    )
    value: float = Field(
        validation_alias=_names(
            "value", "currentValue", "current_value", "kpiValue", "kpi_value", "actual"
        )
    )
    threshold: float | None = Field(
        default=None,
        validation_alias=_names(
            "threshold", "thresholdValue", "threshold_value", "limit", "target"
        ),
    )
    direction: Literal["above", "below"] = Field(
        default="above", description="a breach is the value above (default) or below the threshold"
    )
    unit: str | None = Field(default=None, max_length=50)
    pattern: Literal["bottleneck", "rework", "kpi"] | None = Field(
        default=None, description="default: from the KPI's name (see docs/api.md)"
    )
    timestamp: AwareDatetime | None = Field(
        default=None,
        validation_alias=_names(
            "timestamp", "triggeredAt", "triggered_at", "time", "eventTime", "createdAt"
        ),
    )
    message: str = Field(
        default="",
        max_length=2000,
        validation_alias=_names("message", "description", "text", "title"),
    )


class AlertOut(BaseModel):
    opportunity_id: int
    alert: int = Field(description="the stored alert row")
    fingerprint: str
    created: bool = Field(description="a new opportunity (false: an existing one seen again)")
    replayed: bool = Field(
        description="this sender's alert_id was received before; nothing changed"
    )
    process: str
    pattern: str
    activity: str
    priority: float
    seen_count: int
    received_at: datetime
