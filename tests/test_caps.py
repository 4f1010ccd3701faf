"""Caps are enforced where the write happens: writes per day and per plan for every write; risk
tier, blast radius, the scope still supervised and business hours for autonomous ones. A write
that would exceed them is not sent, and the refusal is on record as a guardrail breach."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from closedloop import governance as gov
from closedloop.agents.binding import bind_catalog
from closedloop.agents.context import LoopContext
from closedloop.agents.executor import execute_plan_action
from closedloop.sandbox.server import SandboxServer
from closedloop.settings import Settings
from closedloop.store.db import open_store, transaction
from closedloop.store.models import AuditEvent, Execution, Plan
from closedloop.tools.errors import NotAllowedError
from tests.helpers_store import add_approval, add_plan, add_run, opportunity
from tests.sandbox_process import applied_writes

MONDAY_NOON = datetime(2026, 11, 30, 12, tzinfo=UTC)
SUNDAY_NIGHT = datetime(2026, 11, 29, 23, tzinfo=UTC)


def _plan(
    s: Session,
    i: int,
    *,
    channel: str = "cli",
    tier: str = "low",
    share: float = 0.1,
    actions: int = 1,
    version: str | None = None,
) -> Plan:
    run = add_run(s, f"run-cap-{i}", catalog_version=version)
    plan = add_plan(
        s,
        run,
        opportunity(s, "caps"),
        risk_tier=tier,
        status="approved",
        blast_radius={"share_of_cases": share},
        actions=[
            {"action": "set_queue_staffing", "params": {"queue": "L1", "agents": 3 + k}}
            for k in range(actions)
        ],
    )
    add_approval(
        s,
        plan,
        status="approved",
        channel=channel,
        decided_by="policy:helpdesk:supervised" if channel == "policy" else "ops-lead",
    )
    return plan


def _write(s: Session, plan: Plan, k: int = 0, status: str = "succeeded") -> None:
    s.add(
        Execution(
            plan_id=plan.id,
            action="set_queue_staffing",
            status=status,
            idempotency_key=f"key-{plan.id}-{k}",
        )
    )
    s.flush()


def test_writes_per_day_and_per_plan(migrated_engine):
    with transaction(migrated_engine) as s:
        gov.set_caps(
            s,
            "helpdesk",
            {"max_writes_per_day": 3, "max_writes_per_plan": 2},
            by="ops-lead",
            channel="test",
        )
        big = _plan(s, 0, actions=3)
        _write(s, big, 0)
        gov.check_execution_caps(s, big, autonomous=False)
        _write(s, big, 1)
        with pytest.raises(gov.CapExceeded, match="per plan"):
            gov.check_execution_caps(s, big, autonomous=False)
        other = _plan(s, 1)
        _write(s, other, 0, status="failed")  # never reached the system: does not count
        gov.check_execution_caps(s, other, autonomous=False)
        _write(s, other, 1)
        with pytest.raises(gov.CapExceeded, match="per day"):
            gov.check_execution_caps(s, _plan(s, 2), autonomous=False)


def test_autonomous_writes_need_supervised_tier_share_and_hours(migrated_engine):
    with transaction(migrated_engine) as s:
        gov.policy_for(s, "helpdesk", "assisted")
        plan = _plan(s, 0, channel="policy")
        with pytest.raises(gov.CapExceeded, match="assisted now"):
            gov.check_execution_caps(s, plan, autonomous=True)
        gov.find_policy(s, "helpdesk").mode = "supervised"  # as if earned (see test_autonomy)
        s.flush()
        gov.check_execution_caps(s, plan, autonomous=True, now=MONDAY_NOON)
        risky = _plan(s, 1, channel="policy", tier="medium")
        with pytest.raises(gov.CapExceeded, match="outside the caps"):
            gov.check_execution_caps(s, risky, autonomous=True)
        gov.check_execution_caps(s, risky, autonomous=False)  # a person approved it: allowed
        wide = _plan(s, 2, channel="policy", share=0.9)
        with pytest.raises(gov.CapExceeded, match="outside the caps"):
            gov.check_execution_caps(s, wide, autonomous=True)
        gov.set_caps(
            s,
            "helpdesk",
            {"business_hours": {"start": 8, "end": 18}},
            by="ops-lead",
            channel="test",
        )
        gov.check_execution_caps(s, plan, autonomous=True, now=MONDAY_NOON)
        with pytest.raises(gov.CapExceeded, match="autonomous writes only"):
            gov.check_execution_caps(s, plan, autonomous=True, now=SUNDAY_NIGHT)


def test_bad_caps_are_refused_by_name(migrated_engine):
    with transaction(migrated_engine) as s:
        with pytest.raises(gov.PolicyError, match="unknown caps"):
            gov.set_caps(s, "helpdesk", {"max_writes": 3}, by="a", channel="t")
        with pytest.raises(gov.PolicyError, match="max_writes_per_day"):
            gov.set_caps(s, "helpdesk", {"max_writes_per_day": -1}, by="a", channel="t")
        with pytest.raises(gov.PolicyError, match="business_hours"):
            gov.set_caps(
                s, "helpdesk", {"business_hours": {"start": 20, "end": 8}}, by="a", channel="t"
            )


def test_the_executor_does_not_send_a_write_over_the_cap(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings = Settings(CLOSEDLOOP_HOME=tmp_path, DATABASE_URL=f"sqlite:///{tmp_path}/s.db")
    engine = open_store(settings.resolved_database_url())
    with SandboxServer(seed=5) as sandbox:
        version, base = bind_catalog(settings, engine, sandbox.url)
        with transaction(engine) as s:
            gov.set_caps(s, "helpdesk", {"max_writes_per_day": 1}, by="ops-lead", channel="test")
            first, second = _plan(s, 0, version=version), _plan(s, 1, version=version)
        ctx = LoopContext(settings=settings, engine=engine)
        assert (
            execute_plan_action(ctx, first.run_id, first.id, base, 0, version)["status"]
            == "succeeded"
        )
        with pytest.raises(NotAllowedError, match="per day"):
            execute_plan_action(ctx, second.run_id, second.id, base, 0, version)
        ctx.close()
        writes = applied_writes(sandbox.url)
    assert len(writes) == 1
    with transaction(engine) as s:
        assert len(s.exec(select(Execution)).all()) == 1
        [breach] = s.exec(select(AuditEvent).where(AuditEvent.kind == "guardrail_breach")).all()
    assert breach.payload["plan_id"] == second.id and "per day" in breach.payload["refused"]
