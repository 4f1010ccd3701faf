"""Mining jobs survive a restart of the serving process.

The REST service runs as ``python -m closedloop.api`` in a process of its own on loopback. It
is killed with SIGKILL in the middle of a job (``CLOSEDLOOP_CRASH_AT=job:progress``: no
cleanup, like ``kill -9``), started again on the same store, and must report that job as
failed and interrupted with a message that says so; a job finished before a (graceful)
restart keeps its result. A job of a live process sharing the store is left alone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from closedloop.api.job_registry import Jobs
from closedloop.graphs.owners import STALE_AFTER, owner_id
from closedloop.store.db import open_store, transaction
from closedloop.store.models import JobRecord
from tests.teams_fakes import free_port
from tests.test_api import KEY_ENTRIES, auth

REPAIR = Path(__file__).resolve().parents[1] / "closedloop" / "data" / "03_repairExample.xes.gz"
NOT_INHERITED = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CLOSEDLOOP_CRASH_AT", "CI")


class ApiProcess:
    """``python -m closedloop.api`` on a store in ``home``; started and stopped by the test."""

    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "api.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, crash_at: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
        env.update(
            DATABASE_URL=f"sqlite:///{self.home / 't.db'}",
            CLOSEDLOOP_HOME=str(self.home),
            CLOSEDLOOP_API_KEYS=KEY_ENTRIES,
            PYTHONUNBUFFERED="1",
        )
        if crash_at:
            env["CLOSEDLOOP_CRASH_AT"] = crash_at
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "closedloop.api",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the API exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the API did not start:\n{self.log.read_text()[-3000:]}")

    def wait_dead(self, timeout: float = 120) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def api_process(tmp_path: Path) -> Iterator[ApiProcess]:
    process = ApiProcess(tmp_path)
    try:
        yield process
    finally:
        process.stop()


def _job(api: ApiProcess, job_id: str) -> dict[str, Any]:
    r = httpx.get(f"{api.url}/jobs/{job_id}", headers=auth("analyst"), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _upload(api: ApiProcess) -> dict[str, Any]:
    r = httpx.post(
        f"{api.url}/mine/upload",
        params={"filename": "repair.xes.gz"},
        content=REPAIR.read_bytes(),
        headers=auth("analyst"),
        timeout=30,
    )
    assert r.status_code == 202, r.text
    return r.json()


def test_a_job_interrupted_by_a_restart_is_reported_failed_never_lost(
    api_process: ApiProcess,
) -> None:
    api_process.start(crash_at="job:progress")
    job = _upload(api_process)
    assert job["status"] == "queued" and job["request"]["filename"] == "repair.xes.gz"
    assert api_process.wait_dead() == -signal.SIGKILL  # died mid-job, no cleanup

    api_process.start()
    seen = _job(api_process, job["id"])
    assert seen["status"] == "failed" and seen["stage"] == "interrupted"
    assert seen["error"].startswith("interrupted: the server process running this job")
    assert "it was running, at " in seen["error"] and "submit it again" in seen["error"]
    assert seen["finished_at"]
    assert seen["result"] is None and seen["request"] == job["request"]
    listed = httpx.get(f"{api_process.url}/jobs", headers=auth("analyst"), timeout=10).json()
    assert [j["id"] for j in listed] == [job["id"]]

    # Submitted again it runs to the end, and its result outlives a graceful restart.
    again = _upload(api_process)
    deadline = time.monotonic() + 180
    while _job(api_process, again["id"])["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.2)
    done = _job(api_process, again["id"])
    assert done["status"] == "done", done
    api_process.stop()
    api_process.start()
    kept = _job(api_process, again["id"])
    assert kept == done and kept["result"]["report"]["cases"] == 1104
    assert _job(api_process, job["id"])["stage"] == "interrupted"  # still there, still failed
    bad = httpx.get(f"{api_process.url}/jobs/job-nope", headers=auth("analyst"), timeout=10)
    assert bad.status_code == 404
    assert httpx.get(f"{api_process.url}/jobs/{job['id']}", timeout=10).status_code == 401


def test_jobs_of_a_live_process_are_left_alone(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 's.db'}")
    now = datetime.now(UTC)
    host = socket.gethostname()
    with transaction(engine) as s:
        # A live process of this host (our parent), one that cannot exist, and two on another
        # host: one that moved a minute ago, one silent for longer than STALE_AFTER.
        live = f"{host}:{os.getppid()}:"
        s.add(JobRecord(id="job-live", kind="mine", by="a", owner=live, status="running"))
        s.add(JobRecord(id="job-mine", kind="mine", by="a", owner=owner_id(), status="queued"))
        s.add(
            JobRecord(
                id="job-far",
                kind="mine",
                by="a",
                owner="elsewhere:12:34",
                status="running",
                updated_at=now - timedelta(minutes=1),
            )
        )
        s.add(
            JobRecord(
                id="job-silent",
                kind="mine",
                by="a",
                owner="elsewhere:12:34",
                status="running",
                updated_at=now - STALE_AFTER - timedelta(minutes=1),
            )
        )
        gone = f"{host}:999999999:1"
        s.add(JobRecord(id="job-gone", kind="mine", by="a", owner=gone, status="queued"))
        s.add(
            JobRecord(
                id="job-done", kind="mine", by="a", owner=gone, status="done", finished_at=now
            )
        )
    registry = Jobs(engine)  # a second registry, as a second server on the same store would be
    try:
        assert registry.get("job-live").status == "running"
        assert registry.get("job-mine").status == "queued"
        assert registry.get("job-far").status == "running"
        assert registry.get("job-silent").stage == "interrupted"
        failed = registry.get("job-gone")
        assert failed.status == "failed" and failed.stage == "interrupted"
        assert "was queued, at queued (0%)" in (failed.error or "")
        assert registry.get("job-done").status == "done"
        assert registry.reap() == []  # once failed, left as it is
    finally:
        registry.close()
