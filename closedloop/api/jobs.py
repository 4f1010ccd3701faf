"""Long work as jobs with progress: ``POST /mine/jobs`` (a pushed source), ``POST /mine/upload``
(an uploaded log file) and ``GET /jobs/{id}``.

A job runs on one worker thread per app (the machine's cores are shared with the loop) and
reports its stage and a 0..1 progress; its result is what ``POST /mine`` answers, and the
dataset, mining run and insights are in the store as for any mined log. Jobs are kept in the
store and survive a restart of the serving process; one its process did not finish is failed
as interrupted (:mod:`closedloop.api.job_registry`).
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel

from closedloop.api.auth import Analyst, Caller
from closedloop.api.ingest import BadBody, TooLarge, mine_frame, mine_source
from closedloop.api.ingest_models import MineIn
from closedloop.api.job_registry import INTERRUPTED, MAX_JOBS_KEPT, Job, Jobs
from closedloop.api.service import Service
from closedloop.tools.errors import EventLogError

MAX_UPLOAD_BYTES = 64 * 1024 * 1024
SUFFIXES = (".csv", ".xes", ".xes.gz", ".parquet")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,120}$")


def _mine_upload(
    service: Service,
    path: os.PathLike[str],
    name: str,
    digest: str,
    threshold: float | None,
    sla_hours: float | None,
    progress: Callable[[str, float], None],
) -> BaseModel:
    from closedloop.tools.log import load_event_log

    progress("reading the log", 0.05)
    try:
        frame = load_event_log(path)
    except EventLogError as exc:
        raise BadBody(f"{name}: {exc}") from None
    return mine_frame(
        service,
        frame,
        name=name,
        source=f"upload:{name}",
        fmt=name.rsplit(".", 1)[-1],
        digest=digest,
        label=name,
        events=len(frame),
        threshold=threshold,
        sla_hours=sla_hours,
        progress=progress,
    )


def build_router(service: Service) -> APIRouter:
    """Job endpoints on ``service``; the job registry is ``service.jobs``."""
    jobs = Jobs(service.engine)
    service.jobs = jobs  # type: ignore[attr-defined]
    router = APIRouter(tags=["jobs"])

    @router.post(
        "/mine/jobs",
        response_model=Job,
        status_code=202,
        summary="Mine a pushed source in the background; poll GET /jobs/{id} for progress",
    )
    def mine_job(body: MineIn, who: Analyst) -> Job:
        return jobs.submit(
            "mine",
            who.name,
            lambda progress: mine_source(service, body, progress),
            request=body.model_dump(mode="json", exclude_none=True),
        )

    @router.post(
        "/mine/upload",
        response_model=Job,
        status_code=202,
        responses={413: {"description": "over 64 MB"}, 422: {"description": "bad file name"}},
        summary="Upload an event log (raw body: CSV, XES, XES.gz or Parquet) and mine it as a job",
    )
    async def mine_upload(
        request: Request,
        who: Analyst,
        filename: Annotated[str, Query(description="the log's file name, e.g. tickets.csv")],
        bottleneck_threshold_hours: Annotated[float | None, Query(gt=0)] = None,
        sla_hours: Annotated[float | None, Query(gt=0)] = None,
    ) -> Job:
        if not _NAME.match(filename) or not filename.lower().endswith(SUFFIXES):
            raise BadBody(f"filename must be a plain name ending in {', '.join(SUFFIXES)}")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
            raise TooLarge(f"upload of {declared} bytes; at most {MAX_UPLOAD_BYTES} bytes")
        folder = service.settings.home / "uploads"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / f"{uuid.uuid4().hex[:12]}-{filename}"
        digest = hashlib.sha256()
        size = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    out.close()
                    path.unlink(missing_ok=True)
                    raise TooLarge(f"upload over {MAX_UPLOAD_BYTES} bytes")
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            path.unlink(missing_ok=True)
            raise BadBody("the upload is empty: send the log file as the request body")
        return jobs.submit(
            "mine",
            who.name,
            lambda progress: _mine_upload(
                service,
                path,
                filename,
                digest.hexdigest(),
                bottleneck_threshold_hours,
                sla_hours,
                progress,
            ),
            request={"filename": filename, "bytes": size, "sha256": digest.hexdigest()},
        )

    @router.get(
        "/jobs/{job_id}", response_model=Job, summary="A job's status, stage, progress and result"
    )
    def get_job(job_id: Annotated[str, Path(max_length=64)], _: Caller) -> Job:
        return jobs.get(job_id)

    @router.get("/jobs", response_model=list[Job], summary="Jobs kept in the store, newest first")
    def list_jobs(_: Caller) -> list[Job]:
        return jobs.all()

    return router


__all__ = [
    "INTERRUPTED",
    "MAX_JOBS_KEPT",
    "MAX_UPLOAD_BYTES",
    "SUFFIXES",
    "Job",
    "Jobs",
    "build_router",
]
