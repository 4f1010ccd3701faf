"""Throughput for ``GET /monitor``: cases completed per period, per cohort, from the Watchdog's
own measurements.

Each time the Watchdog measures a live change (its ``measure_kpi`` tool), it counts per cohort
(treatment / control, or after / before) the cases it saw since the change and how many of
them are still open; the audit trail keeps that result. Completed cases are the difference.
Measurements of one change are cumulative (they all read the events since the change), so the
cases completed in a period are the increase since the plan's previous measurement, and the
first period starts at the plan's first write. A ``before`` cohort is the history before the
change: its count does not grow, so it shows as one period.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from closedloop.api.models import UtcDatetime
from closedloop.contracts import GuardrailKpis
from closedloop.store.models import AuditEvent, Execution, Plan

MEASURE_TOOL = "measure_kpi"
WATCHDOG = "watchdog"


class ThroughputPoint(BaseModel):
    """Cases of one cohort completed in one period (between two measurements of a plan)."""

    at: UtcDatetime = Field(description="end of the period: when the Watchdog measured")
    since: UtcDatetime | None = Field(
        description="start of the period: the plan's previous measurement, else its first write"
    )
    plan_id: int
    cases: int = Field(ge=0, description="cases completed in the period")
    total: int = Field(ge=0, description="cases completed since the change (or in the history)")
    open_cases: int = Field(ge=0, description="cases of the cohort still open when measured")


class ThroughputSeries(BaseModel):
    """Cases completed per period of one cohort, oldest first."""

    cohort: str
    points: list[ThroughputPoint]


def _naive(at: datetime) -> datetime:
    return at.replace(tzinfo=None)


def _measured(event: AuditEvent) -> dict[str, GuardrailKpis]:
    """The per-cohort counts of one Watchdog ``measure_kpi`` result (empty when it has none)."""
    payload: Any = event.payload or {}
    if payload.get("tool") != MEASURE_TOOL or not isinstance(payload.get("result"), dict):
        return {}
    cohorts = payload["result"].get("guardrail_kpis") or {}
    out = {}
    for cohort, raw in cohorts.items() if isinstance(cohorts, dict) else ():
        try:
            out[str(cohort)] = GuardrailKpis.model_validate(raw)
        except ValidationError:
            continue  # a result of an older shape: not counted rather than guessed
    return out


def _plan_of(event: AuditEvent, plans: list[Plan]) -> Plan | None:
    """The plan a measurement of ``event.run_id`` was about: the run's latest plan before it."""
    before = [
        p
        for p in plans
        if p.run_id == event.run_id and _naive(p.created_at) <= _naive(event.created_at)
    ]
    return max(before, key=lambda p: (p.created_at, p.id or 0)) if before else None


def throughput(
    plans: list[Plan],
    events: Iterable[AuditEvent],
    writes: Iterable[Execution],
    since: datetime | None = None,
) -> list[ThroughputSeries]:
    """Cases completed per period per cohort of ``plans`` from the Watchdog's measurements in
    ``events`` (audit rows of the plans' runs, any order); ``writes`` date each plan's change.
    Periods ending before ``since`` are left out (they still set the next period's start)."""
    first_write: dict[int, datetime] = {}
    for w in writes:
        at = w.finished_at or w.created_at
        if w.plan_id not in first_write or _naive(at) < _naive(first_write[w.plan_id]):
            first_write[w.plan_id] = at
    grouped: dict[str, list[ThroughputPoint]] = {}
    last: dict[tuple[int, str], tuple[datetime, int]] = {}
    watchdog = [e for e in events if e.actor == WATCHDOG and e.kind == "tool_result"]
    for event in sorted(watchdog, key=lambda e: (_naive(e.created_at), e.id or 0)):
        counts = _measured(event)
        plan = _plan_of(event, plans) if counts else None
        if plan is None or plan.id is None:
            continue
        for cohort, k in counts.items():
            done = max(k.cases - k.open_cases, 0)
            previous = last.get((plan.id, cohort))
            start = previous[0] if previous else first_write.get(plan.id)
            grown = done - previous[1] if previous else done
            last[(plan.id, cohort)] = (event.created_at, done)
            if previous and grown == 0 and cohort == "before":
                continue  # the history before the change: one period, not repeated
            if since is not None and _naive(event.created_at) < _naive(since):
                continue
            grouped.setdefault(cohort, []).append(
                ThroughputPoint(
                    at=event.created_at,
                    since=start,
                    plan_id=plan.id,
                    # Fewer than before means the measurement was redone from a new position.
                    cases=grown if grown >= 0 else done,
                    total=done,
                    open_cases=k.open_cases,
                )
            )
    return [ThroughputSeries(cohort=c, points=p) for c, p in sorted(grouped.items())]
