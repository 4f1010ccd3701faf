"""Live events in: ``POST /events`` (batches, idempotent by event id), ``GET /events`` (paged
back in arrival order) and ``POST /mine`` (a pushed source through the one mining pipeline).

A batch is validated whole before anything is stored, then stored in one transaction: a
refused batch stores nothing. Too large a body or too many events is 413, a bad event is 422
naming every bad item by index and field.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from re import fullmatch
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from closedloop.api.ingest_models import EventsAccepted, EventsPage, EventView, MineIn, MineOut
from closedloop.api.service import Service
from closedloop.store.db import transaction
from closedloop.store.events import count_events, insert_events, page_events
from closedloop.store.models import Dataset, Insight, MiningRun
from closedloop.tools.errors import EventLogError
from closedloop.tools.log.ingest_events import (
    MAX_BATCH_EVENTS,
    SOURCE_PATTERN,
    BatchInvalid,
    BatchTooLarge,
    EventItemError,
    frame_from_pushed,
    validate_batch,
)
from closedloop.tools.log.snapshot import configured_key, write_snapshot
from closedloop.tools.mining.insights import insights_from_report
from closedloop.tools.mining.mine import mine

MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_MINE_EVENTS = 2_000_000
PAGE = 10_000
Progress = Callable[[str, float], None]


class UnknownSource(LookupError):
    """No event was ever pushed for the source named (answered 404)."""


class TooLarge(ValueError):
    """A request over a size limit (answered 413)."""


class BadBody(ValueError):
    """A request body that is not JSON, or pushed events that cannot be mined (answered 422)."""


async def read_json(request: Request, limit: int) -> Any:
    """The request's JSON body, refusing (TooLarge) anything over ``limit`` bytes before parsing."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"request body of {declared} bytes; at most {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"request body over {limit} bytes")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadBody(f"request body is not JSON: {exc}") from None


def _batch_of(body: Any, path_source: str | None) -> tuple[str, list[Any]]:
    """The source and the raw events of a body: ``{"source", "events"}`` or, with the source in
    the path, ``{"events"}`` or a bare list."""
    if isinstance(body, list) and path_source is not None:
        return path_source, body
    if not isinstance(body, dict):
        raise BatchInvalid(
            [
                EventItemError(
                    index=None, field="", message='expected an object {"source", "events": [...]}'
                )
            ]
        )
    unknown = sorted(set(body) - {"source", "events"})
    errors = [EventItemError(index=None, field=k, message="unknown field") for k in unknown]
    source = body.get("source", path_source)
    if path_source is not None and source != path_source:
        errors.append(
            EventItemError(
                index=None,
                field="source",
                message=f"{source!r} differs from the path's {path_source!r}",
            )
        )
    if not isinstance(source, str) or not fullmatch(SOURCE_PATTERN, source):
        errors.append(
            EventItemError(
                index=None, field="source", message=f"required, matching {SOURCE_PATTERN}"
            )
        )
    if "events" not in body:
        errors.append(EventItemError(index=None, field="events", message="required"))
    if errors:
        raise BatchInvalid(errors)
    return source, body["events"]


def _view(row: Any) -> EventView:
    return EventView(
        seq=row.id,
        event_id=row.event_id,
        case_id=row.case_id,
        activity=row.activity,
        timestamp=row.timestamp,
        start_timestamp=row.start_timestamp,
        resource=row.resource,
        lifecycle=row.lifecycle,
        cohort=row.cohort,
        attributes=dict(row.attributes),
        received_at=row.received_at,
    )


def store_batch(service: Service, source: str, raw_events: Any) -> EventsAccepted:
    """Validate every event, then store the new ones in one transaction."""
    events = validate_batch(raw_events, MAX_BATCH_EVENTS)
    rows = [
        {**e.model_dump(exclude={"attributes"}), "attributes": e.attributes, "digest": e.digest()}
        for e in events
    ]
    with transaction(service.engine) as session:
        done = insert_events(session, source, rows)
    return EventsAccepted(
        source=source,
        received=len(rows),
        inserted=len(done.inserted),
        duplicates=len(done.duplicates),
        conflicts=done.conflicts[:100],
    )


def stored_events(service: Service, source: str) -> list[dict[str, Any]]:
    """Every pushed event of ``source`` in arrival order (UnknownSource when there is none)."""
    with transaction(service.engine) as session:
        total = count_events(session, source)
        if total == 0:
            raise UnknownSource(f"no events were pushed for source {source!r}")
        if total > MAX_MINE_EVENTS:
            raise TooLarge(
                f"source {source!r} holds {total} events; mining takes at most {MAX_MINE_EVENTS}"
            )
        out: list[dict[str, Any]] = []
        after = 0
        while rows := page_events(session, source, after, PAGE):
            out += [row.model_dump() for row in rows]
            after = rows[-1].id
    return out


