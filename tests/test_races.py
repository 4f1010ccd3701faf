"""Races: one approval decided by 20 concurrent deciders (threads in several processes, approve
and reject mixed) executes at most once and everyone else is told the decision that stands;
a fresh store opened by several processes at once migrates once and serves them all."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlmodel import select

from closedloop.contracts import NotPaused
from closedloop.graphs.gate import decide_approval
from closedloop.graphs.runner import DECIDED_GRACE, LoopRunner
from closedloop.settings import Settings
from closedloop.store.db import open_store, secure_sqlite_file, transaction
from closedloop.store.models import Approval, Execution, LoopRun, Plan, Policy, PolicyVersion
from tests.helpers_cli import cli_env, home_store, home_store_url, run_cli
from tests.helpers_store import add_approval, add_plan, add_run, opportunity
from tests.sandbox_process import applied_writes

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


def test_twenty_concurrent_decisions_from_several_processes_execute_once(tmp_path, sandbox_process):
    url = sandbox_process
    started = run_cli(tmp_path, "run", "--api", url, "--scope", "helpdesk", "--json")
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["run_id"]

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DECIDERS, run_id, tag, "5"],
            env=cli_env(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("cli", "rest", "teams", "chat")
    ]
    results, errs = [], []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results += json.loads(out)
        errs.append(err)
    assert len(results) == 20, "\n".join(errs)[-6000:]
    winners = [r for r in results if r["won"]]
    assert len(winners) == 1, winners
    winner = winners[0]
    with transaction(home_store(tmp_path)) as s:
        [approval] = s.exec(select(Approval)).all()
        executions = s.exec(select(Execution)).all()
        plan = s.get(Plan, approval.plan_id)
    assert approval.decided_by == winner["who"]
    assert approval.status == ("approved" if winner["decision"] == "approve" else "rejected")
    for loser in (r for r in results if not r["won"]):
        assert approval.status in loser["told"] or "not waiting for approval" in loser["told"]
    writes = applied_writes(url)
    if approval.status == "approved":
        assert len(executions) == 1 and len(writes) == 1
    else:  # a rejected plan never executes, whoever raced it
        assert executions == [] and writes == [] and plan.status == "rejected"


def _pending_approval(engine) -> int:
    with transaction(engine) as s:
        run = add_run(s, "run-race")
        plan = add_plan(s, run, opportunity(s), status="awaiting_approval")
        return add_approval(s, plan).id


def test_approve_racing_reject_in_threads_has_one_outcome(migrated_engine):
    approval_id = _pending_approval(migrated_engine)
    barrier = threading.Barrier(20)
    outcomes = []

    def decide(i: int) -> None:
        barrier.wait()
        won, approval = decide_approval(
            migrated_engine, approval_id, "approve" if i % 2 else "reject", f"p{i}"
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


def _paused_run(tmp_path, url: str) -> tuple[LoopRunner, str, dict]:
    """A run started by the CLI, paused at its approval, and an in-process runner on its store."""
    started = run_cli(tmp_path, "run", "--api", url, "--scope", "helpdesk", "--json")
    assert started.returncode == 0, started.stderr
    state = json.loads(started.stdout)
    runner = LoopRunner(
        Settings(DATABASE_URL=home_store_url(tmp_path), CLOSEDLOOP_HOME=str(tmp_path))
    )
    return runner, state["run_id"], state["pending"]


def test_a_decision_won_while_another_process_drives_the_run_does_not_resume_it_twice(
    tmp_path, sandbox_process
):
    # The store lost the first winner's decision (SQLite's WAL-reset race can lose a commit):
    # the row reads pending while that winner still drives the run. A second "winner" must not
    # drive the graph too.
    runner, run_id, pending = _paused_run(tmp_path, sandbox_process)
    with transaction(runner.engine) as s:
        s.get(LoopRun, run_id).owner = "elsewhere:1:1"  # a process on another host drives it
    with runner:
        with pytest.raises(NotPaused, match="driven by another process"):
            runner.resume(run_id, {"decision": "approve", "by": "late"}, expect="approval")
        assert runner.pending(run_id) == pending  # the graph was not resumed
    with transaction(runner.engine) as s:
        assert s.exec(select(Execution)).all() == []
        assert s.get(LoopRun, run_id).owner == "elsewhere:1:1"
    assert applied_writes(sandbox_process) == []


def test_a_decided_approval_whose_decider_died_is_resumed_once_by_recovery(
    tmp_path, sandbox_process
):
    runner, run_id, pending = _paused_run(tmp_path, sandbox_process)
    won, _ = decide_approval(runner.engine, pending["approval_id"], "approve", "ops-lead")
    assert won  # ...and the decider died before it resumed the run
    with runner:
        assert runner.interrupted_runs() == []  # within the grace a live decider may still resume
        with transaction(runner.engine) as s:
            approval = s.get(Approval, pending["approval_id"])
            approval.decided_at = approval.decided_at - DECIDED_GRACE * 2
        assert runner.interrupted_runs() == [run_id]
        [state] = runner.recover_interrupted()
        assert runner.recover_interrupted() == []  # once
    assert state["decision"] == "approved" and state["pending"]["kind"] == "evidence"
    with transaction(runner.engine) as s:
        assert len(s.exec(select(Execution)).all()) == 1
    assert len(applied_writes(sandbox_process)) == 1


OTHER_PROCESS_WRITES = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("CREATE TABLE elsewhere (x INTEGER)")
conn.commit()
conn.close()  # the last connection out checkpoints and deletes the WAL
"""


def _in_another_process(code: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60,
        check=False,
    )


def test_securing_the_store_file_again_keeps_this_process_connected(tmp_path):
    # Closing any descriptor of a SQLite file drops every lock this process holds on it; another
    # process closing its connection then takes itself for the last one and deletes the WAL
    # under ours, and what we commit after is lost (two deciders each won one approval).
    path = tmp_path / "store.db"
    engine = open_store(f"sqlite:///{path}")
    with transaction(engine) as s:  # the pool keeps this connection open, as a live process does
        add_run(s, "before")
    secure_sqlite_file(path)  # what each new engine on this store does
    other = _in_another_process(OTHER_PROCESS_WRITES, path)
    assert other.returncode == 0, other.stderr
    assert Path(f"{path}-wal").exists()  # still ours: this process was seen connected
    with transaction(engine) as s:
        add_run(s, "after")
    count_rows = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "print(sorted(r[0] for r in c.execute('SELECT id FROM looprun')), "
        "c.execute('SELECT count(*) FROM elsewhere').fetchone()[0])"
    )
    fresh = _in_another_process(count_rows, path)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.strip() == "['after', 'before'] 0"  # nothing lost, ours or theirs
