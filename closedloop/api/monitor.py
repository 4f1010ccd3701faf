"""``GET /monitor``: a scope's KPIs over time, the change markers of its plans, and alerts.

Series are the Watchdog's measurements (``KpiSnapshot``: cycle time, SLA attainment, rework,
reopen and failure rates, cost per case; treatment vs control). Throughput is the cases
completed per period per cohort (:mod:`closedloop.api.monitor_throughput`). Markers are the writes
(executions) and verdicts of the scope's plans. Alerts are raised from the same rows:

- ``sla_breach``: a treatment SLA attainment measured below ``sla_target``;
- ``guardrail_breach``: a verdict that rolled a change back, or a treatment rework / reopen /
  failure rate whose interval lies wholly above control's;
- ``write_failed``: a write that failed or could not be verified.

``GET /monitor/view`` is a small page (no external assets) that draws these series per KPI,
treatment vs control with intervals, throughput as bars per period, the markers as dashed
lines, and lists the alerts.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlmodel import select

from closedloop.api.auth import Caller
from closedloop.api.models import SCOPE_PATTERN, UtcDatetime
from closedloop.api.monitor_throughput import ThroughputSeries, throughput
from closedloop.api.service import Service
from closedloop.store.db import transaction
from closedloop.store.models import AuditEvent, Execution, KpiSnapshot, Plan, Verdict

PAGE = Path(__file__).with_name("monitor_page.html")
_WORSE_WHEN_HIGHER = ("rework_rate", "reopen_rate", "failure_rate")


class KpiPoint(BaseModel):
    at: UtcDatetime
    plan_id: int
    n: int
    mean: float
    ci_low: float
    ci_high: float


class KpiSeries(BaseModel):
    kpi: str
    cohort: str
    points: list[KpiPoint]


class Marker(BaseModel):
    at: UtcDatetime
    kind: Literal["write", "verdict"]
    plan_id: int
    detail: str


class MonitorAlert(BaseModel):
    at: UtcDatetime
    kind: Literal["sla_breach", "guardrail_breach", "write_failed"]
    plan_id: int
    detail: str


class MonitorOut(BaseModel):
    scope: str
    sla_target: float
    series: list[KpiSeries]
    throughput: list[ThroughputSeries] = Field(
        default_factory=list, description="cases completed per period, per cohort"
    )
    markers: list[Marker]
    alerts: list[MonitorAlert]
    plans: int = Field(description="plans of the scope in the window")


def monitor(service: Service, scope: str, sla_target: float, since: datetime | None) -> MonitorOut:
    """The monitoring view of ``scope`` from the store."""
    with transaction(service.engine) as session:
        plans = list(session.exec(select(Plan).where(Plan.scope == scope)).all())
        plan_ids = [p.id for p in plans]
        measured = (
            session.exec(
                select(AuditEvent).where(
                    AuditEvent.run_id.in_({p.run_id for p in plans}),
                    AuditEvent.actor == "watchdog",
                    AuditEvent.kind == "tool_result",
                )
            ).all()
            if plans
            else []
        )
        snaps = (
            session.exec(
                select(KpiSnapshot)
                .where(KpiSnapshot.plan_id.in_(plan_ids))
                .order_by(KpiSnapshot.created_at, KpiSnapshot.id)
            ).all()
            if plan_ids
            else []
        )
        writes = (
            session.exec(
                select(Execution)
                .where(Execution.plan_id.in_(plan_ids))
                .order_by(Execution.created_at)
            ).all()
            if plan_ids
            else []
        )
        verdicts = (
            session.exec(
                select(Verdict).where(Verdict.plan_id.in_(plan_ids)).order_by(Verdict.created_at)
            ).all()
            if plan_ids
            else []
        )
    flow = throughput(plans, measured, writes, since)
    if since is not None:
        cut = since.replace(tzinfo=None)
        snaps = [s for s in snaps if s.created_at.replace(tzinfo=None) >= cut]
        writes = [w for w in writes if w.created_at.replace(tzinfo=None) >= cut]
        verdicts = [v for v in verdicts if v.created_at.replace(tzinfo=None) >= cut]
    grouped: dict[tuple[str, str], list[KpiPoint]] = {}
    for s in snaps:
        grouped.setdefault((s.kpi, s.cohort), []).append(
            KpiPoint(
                at=s.window_end or s.created_at,
                plan_id=s.plan_id,
                n=s.n,
                mean=s.mean,
                ci_low=s.ci_low,
                ci_high=s.ci_high,
            )
        )
    series = [KpiSeries(kpi=k, cohort=c, points=p) for (k, c), p in sorted(grouped.items())]
    markers = [
        Marker(
            at=w.finished_at or w.created_at,
            kind="write",
            plan_id=w.plan_id,
            detail=f"{w.action}: {w.status}",
        )
        for w in writes
    ]
    markers += [
        Marker(
            at=v.created_at,
            kind="verdict",
            plan_id=v.plan_id,
            detail=f"{v.decision}: {v.kpi} changed {v.delta:+.3g} [{v.ci_low:+.3g}, {v.ci_high:+.3g}]",
        )
        for v in verdicts
    ]
    markers.sort(key=lambda m: m.at)
    return MonitorOut(
        scope=scope,
        sla_target=sla_target,
        series=series,
        throughput=flow,
        markers=markers,
        alerts=_alerts(snaps, writes, verdicts, sla_target),
        plans=len(plan_ids),
    )


def _checks(snaps: list[KpiSnapshot]) -> dict[int, int]:
    """Which measurement each row belongs to (by ``id()`` of the row): one measurement writes
    each KPI and cohort of a plan once, in id order, each row with its own timestamp."""
    seen: dict[int, set[tuple[str, str]]] = {}
    number: dict[int, int] = {}
    out = {}
    for s in sorted(snaps, key=lambda r: (r.plan_id, r.id or 0)):
        key = (s.kpi, s.cohort)
        if key in seen.setdefault(s.plan_id, set()):
            seen[s.plan_id] = set()
            number[s.plan_id] = number.get(s.plan_id, 0) + 1
        seen[s.plan_id].add(key)
        out[id(s)] = number.get(s.plan_id, 0)
    return out


def _alerts(
    snaps: list[KpiSnapshot], writes: list[Execution], verdicts: list[Verdict], sla_target: float
) -> list[MonitorAlert]:
    alerts = []
    check = _checks(snaps)
    control = {(s.plan_id, s.kpi, check[id(s)]): s for s in snaps if s.cohort == "control"}
    for s in snaps:
        if s.cohort != "treatment":
            continue
        if s.kpi == "sla_attainment" and s.mean < sla_target:
            alerts.append(
                MonitorAlert(
                    at=s.created_at,
                    kind="sla_breach",
                    plan_id=s.plan_id,
                    detail=f"SLA attainment {s.mean:.1%} below the target {sla_target:.0%} "
                    f"({s.n} cases)",
                )
            )
        other = control.get((s.plan_id, s.kpi, check[id(s)]))
        if s.kpi in _WORSE_WHEN_HIGHER and other is not None and s.ci_low > other.ci_high:
            alerts.append(
                MonitorAlert(
                    at=s.created_at,
                    kind="guardrail_breach",
                    plan_id=s.plan_id,
                    detail=f"{s.kpi.replace('_', ' ')} {s.mean:.1%} in treatment vs "
                    f"{other.mean:.1%} in control",
                )
            )
    for v in verdicts:
        if v.decision == "rollback":
            alerts.append(
                MonitorAlert(
                    at=v.created_at,
                    kind="guardrail_breach",
                    plan_id=v.plan_id,
                    detail=f"rolled back: {v.kpi} changed {v.delta:+.3g}",
                )
            )
    for w in writes:
        if w.status in ("failed", "unverified"):
            alerts.append(
                MonitorAlert(
                    at=w.finished_at or w.created_at,
                    kind="write_failed",
                    plan_id=w.plan_id,
                    detail=f"{w.action}: {w.status}",
                )
            )
    return sorted(alerts, key=lambda a: a.at)


def build_router(service: Service) -> APIRouter:
    """``GET /monitor`` on ``service``'s store."""
    router = APIRouter(tags=["monitor"])

    @router.get(
        "/monitor",
        response_model=MonitorOut,
        summary="A scope's KPIs over time (treatment vs control), change markers and alerts",
    )
    def get_monitor(
        _: Caller,
        scope: Annotated[str, Query(pattern=SCOPE_PATTERN)],
        sla_target: Annotated[float, Query(gt=0, le=1)] = 0.9,
        since: Annotated[datetime | None, Query()] = None,
    ) -> MonitorOut:
        return monitor(service, scope, sla_target, since)

    @router.get("/monitor/view", response_class=HTMLResponse, include_in_schema=False)
    def monitor_view() -> HTMLResponse:
        # The page holds no data: it asks for a key and reads GET /monitor with it.
        return HTMLResponse(
            PAGE.read_text(encoding="utf-8"),
            headers={
                "Content-Security-Policy": "default-src 'self'; "
                "script-src 'unsafe-inline'; style-src 'unsafe-inline'"
            },
        )

    return router
