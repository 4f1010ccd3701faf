"""kill -9 at each step of a run (observe, plan, execute in flight, execute committed, watch),
then `closedloop resume`: every run finishes with no duplicate and no lost write.

Real processes throughout: the sandbox in its own process on loopback, each CLI command in
its own process, killed with SIGKILL at a named point (``CLOSEDLOOP_CRASH_AT``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from sqlmodel import select

from closedloop.store.db import open_store, transaction
from closedloop.store.models import Execution, LoopRun

CLI = [sys.executable, "-m", "closedloop.cli"]
FINISHED = {"kept", "rolled_back", "escalated"}


@pytest.fixture
def sandbox_process():
    proc = subprocess.Popen(
        [sys.executable, "-m", "closedloop.sandbox", "--port", "0", "--seed", "5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip().split()[-1]
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        httpx.post(f"{url}/clock/advance", json={"hours": 21 * 24}, timeout=60).raise_for_status()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def cli(tmp_path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "CLOSEDLOOP_HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/store.db",
    }
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CLOSEDLOOP_CRASH_AT"):
        env.pop(name, None)
    if crash_at:
        env["CLOSEDLOOP_CRASH_AT"] = crash_at
    return subprocess.run(
        [*CLI, *args], check=False, env=env, capture_output=True, text=True, timeout=300
    )


def killed(result: subprocess.CompletedProcess) -> bool:
    return result.returncode == -signal.SIGKILL


def applied(url: str) -> list[dict]:
    return [w for w in httpx.get(f"{url}/writes").json() if not w["replayed"]]


def finish(tmp_path, url: str, state: dict) -> dict:
    """Drive a run to its end the way people would: approve, let time pass, watch."""
    for _ in range(6):
        pending = state.get("pending")
        if not pending:
            return state
        if pending["kind"] == "approval":
            result = cli(
                tmp_path, "approve", str(pending["approval_id"]), "--by", "ops-lead", "--json"
            )
        else:
            httpx.post(
                f"{url}/clock/advance", json={"hours": 14 * 24}, timeout=60
            ).raise_for_status()
            result = cli(tmp_path, "watch", state["run_id"], "--json")
        assert result.returncode == 0, result.stderr
        state = json.loads(result.stdout)
    raise AssertionError(f"run did not finish: {state.get('pending')}")


def only_run(tmp_path) -> str:
    engine = open_store(f"sqlite:///{tmp_path}/store.db")
    with transaction(engine) as s:
        [run] = s.exec(select(LoopRun)).all()
        return run.id


@pytest.mark.parametrize("point", ["observe", "plan", "execute:intent", "execute:sent", "watch"])
def test_kill_9_at_each_step_then_resume_finishes_exactly_once(tmp_path, sandbox_process, point):
    url = sandbox_process
    if point in ("observe", "plan"):
        crashed = cli(
            tmp_path, "run", "--api", url, "--scope", "helpdesk", "--json", crash_at=point
        )
        assert killed(crashed), crashed.stderr[-2000:]
        run_id = only_run(tmp_path)
    else:
        started = cli(tmp_path, "run", "--api", url, "--scope", "helpdesk", "--json")
        assert started.returncode == 0, started.stderr
        state = json.loads(started.stdout)
        run_id = state["run_id"]
        approval = str(state["pending"]["approval_id"])
        if point.startswith("execute"):
            crashed = cli(tmp_path, "approve", approval, "--by", "ops-lead", crash_at=point)
        else:
            decided = cli(tmp_path, "approve", approval, "--by", "ops-lead", "--json")
            assert decided.returncode == 0, decided.stderr
            httpx.post(
                f"{url}/clock/advance", json={"hours": 14 * 24}, timeout=60
            ).raise_for_status()
            crashed = cli(tmp_path, "watch", run_id, crash_at=point)
        assert killed(crashed), crashed.stderr[-2000:]
    engine = open_store(f"sqlite:///{tmp_path}/store.db")
    with transaction(engine) as s:
        run = s.get(LoopRun, run_id)
        assert run.owner is not None  # the dead process still owns it: the run is interrupted
    if point == "execute:sent":
        assert len(applied(url)) == 1  # the write landed; its answer was never recorded

    resumed = cli(tmp_path, "resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    final = finish(tmp_path, url, json.loads(resumed.stdout))
    assert final["outcome"] in FINISHED

    writes = applied(url)
    keys = [w["idempotency_key"] for w in writes]
    assert len(keys) == len(set(keys)), f"duplicate writes: {keys}"
    assert len(writes) == (2 if final["outcome"] == "rolled_back" else 1)
    with transaction(engine) as s:
        rows = s.exec(select(Execution)).all()
        run = s.get(LoopRun, run_id)
    assert run.status == final["outcome"] and run.owner is None
    assert len(rows) == 1 and rows[0].status in ("succeeded", "compensated")
    assert rows[0].idempotency_key in keys  # no lost write: the store knows the live one


def test_starting_a_run_recovers_an_interrupted_one(tmp_path, sandbox_process):
    url = sandbox_process
    crashed = cli(tmp_path, "run", "--api", url, "--scope", "helpdesk", crash_at="observe")
    assert killed(crashed)
    old = only_run(tmp_path)
    started = cli(tmp_path, "run", "--api", url, "--scope", "helpdesk", "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["run_id"] != old
    engine = open_store(f"sqlite:///{tmp_path}/store.db")
    with transaction(engine) as s:
        run = s.get(LoopRun, old)
    assert run.owner is None and run.status == "paused"  # resumed up to its approval
    assert applied(url) == []  # nothing written before an approval
