"""kill -9 at each step of a run (observe, plan, execute in flight, execute committed, watch),
then `closedloop resume`: every run finishes with no duplicate and no lost write.

Real processes throughout: the sandbox in its own process on loopback, each CLI command in
its own process, killed with SIGKILL at a named point (``CLOSEDLOOP_CRASH_AT``).
"""

from __future__ import annotations

import json
import signal
import subprocess

import httpx
import pytest
from sqlmodel import select

from closedloop.store.db import transaction
from closedloop.store.models import Execution, LoopRun
from tests.helpers_cli import home_store, run_cli
from tests.sandbox_process import applied_writes

FINISHED = {"kept", "rolled_back", "escalated"}


def killed(result: subprocess.CompletedProcess) -> bool:
    return result.returncode == -signal.SIGKILL


def finish(tmp_path, url: str, state: dict) -> dict:
    """Drive a run to its end the way people would: approve, let time pass, watch."""
    for _ in range(6):
        pending = state.get("pending")
        if not pending:
            return state
        if pending["kind"] == "approval":
            result = run_cli(
                tmp_path, "approve", str(pending["approval_id"]), "--by", "ops-lead", "--json"
            )
        else:
            httpx.post(
                f"{url}/clock/advance", json={"hours": 14 * 24}, timeout=60
            ).raise_for_status()
            result = run_cli(tmp_path, "watch", state["run_id"], "--json")
        assert result.returncode == 0, result.stderr
        state = json.loads(result.stdout)
    raise AssertionError(f"run did not finish: {state.get('pending')}")


def only_run(tmp_path) -> str:
    engine = home_store(tmp_path)
    with transaction(engine) as s:
        [run] = s.exec(select(LoopRun)).all()
        return run.id


@pytest.mark.parametrize("point", ["observe", "plan", "execute:intent", "execute:sent", "watch"])
def test_kill_9_at_each_step_then_resume_finishes_exactly_once(tmp_path, sandbox_process, point):
    url = sandbox_process
    if point in ("observe", "plan"):
        crashed = run_cli(
            tmp_path, "run", "--api", url, "--scope", "helpdesk", "--json", crash_at=point
        )
        assert killed(crashed), crashed.stderr[-2000:]
        run_id = only_run(tmp_path)
    else:
        started = run_cli(tmp_path, "run", "--api", url, "--scope", "helpdesk", "--json")
        assert started.returncode == 0, started.stderr
        state = json.loads(started.stdout)
        run_id = state["run_id"]
        approval = str(state["pending"]["approval_id"])
        if point.startswith("execute"):
            crashed = run_cli(tmp_path, "approve", approval, "--by", "ops-lead", crash_at=point)
        else:
            decided = run_cli(tmp_path, "approve", approval, "--by", "ops-lead", "--json")
            assert decided.returncode == 0, decided.stderr
            httpx.post(
                f"{url}/clock/advance", json={"hours": 14 * 24}, timeout=60
            ).raise_for_status()
            crashed = run_cli(tmp_path, "watch", run_id, crash_at=point)
        assert killed(crashed), crashed.stderr[-2000:]
    engine = home_store(tmp_path)
    with transaction(engine) as s:
        run = s.get(LoopRun, run_id)
        assert run.owner is not None  # the dead process still owns it: the run is interrupted
    if point == "execute:sent":
        assert len(applied_writes(url)) == 1  # the write landed; its answer was never recorded

    resumed = run_cli(tmp_path, "resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    final = finish(tmp_path, url, json.loads(resumed.stdout))
    assert final["outcome"] in FINISHED

    writes = applied_writes(url)
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
    crashed = run_cli(tmp_path, "run", "--api", url, "--scope", "helpdesk", crash_at="observe")
    assert killed(crashed)
    old = only_run(tmp_path)
    started = run_cli(tmp_path, "run", "--api", url, "--scope", "helpdesk", "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["run_id"] != old
    engine = home_store(tmp_path)
    with transaction(engine) as s:
        run = s.get(LoopRun, old)
    assert run.owner is None and run.status == "paused"  # resumed up to its approval
    assert applied_writes(url) == []  # nothing written before an approval
