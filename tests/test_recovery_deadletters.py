"""A write whose answer is lost is recorded as unknown (never failed) and dead-lettered;
`closedloop deadletter list|replay` shows and resolves it with the same idempotency key,
without writing twice."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlmodel import select

from closedloop.agents.binding import bind_catalog
from closedloop.agents.context import LoopContext
from closedloop.agents.executor import execute_plan_action
from closedloop.cli import main
from closedloop.sandbox.server import SandboxServer
from closedloop.settings import Settings
from closedloop.store.db import open_store, transaction
from closedloop.store.models import Execution
from closedloop.tools.errors import ApiCallError
from tests.helpers_store import add_approval, add_plan, add_run, opportunity
from tests.sandbox_process import applied_writes


def test_lost_answer_dead_letter_then_replay_resolves_it_once(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("CLOSEDLOOP_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/s.db")
    settings = Settings(CLOSEDLOOP_API_RETRIES=1)
    engine = open_store(settings.resolved_database_url())
    with SandboxServer(seed=5) as sandbox:
        version, base = bind_catalog(settings, engine, sandbox.url)
        with transaction(engine) as s:
            run = add_run(s, "run-dl", api_url=base, catalog_version=version)
            plan = add_plan(
                s,
                run,
                opportunity(s, "dl"),
                status="approved",
                actions=[{"action": "set_queue_staffing", "params": {"queue": "L1", "agents": 6}}],
            )
            add_approval(s, plan, status="approved", decided_by="ops-lead")
        httpx.put(
            f"{sandbox.url}/faults", json={"lost_rate": 1.0, "writes_only": True}
        ).raise_for_status()
        ctx = LoopContext(settings=settings, engine=engine)
        with pytest.raises(ApiCallError, match="unknown"):
            execute_plan_action(ctx, "run-dl", plan.id, base, 0, version)
        ctx.close()
        applied = applied_writes(sandbox.url)
        assert len(applied) == 1  # it landed, though nobody heard back
        with transaction(engine) as s:
            [row] = s.exec(select(Execution)).all()
        assert row.status == "unknown"  # never "failed" while it may be live

        assert main(["deadletter", "list", "--json"]) == 0
        [letter] = json.loads(capsys.readouterr().out)
        assert letter["execution_id"] == row.id and letter["kind"] == "write"

        httpx.put(f"{sandbox.url}/faults", json={}).raise_for_status()
        assert main(["deadletter", "replay", str(letter["id"]), "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["status"] == "resolved" and result["execution_status"] == "succeeded"
        writes = httpx.get(f"{sandbox.url}/writes").json()
    assert len([w for w in writes if not w["replayed"]]) == 1 and writes[-1]["replayed"]
    assert main(["deadletter", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    with transaction(engine) as s:
        [row] = s.exec(select(Execution)).all()
    assert row.status == "succeeded" and row.compensation  # the undo is known now
