"""Races: one approval decided by 20 concurrent deciders (threads in several processes, approve
and reject mixed) executes at most once and everyone else is told the decision that stands;
a fresh store opened by several processes at once migrates once and serves them all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from closedloop.graphs.gate import decide_approval
from closedloop.store.db import open_store, transaction
from closedloop.store.models import (
    Approval,
    Execution,
    LoopRun,
    Opportunity,
    Plan,
    Policy,
    PolicyVersion,
)

CLI = [sys.executable, "-m", "closedloop.cli"]

DECIDERS = r"""
import json, sys, threading
from closedloop.contracts import NotPaused
from closedloop.graphs.runner import LoopRunner
from closedloop.settings import Settings

run_id, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings = Settings()
results = []
barrier = threading.Barrier(n)

def decide(i):
    decision = "approve" if (i + len(tag)) % 2 == 0 else "reject"
    with LoopRunner(settings) as runner:
        barrier.wait()
        try:
            state = runner.resume(run_id, {"decision": decision, "by": f"{tag}-{i}", "channel": tag},
                                  expect="approval")
            results.append({"who": f"{tag}-{i}", "decision": decision, "won": True,
                            "plan": state.get("decision")})
        except NotPaused as exc:
            results.append({"who": f"{tag}-{i}", "decision": decision, "won": False, "told": str(exc)})

threads = [threading.Thread(target=decide, args=(i,)) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(results))
"""


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


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "CLOSEDLOOP_HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/store.db",
    }
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CLOSEDLOOP_CRASH_AT"):
        env.pop(name, None)
    return env


def test_twenty_concurrent_decisions_from_several_processes_execute_once(tmp_path, sandbox_process):
    url = sandbox_process
    started = subprocess.run(
        [*CLI, "run", "--api", url, "--scope", "helpdesk", "--json"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["run_id"]

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DECIDERS, run_id, tag, "5"],
            env=_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("cli", "rest", "teams", "chat")
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results += json.loads(out)
    assert len(results) == 20
    winners = [r for r in results if r["won"]]
    assert len(winners) == 1, winners
    winner = winners[0]
    engine = open_store(f"sqlite:///{tmp_path}/store.db")
    with transaction(engine) as s:
        [approval] = s.exec(select(Approval)).all()
        executions = s.exec(select(Execution)).all()
        plan = s.get(Plan, approval.plan_id)
    assert approval.decided_by == winner["who"]
    assert approval.status == ("approved" if winner["decision"] == "approve" else "rejected")
    for loser in (r for r in results if not r["won"]):
        assert approval.status in loser["told"] or "not waiting for approval" in loser["told"]
    writes = [w for w in httpx.get(f"{url}/writes").json() if not w["replayed"]]
    if approval.status == "approved":
        assert len(executions) == 1 and len(writes) == 1
    else:  # a rejected plan never executes, whoever raced it
        assert executions == [] and writes == [] and plan.status == "rejected"


def _pending_approval(engine) -> int:
    with transaction(engine) as s:
        s.add(LoopRun(id="run-race", scope="helpdesk"))
        s.flush()
        opp = Opportunity(
            fingerprint="f",
            process="p",
            pattern="x",
            activity="a",
            impact=1,
            feasibility=1,
            risk=0,
            priority=1,
        )
        s.add(opp)
        s.flush()
        plan = Plan(
            run_id="run-race",
            opportunity_id=opp.id,
            scope="helpdesk",
            hypothesis="h",
            risk_tier="low",
            status="awaiting_approval",
        )
        s.add(plan)
        s.flush()
        approval = Approval(plan_id=plan.id, run_id="run-race")
        s.add(approval)
        s.flush()
        return approval.id


def test_approve_racing_reject_in_threads_has_one_outcome(tmp_path, migrated_db):
    db = tmp_path / "s.db"
    db.write_bytes(migrated_db.read_bytes())
    engine = open_store(f"sqlite:///{db}")
    approval_id = _pending_approval(engine)
    barrier = threading.Barrier(20)
    outcomes = []

    def decide(i: int) -> None:
        barrier.wait()
        won, approval = decide_approval(
            engine, approval_id, "approve" if i % 2 else "reject", f"p{i}"
        )
        outcomes.append((i, won, approval.status, approval.decided_by))

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o[1]]
    assert len(winners) == 1
    i, _, status, by = winners[0]
    assert status == ("approved" if i % 2 else "rejected") and by == f"p{i}"
    assert {(o[2], o[3]) for o in outcomes} == {
        (status, by)
    }  # everyone sees the decision that stands


FIRST_USE = r"""
import sys
import pandas as pd
from pathlib import Path
from closedloop.governance import policy_for
from closedloop.graphs.observe import write_snapshot
from closedloop.store.db import open_store, transaction
engine = open_store(sys.argv[1])
with transaction(engine) as s:
    policy_for(s, "helpdesk", "assisted")
write_snapshot(pd.DataFrame({"a": list(range(1000))}), Path(sys.argv[2]), "d" * 64)
print("ok")
"""


def test_concurrent_first_use_of_a_fresh_store(tmp_path):
    url = f"sqlite:///{tmp_path}/fresh/store.db"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_USE, url, str(tmp_path / "datasets")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and out.strip() == "ok", err[-3000:]
    engine = open_store(url)
    with transaction(engine) as s:
        assert len(s.exec(select(Policy)).all()) == 1
        assert len(s.exec(select(PolicyVersion)).all()) == 1
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == ["d" * 64 + ".parquet"]
