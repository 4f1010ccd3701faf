"""What the chat reads and changes in the store: pending approvals, rollout status, kill switch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlmodel import select

from closedloop.chat import control
from closedloop.governance import kill_switch_on
from closedloop.settings import Settings
from closedloop.store.db import open_store, transaction
from closedloop.store.models import Approval, AuditEvent, Execution, LoopRun, Opportunity, Plan


@pytest.fixture
def settings(tmp_path: Path, migrated_db: Path) -> Settings:
    shutil.copyfile(migrated_db, tmp_path / "t.db")
    return Settings(DATABASE_URL=f"sqlite:///{tmp_path / 't.db'}", CLOSEDLOOP_HOME=tmp_path)


def add_plan(settings: Settings, run_id: str, approval: str = "pending") -> int:
    """A run with one plan (predicted -20% [-30%, -10%]) and its approval; returns the plan id."""
    with transaction(open_store(settings.resolved_database_url())) as s:
        s.add(LoopRun(id=run_id, scope="helpdesk", status="paused"))
        opp = Opportunity(
            fingerprint=f"fp-{run_id}",
            process="helpdesk",
            pattern="bottleneck",
            activity="Triage",
            impact=1.0,
            feasibility=1.0,
            risk=0.1,
            priority=0.9,
        )
        s.add(opp)
        s.flush()
        plan = Plan(
            run_id=run_id,
            opportunity_id=opp.id,
            scope="helpdesk",
            hypothesis="one more in pool L1",
            actions=[{"action": "set_queue_staffing", "params": {"agents": 4}}],
            predicted={"delta_pct": -20.0, "ci_low_pct": -30.0, "ci_high_pct": -10.0},
            blast_radius={"share_of_cases": 0.5},
            risk_tier="medium",
            cohort={"treatment_share": 0.5},
            status="awaiting_approval",
        )
        s.add(plan)
        s.flush()
        s.add(Approval(plan_id=plan.id, run_id=run_id, status=approval, channel="chat"))
        return int(plan.id)


def test_pending_approvals_list_only_undecided_plans(settings: Settings) -> None:
    assert control.pending_approvals(settings) == []
    assert "Nothing waits" in control.pending_md([], can_decide=True)
    add_plan(settings, "run-a")
    add_plan(settings, "run-b", approval="approved")
    pending = control.pending_approvals(settings)
    assert [(p.run_id, p.action, p.predicted_pct, p.share_of_cases) for p in pending] == [
        ("run-a", "set_queue_staffing", -20.0, 0.5)
    ]
    text = control.pending_md(pending, can_decide=False)
    assert "Pending approvals (1)" in text and "-20.0% [-30.0%, -10.0%]" in text
    assert "You do not hold the approver role" in text
    assert "buttons" in control.pending_md(pending, can_decide=True)


def test_rollout_status_shows_mode_switch_plan_and_executions(settings: Settings) -> None:
    plan_id = add_plan(settings, "run-a", approval="approved")
    with transaction(open_store(settings.resolved_database_url())) as s:
        s.add(
            Execution(
                plan_id=plan_id,
                action="set_queue_staffing",
                idempotency_key="k1",
                status="succeeded",
            )
        )
    status = control.scope_status(settings, "helpdesk", "run-a")
    assert status["kill_switch"] is False and status["run"]["executions"] == [
        {"id": 1, "status": "succeeded"}
    ]
    text = control.status_md(status)
    assert "kill switch **off**" in text and "treatment share 50%" in text
    assert "Executions: 1 of 1 succeeded" in text
    assert "No closed-loop run" in control.status_md(
        control.scope_status(settings, "helpdesk", None)
    )


def test_kill_switch_is_set_audited_and_released(settings: Settings) -> None:
    assert control.set_kill_switch(settings, "helpdesk", True, "olga (chat)") is True
    engine = open_store(settings.resolved_database_url())
    with transaction(engine) as s:
        assert kill_switch_on(s, "helpdesk")
        events = s.exec(select(AuditEvent).where(AuditEvent.run_id == "policy:helpdesk")).all()
    assert [(e.actor, e.payload["channel"], e.payload["kill_switch"]) for e in events] == [
        ("olga (chat)", "chat", True)
    ]
    assert "ON: every write" in control.status_md(control.scope_status(settings, "helpdesk", None))
    assert control.set_kill_switch(settings, "helpdesk", False, "olga (chat)") is False
    with transaction(engine) as s:
        assert not kill_switch_on(s, "helpdesk")
