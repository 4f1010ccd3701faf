"""The REST API's job registry: jobs in the store, run one at a time on a worker thread.

Job records live in the store (``JobRecord``), so they survive a restart of the serving
process. A job is owned by the process that accepted it; one that was queued or running when
its process died (a restart, a crash, ``kill -9``) is failed with stage ``interrupted`` and a
message saying so, as soon as any process serving the store looks at its jobs (at start and
on every read). Whether an owner is gone is decided as for loop runs
(:mod:`closedloop.graphs.owners`): on the same host when its process is gone, on another host
when the job has not moved for ``STALE_AFTER``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from closedloop.api.ingest import BadBody, TooLarge
from closedloop.contracts import RunNotFound
from closedloop.crashpoints import crash_point
from closedloop.graphs.owners import owner_gone, owner_id
from closedloop.store.db import transaction
from closedloop.store.models import JobRecord
from closedloop.tools.errors import ToolError

log = logging.getLogger("closedloop.api.jobs")
MAX_JOBS_KEPT = 200
_UNFINISHED = ("queued", "running")
INTERRUPTED = "interrupted"


class Job(BaseModel):
    """A job's state: ``queued`` -> ``running`` -> ``done`` | ``failed`` (stage ``interrupted``
    when the process running it stopped first)."""

    id: str
    kind: str
    status: Literal["queued", "running", "done", "failed"] = "queued"
    stage: str = "queued"
    progress: float = Field(default=0.0, ge=0, le=1)
    by: str
    request: dict[str, Any] = Field(
        default_factory=dict, description="what was asked: the source, or the uploaded file"
    )
    created_at: datetime
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None


def _view(row: JobRecord) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        status=row.status,  # type: ignore[arg-type]
        stage=row.stage,
        progress=row.progress,
        by=row.by,
        request=row.request or {},
        created_at=row.created_at,
        finished_at=row.finished_at,
        result=row.result,
        error=row.error,
    )


class Jobs:
    """The jobs of one store, run one at a time on this process's worker thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.owner = owner_id()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="closedloop-job")
        self.reap()

    def reap(self, now: datetime | None = None) -> list[str]:
        """Fail every queued or running job whose process is gone; the ids failed."""
        now = now or datetime.now(UTC)
        failed = []
        with transaction(self._engine) as session:
            rows = session.exec(
                select(JobRecord).where(col(JobRecord.status).in_(_UNFINISHED))
            ).all()
            for row in rows:
                if row.owner == self.owner or not owner_gone(row.owner, row.updated_at, now):
                    continue
                was = f"{row.status}, at {row.stage} ({row.progress:.0%})"
                row.status, row.stage, row.finished_at, row.updated_at = (
                    "failed",
                    INTERRUPTED,
                    now,
                    now,
                )
                row.error = (
                    f"interrupted: the server process running this job ({row.owner}) stopped "
                    f"before it finished (it was {was}); nothing was lost but the job's own "
                    "work: submit it again"
                )[:500]
                failed.append(row.id)
        for job_id in failed:
            log.warning("job %s failed: its process stopped before it finished", job_id)
        return failed

    def get(self, job_id: str) -> Job:
        """The job (RunNotFound -> 404 for an unknown id)."""
        self.reap()
        with transaction(self._engine) as session:
            row = session.get(JobRecord, job_id)
            if row is None:
                raise RunNotFound(f"no job {job_id!r}")
            return _view(row)

    def all(self) -> list[Job]:
        """The newest jobs kept (at most ``MAX_JOBS_KEPT``), newest first."""
        self.reap()
        with transaction(self._engine) as session:
            rows = session.exec(
                select(JobRecord).order_by(col(JobRecord.created_at).desc()).limit(MAX_JOBS_KEPT)
            ).all()
            return [_view(r) for r in rows]

    def _update(self, job_id: str, **changes: Any) -> None:
        with transaction(self._engine) as session:
            row = session.get(JobRecord, job_id)
            for key, value in changes.items():
                setattr(row, key, value)
            row.updated_at = datetime.now(UTC)

    def _prune(self) -> None:
        """Forget the oldest finished jobs beyond ``MAX_JOBS_KEPT`` (their results stay stored)."""
        with transaction(self._engine) as session:
            done = session.exec(
                select(JobRecord)
                .where(col(JobRecord.finished_at).is_not(None))
                .order_by(col(JobRecord.created_at).desc())
                .offset(MAX_JOBS_KEPT)
            ).all()
            for row in done:
                session.delete(row)

    def submit(
        self,
        kind: str,
        by: str,
        work: Callable[[Callable[[str, float], None]], BaseModel],
        request: dict[str, Any] | None = None,
    ) -> Job:
        """Queue ``work(progress)``; its model is the job's result, a ToolError its error."""
        row = JobRecord(
            id=f"job-{uuid.uuid4().hex[:12]}",
            kind=kind,
            by=by,
            owner=self.owner,
            request=request or {},
        )
        with transaction(self._engine) as session:
            session.add(row)
        self._prune()
        job_id = row.id

        def progress(stage: str, share: float) -> None:
            self._update(job_id, stage=stage, progress=round(min(max(share, 0.0), 1.0), 3))
            crash_point("job:progress")  # tests: the process dies with the job half done

        def run() -> None:
            self._update(job_id, status="running", stage="starting")
            try:
                result = work(progress)
            except (ToolError, BadBody, TooLarge, LookupError, ValueError, OSError) as exc:
                first = (str(exc).splitlines() or [""])[0]
                self._update(
                    job_id,
                    status="failed",
                    error=f"{type(exc).__name__}: {first}"[:500],
                    finished_at=datetime.now(UTC),
                )
                return
            except Exception as exc:  # the job's boundary: a job never stays "running" for good
                log.exception("job %s failed", job_id)
                self._update(
                    job_id,
                    status="failed",
                    error=f"internal error: {type(exc).__name__}",
                    finished_at=datetime.now(UTC),
                )
                return
            self._update(
                job_id,
                status="done",
                stage="done",
                progress=1.0,
                result=result.model_dump(mode="json"),
                finished_at=datetime.now(UTC),
            )

        self._pool.submit(run)
        return _view(row)

    def close(self) -> None:
        """Stop taking jobs; a running one finishes, queued ones are failed as interrupted by
        the next process that looks (this one is going away)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
