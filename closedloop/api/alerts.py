"""``POST /alerts``: an external process-mining alert (Celonis, Power Automate Process Mining, any
webhook) imported as an Opportunity.

The payload's fields are found under the names in :class:`closedloop.api.ingest_models.AlertIn`
(documented in docs/api.md). The opportunity's fingerprint is the one Triage computes
(process, pattern, activity), so an alert and a mined finding about the same thing are one
opportunity: an alert seen again raises its ``seen_count``; a run that later mines the process
links it to its insight. A redelivery with the same ``alert_id`` from the same sender changes
nothing. Text from the sender is stored as data; the rationale shown to people is escaped.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import select, update

from closedloop.api.cards import escape_markdown
from closedloop.api.ingest import read_json
from closedloop.api.ingest_models import AlertIn, AlertOut
from closedloop.api.service import Service
from closedloop.store.db import transaction
from closedloop.store.models import Alert, Opportunity
from closedloop.tools.log.ingest_events import SOURCE_PATTERN
from closedloop.tools.mining.opportunities import fingerprint, score_insight

MAX_ALERT_BYTES = 64 * 1024
DEFAULT_SOURCE = "webhook"
# A KPI's name says what kind of finding it is (the kinds Triage knows), else "kpi".
_REWORK = re.compile(r"rework|repeat|redo|loop|re-?open", re.IGNORECASE)
_WAITING = re.compile(
    r"wait|delay|throughput|cycle|lead|backlog|queue|duration|aging|age\b|time", re.IGNORECASE
)
_WRAPPERS = ("data", "alert", "body", "payload")


class InvalidAlert(ValueError):
    """An alert payload without the fields an opportunity needs (answered 422)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def unwrap(body: Any) -> Any:
    """The alert object of a body that wraps it in one ``data``/``alert``/``body``/``payload`` key."""
    if isinstance(body, dict) and len(body) == 1:
        ((key, inner),) = body.items()
        if key in _WRAPPERS and isinstance(inner, dict):
            return inner
    return body


def parse_alert(body: Any, path_source: str | None) -> AlertIn:
    """The alert in ``body`` (InvalidAlert naming each missing or bad field)."""
    body = unwrap(body)
    if not isinstance(body, dict):
        raise InvalidAlert([{"field": "", "message": "expected a JSON object"}])
    try:
        alert = AlertIn.model_validate(body)
    except ValidationError as exc:
        raise InvalidAlert(
            [
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors(include_url=False)
            ]
        ) from None
    source = alert.source or path_source or DEFAULT_SOURCE
    if path_source is not None and alert.source not in (None, path_source):
        raise InvalidAlert(
            [
                {
                    "field": "source",
                    "message": f"{alert.source!r} differs from the path's {path_source!r}",
                }
            ]
        )
    return alert.model_copy(update={"source": source})


def pattern_of(alert: AlertIn) -> str:
    """The finding's kind: given, else from the KPI's name (rework, bottleneck, else kpi)."""
    if alert.pattern:
        return alert.pattern
    if _REWORK.search(alert.kpi):
        return "rework"
    return "bottleneck" if _WAITING.search(alert.kpi) else "kpi"


def excess_share(alert: AlertIn) -> float:
    """How far the value is past the threshold, as a share of the larger of the two (0 when
    there is no threshold or no breach)."""
    if alert.threshold is None:
        return 0.0
    excess = (
        alert.value - alert.threshold
        if alert.direction == "above"
        else alert.threshold - alert.value
    )
    scale = max(abs(alert.value), abs(alert.threshold))
    return max(0.0, excess) / scale if scale > 0 else 0.0


def _rationale(alert: AlertIn, pattern: str) -> str:
    limit = "no threshold" if alert.threshold is None else f"threshold {alert.threshold:g}"
    where = f" at {escape_markdown(alert.activity, 100)}" if alert.activity else ""
    text = (
        f"alert from {escape_markdown(alert.source, 64)}: {pattern}{where}, "
        f"{escape_markdown(alert.kpi, 100)} = {alert.value:g} ({alert.direction} {limit})"
    )
    return f"{text}: {escape_markdown(alert.message, 300)}" if alert.message else text


