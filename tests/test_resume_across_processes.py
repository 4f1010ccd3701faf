"""A loop paused at approval survives its process and resumes exactly once in another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

CLI = [sys.executable, "-m", "closedloop.cli"]


@pytest.fixture
def sandbox_process():
    proc = subprocess.Popen([sys.executable, "-m", "closedloop.sandbox", "--port", "0", "--seed", "5"],
                            stdout=subprocess.PIPE, text=True)
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


def run_cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLOSEDLOOP_HOME": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/store.db"}
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    return subprocess.run([*CLI, *args], check=False, env=env, capture_output=True, text=True, timeout=300)


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
    assert len([w for w in httpx.get(f"{url}/writes").json() if not w["replayed"]]) == (
        2 if final["outcome"] == "rolled_back" else 1)


def test_mine_cli_reports_bad_input_in_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("case,activity\n1,a\n")
    result = run_cli(tmp_path, "mine", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "bad.csv" in result.stderr
