"""Governance: routing, caps, autonomy changes, the kill switch, and audited policy changes
from every channel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from closedloop import governance as gov
from closedloop.cli import main
from closedloop.settings import Settings
from closedloop.store.db import open_store, transaction
from closedloop.store.models import AuditEvent, Policy
from tests.test_autonomy import seed_supervised_evidence

CAPS = dict(gov.DEFAULT_CAPS)


@pytest.mark.parametrize(
    ("mode", "kill", "tier", "share", "route", "status"),
    [
        ("supervised", True, "low", 0.1, "blocked", "blocked"),
        ("shadow", False, "low", 0.1, "shadow", "shadowed"),
        ("supervised", False, "low", 0.1, "execute", "approved"),
        ("supervised", False, "medium", 0.1, "approval", "awaiting_approval"),
        ("supervised", False, "low", 0.3, "approval", "awaiting_approval"),
        ("assisted", False, "low", 0.1, "approval", "awaiting_approval"),
    ],
)
def test_route_plan(mode, kill, tier, share, route, status):
    decision = gov.route_plan(mode, kill, tier, share, CAPS)
    assert (decision.route, decision.plan_status) == (route, status)


def test_caps_bound_tier_and_share():
    assert gov.within_caps("low", 0.25, CAPS)
    assert not gov.within_caps("low", 0.26, CAPS)
    assert not gov.within_caps("medium", 0.1, CAPS)
    assert gov.within_caps("medium", 0.1, {**CAPS, "max_risk_tier": "medium"})
    assert not gov.within_caps("high", 0.1, {**CAPS, "max_risk_tier": "medium"})
    assert not gov.within_caps("unknown", 0.0, CAPS)
    assert not gov.within_caps("low", 0.1, {})  # no share cap given: nothing is within it


def test_autonomy_change_demotes_on_rollback_and_only_recommends_promotion():
    assert gov.autonomy_change("supervised", "rollback") == {"from": "supervised", "to": "assisted"}
    assert gov.autonomy_change("assisted", "rollback") is None
    assert gov.autonomy_change("assisted", "keep") == {
        "recommend": "supervised",
        "needs_human_confirmation": True,
    }
    assert gov.autonomy_change("supervised", "keep") is None
    assert gov.autonomy_change("supervised", "escalate") is None


@pytest.fixture
def engine(tmp_path: Path):
    return open_store(f"sqlite:///{tmp_path}/store.db")


def _policy_events(engine, scope: str) -> list[AuditEvent]:
    with transaction(engine) as s:
        return list(
            s.exec(
                select(AuditEvent)
                .where(AuditEvent.run_id == gov.policy_audit_id(scope))
                .order_by(AuditEvent.id)
            ).all()
        )


def test_set_policy_validates_and_audits(engine):
    with transaction(engine) as s:
        with pytest.raises(gov.PolicyError):
            gov.set_policy(s, "helpdesk", by="me", channel="test")
        with pytest.raises(gov.PolicyError):
            gov.set_policy(s, "helpdesk", mode="yolo", by="me", channel="test")
    assert _policy_events(engine, "helpdesk") == []
    with transaction(engine) as s:
        policy = gov.set_policy(
            s, "helpdesk", kill_switch=True, by="me", channel="test", default_mode="assisted"
        )
        assert policy.mode == "assisted" and policy.kill_switch and policy.updated_by == "me"
    [event] = _policy_events(engine, "helpdesk")
    assert event.actor == "me" and event.payload["channel"] == "test"
    assert event.payload["before"] == {"mode": "assisted", "kill_switch": False}


def test_kill_switch_check(engine):
    with transaction(engine) as s:
        assert not gov.kill_switch_on(s, "never-used")
        gov.check_kill_switch(s, "never-used")
        gov.set_policy(s, "helpdesk", kill_switch=True, by="me", channel="test")
        with pytest.raises(gov.KillSwitchOn, match="helpdesk"):
            gov.check_kill_switch(s, "helpdesk")


def test_verdict_demotion_is_audited(engine):
    with transaction(engine) as s:
        assert gov.apply_verdict(s, "nobody", "rollback") is None  # no policy, nothing to change
        seed_supervised_evidence(s, "helpdesk")  # autonomy is earned (tests/test_autonomy.py)
        gov.set_policy(s, "helpdesk", mode="supervised", by="me", channel="test")
        change = gov.apply_verdict(s, "helpdesk", "rollback", run_id="run-1")
        assert change == {"scope": "helpdesk", "from": "supervised", "to": "assisted"}
        assert gov.find_policy(s, "helpdesk").updated_by == "watchdog"
    last = _policy_events(engine, "helpdesk")[-1]
    assert last.actor == "watchdog" and last.payload["channel"] == "learn"
    assert last.payload["run_id"] == "run-1" and last.payload["mode"] == "assisted"


def test_policy_change_through_the_cli_writes_one_audit_event(tmp_path, capsys):
    home = ["--home", str(tmp_path)]
    assert main([*home, "policy", "helpdesk", "--json"]) == 0  # showing changes nothing
    assert json.loads(capsys.readouterr().out)["mode"] == "assisted"
    with transaction(open_store(Settings(CLOSEDLOOP_HOME=tmp_path).resolved_database_url())) as s:
        seed_supervised_evidence(s, "helpdesk")
    assert (
        main(
            [
                *home,
                "policy",
                "helpdesk",
                "--set-mode",
                "supervised",
                "--kill-switch",
                "on",
                "--by",
                "ops-lead",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["mode"] == "supervised"
    engine = open_store(Settings(CLOSEDLOOP_HOME=tmp_path).resolved_database_url())
    [event] = _policy_events(engine, "helpdesk")
    assert event.actor == "ops-lead" and event.payload["channel"] == "cli"
    assert event.payload["mode"] == "supervised" and event.payload["kill_switch"] is True
    with transaction(engine) as s:
        policy = s.exec(select(Policy).where(Policy.scope == "helpdesk")).one()
        assert (policy.mode, policy.kill_switch, policy.updated_by) == (
            "supervised",
            True,
            "ops-lead",
        )


def test_policy_change_through_the_api_writes_one_audit_event(tmp_path):
    from closedloop.api.app import create_app
    from tests.test_api import KEY_ENTRIES, auth

    settings = Settings(
        DATABASE_URL=f"sqlite:///{tmp_path}/store.db",
        CLOSEDLOOP_HOME=tmp_path,
        CLOSEDLOOP_API_KEYS=KEY_ENTRIES,
    )
    with TestClient(create_app(settings, runner_factory=lambda _s: None)) as client:
        r = client.post(
            "/policies/helpdesk", json={"mode": "shadow", "by": "ops lead"}, headers=auth("admin")
        )
        assert r.status_code == 200, r.text
    [event] = _policy_events(open_store(settings.resolved_database_url()), "helpdesk")
    # The authenticated admin is recorded, never the body's "by" (closedloop.api.auth).
    assert event.actor == "Carl Admin" and event.payload["channel"] == "api"
    assert event.payload["mode"] == "shadow"


def test_governance_imports_no_graph_agent_or_surface():
    probe = (
        "import sys, closedloop.governance; print(sorted(m for m in sys.modules if "
        "m.startswith(('closedloop.graphs', 'closedloop.agents', 'closedloop.api', "
        "'closedloop.cli', 'closedloop.chat', 'closedloop.tools'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