def mine_source(service: Service, body: MineIn, progress: Progress | None = None) -> MineOut:
    """Mine a pushed source with ``closedloop.tools.mining.mine``; stores dataset, mining run and
    insights as an observed log would be."""
    progress = progress or _no_progress
    progress("reading the pushed events", 0.05)
    events = stored_events(service, body.source)
    frame = frame_from_pushed(events, body.source)
    digest = hashlib.sha256(
        json.dumps([(e["id"], e["digest"]) for e in events]).encode()
    ).hexdigest()
    return mine_frame(
        service,
        frame,
        name=f"{body.source} pushed events",
        source=f"pushed:{body.source}",
        fmt="pushed",
        digest=digest,
        label=body.source,
        events=len(events),
        threshold=body.bottleneck_threshold_hours,
        sla_hours=body.sla_hours,
        progress=progress,
    )


def _no_progress(stage: str, share: float) -> None:
    """Progress sink of a synchronous call (nobody watches)."""


def mine_frame(
    service: Service,
    frame: Any,
    *,
    name: str,
    source: str,
    fmt: str,
    digest: str,
    label: str,
    events: int,
    threshold: float | None,
    sla_hours: float | None,
    progress: Progress,
) -> MineOut:
    """Mine an event frame and store its dataset snapshot, mining run and insights."""
    started = time.perf_counter()
    progress("mining the process", 0.2)
    threshold = threshold or service.settings.bottleneck_threshold_hours
    report = mine(frame, bottleneck_threshold_hours=threshold, sla_hours=sla_hours)
    report_json = report.model_dump(mode="json")
    progress("storing the snapshot and insights", 0.8)
    # Owner-only, atomic, encrypted with CLOSEDLOOP_SNAPSHOT_KEY when set.
    artifact = write_snapshot(
        frame, service.settings.home / "datasets", digest, configured_key(service.settings)
    )
    insights = insights_from_report(report_json, frame)
    with transaction(service.engine) as session:
        dataset = Dataset(
            name=name,
            source=source,
            format=fmt,
            events=events,
            cases=report.cases,
            sha256=digest,
            artifact=str(artifact),
        )
        session.add(dataset)
        session.flush()
        mining = MiningRun(
            dataset_id=dataset.id,
            report=report_json,
            duration_s=round(time.perf_counter() - started, 3),
        )
        session.add(mining)
        session.flush()
        for item in insights:
            session.add(Insight(mining_run_id=mining.id, **item.model_dump()))
    progress("done", 1.0)
    return MineOut(
        source=label,
        events=events,
        dataset_id=dataset.id,
        mining_run_id=mining.id,
        insights=len(insights),
        report=report_json,
    )


def build_router(service: Service) -> APIRouter:
    """The ``/events`` and ``/mine`` endpoints on ``service``'s store."""
    router = APIRouter()
    refused = {
        413: {"description": "body or batch too large"},
        422: {"description": "invalid batch: every bad item by index and field"},
    }

    async def _post(request: Request, path_source: str | None) -> EventsAccepted:
        body = await read_json(request, MAX_BODY_BYTES)
        source, raw = _batch_of(body, path_source)
        return await run_in_threadpool(store_batch, service, source, raw)

    @router.post(
        "/events",
        response_model=EventsAccepted,
        responses=refused,
        summary="Push a batch of events (idempotent by source and event id)",
    )
    async def post_events(request: Request) -> EventsAccepted:
        return await _post(request, None)

    @router.post(
        "/events/{source}",
        response_model=EventsAccepted,
        responses=refused,
        summary="Push a batch of events of the source in the path",
    )
    async def post_source_events(
        request: Request, source: Annotated[str, Path(pattern=SOURCE_PATTERN)]
    ) -> EventsAccepted:
        return await _post(request, source)

    @router.get(
        "/events",
        response_model=EventsPage,
        summary="A source's pushed events in arrival order, after a cursor",
    )
    def get_events(
        source: Annotated[str, Query(pattern=SOURCE_PATTERN)],
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=PAGE)] = 1000,
    ) -> EventsPage:
        with transaction(service.engine) as session:
            rows = page_events(session, source, after, limit)
        return EventsPage(
            source=source,
            events=[_view(r) for r in rows],
            next_after=rows[-1].id if rows else after,
            more=len(rows) == limit,
        )

    @router.post(
        "/mine",
        response_model=MineOut,
        responses={404: {"description": "unknown source"}},
        summary="Mine a pushed source (the same pipeline as files and connectors)",
    )
    def post_mine(body: MineIn) -> MineOut:
        try:
            return mine_source(service, body)
        except EventLogError as exc:  # the pushed events cannot make a log (e.g. only starts)
            raise BadBody(f"source {body.source!r}: {exc}") from exc

    return router


__all__ = [
    "BadBody",
    "BatchInvalid",
    "BatchTooLarge",
    "TooLarge",
    "UnknownSource",
    "build_router",
    "mine_source",
    "read_json",
    "store_batch",
]
