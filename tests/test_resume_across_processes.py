"""A loop paused at approval survives its process and resumes exactly once in another."""

from __future__ import annotations

import json

import httpx

from tests.helpers_cli import run_cli
from tests.sandbox_process import applied_writes


def test_pause_stop_resume_in_new_process_writes_once(tmp_path, sandbox_process):
    url = sandbox_process
    started = run_cli(tmp_path, "run", "--api", url, "--scope", "helpdesk", "--json")
    assert started.returncode == 0, started.stderr
    state = json.loads(started.stdout)
    approval_id = state["pending"]["approval_id"]
    assert httpx.get(f"{url}/writes").json() == []

    approved = run_cli(tmp_path, "approve", str(approval_id), "--by", "ops-lead", "--json")
    assert approved.returncode == 0, approved.stderr
    after = json.loads(approved.stdout)
    assert after["pending"]["kind"] == "evidence"

    # A second approval (a retry, a double click, another process) changes nothing.
    again = run_cli(tmp_path, "approve", str(approval_id))
    assert again.returncode == 3 and "not waiting for approval" in again.stderr

    writes = httpx.get(f"{url}/writes").json()
    applied = [w for w in writes if not w["replayed"]]
    assert len(applied) == 1
    assert len({w["idempotency_key"] for w in writes}) == len(writes)

    httpx.post(f"{url}/clock/advance", json={"hours": 14 * 24}, timeout=60).raise_for_status()
    watched = run_cli(tmp_path, "watch", after["run_id"], "--json")
    assert watched.returncode == 0, watched.stderr
    final = json.loads(watched.stdout)
    assert final["pending"] is None
    assert final["outcome"] in ("kept", "rolled_back", "escalated")
    assert len(applied_writes(url)) == (2 if final["outcome"] == "rolled_back" else 1)


def test_mine_cli_reports_bad_input_in_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("case,activity\n1,a\n")
    result = run_cli(tmp_path, "mine", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "bad.csv" in result.stderr
