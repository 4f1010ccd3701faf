"""Long work as jobs with progress: ``POST /mine/jobs`` (a pushed source), ``POST /mine/upload``
(an uploaded log file) and ``GET /jobs/{id}``.

A job runs on one worker thread per app (the machine's cores are shared with the loop) and
reports its stage and a 0..1 progress; its result is what ``POST /mine`` answers, and the
dataset, mining run and insights are in the store as for any mined log. Job records live in
the serving process (a restart forgets them, not their results).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from closedloop.api.auth import Analyst, Caller
from closedloop.api.ingest import BadBody, TooLarge, mine_frame, mine_source
from closedloop.api.ingest_models import MineIn
from closedloop.api.service import Service
from closedloop.contracts import RunNotFound
from closedloop.tools.errors import EventLogError, ToolError

log = logging.getLogger("closedloop.api.jobs")
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_JOBS_KEPT = 200
SUFFIXES = (".csv", ".xes", ".xes.gz", ".parquet")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,120}$")


class Job(BaseModel):
    """A job's state: ``queued`` -> ``running`` -> ``done`` | ``failed``."""

    id: str
    kind: str
    status: Literal["queued", "running", "done", "failed"] = "queued"
    stage: str = "queued"
    progress: float = Field(default=0.0, ge=0, le=1)
    by: str
    created_at: datetime
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None


class Jobs:
    """The jobs of one app, run one at a time on a worker thread."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="closedloop-job")

    def get(self, job_id: str) -> Job:
        """A copy of the job (RunNotFound -> 404 for an unknown id)."""
        with self._lock:
            if job_id not in self._jobs:
                raise RunNotFound(f"no job {job_id!r}")
            return self._jobs[job_id].model_copy()

    def all(self) -> list[Job]:
        """Every job kept, newest first."""
        with self._lock:
            return sorted(
                (j.model_copy() for j in self._jobs.values()),
                key=lambda j: j.created_at,
                reverse=True,
            )

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            self._jobs[job_id] = self._jobs[job_id].model_copy(update=changes)

    def submit(
        self, kind: str, by: str, work: Callable[[Callable[[str, float], None]], BaseModel]
    ) -> Job:
        """Queue ``work(progress)``; its model is the job's result, a ToolError its error."""
        job = Job(id=f"job-{uuid.uuid4().hex[:12]}", kind=kind, by=by, created_at=datetime.now(UTC))
        with self._lock:
            if len(self._jobs) >= MAX_JOBS_KEPT:  # forget the oldest finished one
                done = [j for j in self._jobs.values() if j.finished_at is not None]
                if done:
                    del self._jobs[min(done, key=lambda j: j.created_at).id]
            self._jobs[job.id] = job

        def progress(stage: str, share: float) -> None:
            self._update(job.id, stage=stage, progress=round(min(max(share, 0.0), 1.0), 3))

        def run() -> None:
            self._update(job.id, status="running", stage="starting")
            try:
                result = work(progress)
            except (ToolError, BadBody, TooLarge, LookupError, ValueError, OSError) as exc:
                first = (str(exc).splitlines() or [""])[0]
                self._update(
                    job.id,
                    status="failed",
                    error=f"{type(exc).__name__}: {first}"[:500],
                    finished_at=datetime.now(UTC),
                )
                return
            except Exception as exc:  # the job's boundary: a job never stays "running" for good
                log.exception("job %s failed", job.id)
                self._update(
                    job.id,
                    status="failed",
                    error=f"internal error: {type(exc).__name__}",
                    finished_at=datetime.now(UTC),
                )
                return
            self._update(
                job.id,
                status="done",
                stage="done",
                progress=1.0,
                result=result.model_dump(mode="json"),
                finished_at=datetime.now(UTC),
            )

        self._pool.submit(run)
        return job.model_copy()

    def close(self) -> None:
        """Stop taking jobs; running ones finish."""
        self._pool.shutdown(wait=False, cancel_futures=True)


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
    jobs = Jobs()
    service.jobs = jobs  # type: ignore[attr-defined]
    router = APIRouter(tags=["jobs"])

    @router.post(
        "/mine/jobs",
        response_model=Job,
        status_code=202,
        summary="Mine a pushed source in the background; poll GET /jobs/{id} for progress",
    )
    def mine_job(body: MineIn, who: Analyst) -> Job:
        return jobs.submit("mine", who.name, lambda progress: mine_source(service, body, progress))

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
        )

    @router.get(
        "/jobs/{job_id}", response_model=Job, summary="A job's status, stage, progress and result"
    )
    def get_job(job_id: Annotated[str, Path(max_length=64)], _: Caller) -> Job:
        return jobs.get(job_id)

    @router.get(
        "/jobs", response_model=list[Job], summary="Jobs of this server process, newest first"
    )
    def list_jobs(_: Caller) -> list[Job]:
        return jobs.all()

    return router