def import_alert(
    service: Service, alert: AlertIn, payload: dict[str, Any]
) -> tuple[AlertOut, bool]:
    """Store the alert and its opportunity (new, or the one with its fingerprint seen again)."""
    for attempt in range(3):
        try:
            return _import_once(service, alert, payload)
        except IntegrityError:  # a concurrent request created the same opportunity or alert
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _import_once(
    service: Service, alert: AlertIn, payload: dict[str, Any]
) -> tuple[AlertOut, bool]:
    pattern = pattern_of(alert)
    fp = fingerprint(alert.process, pattern, alert.activity)
    score = score_insight(pattern, alert.activity, excess_share(alert), 1.0)
    mapped = alert.model_dump(mode="json") | {"pattern": pattern}
    with transaction(service.engine) as session:
        if alert.alert_id is not None:
            seen = session.exec(
                select(Alert).where(Alert.source == alert.source, Alert.alert_id == alert.alert_id)
            ).first()
            if seen is not None:
                opp = session.get(Opportunity, seen.opportunity_id)
                return _out(seen, opp, created=False, replayed=True), False
        opp = session.exec(select(Opportunity).where(Opportunity.fingerprint == fp)).first()
        created = opp is None
        if opp is None:
            opp = Opportunity(
                insight_id=None,
                fingerprint=fp,
                process=alert.process,
                pattern=pattern,
                activity=alert.activity,
                attributes={"alert": mapped},
                impact=score.impact,
                feasibility=score.feasibility,
                risk=score.risk,
                priority=score.priority,
                rationale=_rationale(alert, pattern),
            )
        else:
            # One UPDATE increments in the database: two alerts at once must both count.
            changes: dict[str, Any] = {"seen_count": Opportunity.seen_count + 1}
            if opp.status in ("dismissed", "acted"):
                changes["status"] = "open"
            if opp.insight_id is None:  # mined scores, once linked, outrank an alert's
                changes |= {
                    "impact": score.impact,
                    "priority": score.priority,
                    "attributes": {**opp.attributes, "alert": mapped},
                    "rationale": _rationale(alert, pattern),
                }
            session.exec(update(Opportunity).where(Opportunity.id == opp.id).values(**changes))
            session.refresh(opp)
        session.add(opp)
        session.flush()
        row = Alert(
            source=alert.source,
            alert_id=alert.alert_id,
            fingerprint=fp,
            opportunity_id=opp.id,
            mapped=mapped,
            payload=payload,
        )
        session.add(row)
        session.flush()
        return _out(row, opp, created=created, replayed=False), created


def _out(row: Alert, opp: Opportunity, created: bool, replayed: bool) -> AlertOut:
    return AlertOut(
        opportunity_id=opp.id,
        alert=row.id,
        fingerprint=opp.fingerprint,
        created=created,
        replayed=replayed,
        process=opp.process,
        pattern=opp.pattern,
        activity=opp.activity,
        priority=opp.priority,
        seen_count=opp.seen_count,
        received_at=row.received_at,
    )


def build_router(service: Service) -> APIRouter:
    """``POST /alerts`` and ``POST /alerts/{source}`` on ``service``'s store."""
    router = APIRouter()
    responses: dict[int | str, dict[str, Any]] = {
        200: {"model": AlertOut, "description": "an opportunity seen before (or a redelivery)"},
        413: {"description": "payload over 64 KB"},
        422: {"description": "fields missing or bad"},
    }

    async def _post(request: Request, response: Response, path_source: str | None) -> AlertOut:
        body = await read_json(request, MAX_ALERT_BYTES)
        alert = parse_alert(body, path_source)
        out, created = await run_in_threadpool(import_alert, service, alert, body)
        response.status_code = 201 if created else 200
        return out

    @router.post(
        "/alerts",
        response_model=AlertOut,
        status_code=201,
        responses=responses,
        summary="Import a process-mining alert as an opportunity (deduplicated)",
    )
    async def post_alert(request: Request, response: Response) -> AlertOut:
        return await _post(request, response, None)

    @router.post(
        "/alerts/{source}",
        response_model=AlertOut,
        status_code=201,
        responses=responses,
        summary="Import an alert from the sender named in the path",
    )
    async def post_source_alert(
        request: Request, response: Response, source: str = Path(pattern=SOURCE_PATTERN)
    ) -> AlertOut:
        return await _post(request, response, source)

    return router


__all__ = ["InvalidAlert", "build_router", "import_alert", "parse_alert", "pattern_of"]
