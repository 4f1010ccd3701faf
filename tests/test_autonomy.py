"""Autonomy is earned: shadow -> assisted -> supervised only on recorded evidence and a named
person; drift freezes a supervised scope back to assisted; a global kill switch; every policy
version kept; model text never deletes a change."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from closedloop import governance as gov
from closedloop.autonomy import record_shadow_review
from closedloop.cli import main
from closedloop.graphs.learn import prediction_drift
from closedloop.settings import Settings
from closedloop.store.db import open_store, transaction
from closedloop.store.models import Plan, Policy, Verdict
from tests.helpers_store import add_approval, add_plan, add_run, opportunity


def _plan(s: Session, scope: str, status: str, i: int) -> Plan:
    run = add_run(s, f"run-{scope}-{status}-{i}", scope)
    return add_plan(s, run, opportunity(s, f"fp-{scope}"), status=status)


def seed_supervised_evidence(
    s: Session, scope: str, n: int = 5, calibrated: bool = True, rollback: bool = False
) -> None:
    """n human-approved, kept plans whose predictions fell inside the measured interval."""
    for i in range(n):
        plan = _plan(s, scope, "kept", i)
        add_approval(s, plan, status="approved", channel="cli", decided_by="ops-lead")
        decision = "rollback" if rollback and i == 0 else "keep"
        s.add(
            Verdict(
                plan_id=plan.id,
                decision=decision,
                kpi="cycle_time_hours",
                delta=-2.0,
                ci_low=-3.0,
                ci_high=-1.0,
                predicted_delta=-2.5 if calibrated else -9.0,
            )
        )
    s.flush()


def test_supervised_needs_evidence_and_a_person(migrated_engine):
    with transaction(migrated_engine) as s:
        gov.policy_for(s, "helpdesk", "assisted")
        with pytest.raises(gov.PromotionRefused, match="not enough evidence"):
            gov.set_policy(s, "helpdesk", mode="supervised", by="ops-lead", channel="test")
        seed_supervised_evidence(s, "helpdesk", calibrated=False)
        with pytest.raises(gov.PromotionRefused, match="inside the measured interval"):
            gov.set_policy(s, "helpdesk", mode="supervised", by="ops-lead", channel="test")
    with transaction(migrated_engine) as s:
        seed_supervised_evidence(s, "desk2")
        with pytest.raises(gov.PromotionRefused, match="named person"):
            gov.set_policy(s, "desk2", mode="supervised", by="nobody", channel="test")
        policy = gov.set_policy(s, "desk2", mode="supervised", by="ops-lead", channel="test")
        assert policy.mode == "supervised"
        versions = gov.policy_versions(s, "desk2")
        assert [v.mode for v in versions] == ["assisted", "supervised"]
        assert versions[-1].evidence["ok"] and versions[-1].evidence["decisions"] == 5
        assert versions[-1].by == "ops-lead"


def test_a_rollback_in_the_record_blocks_promotion(migrated_engine):
    with transaction(migrated_engine) as s:
        seed_supervised_evidence(s, "helpdesk", n=6, rollback=True)
        with pytest.raises(gov.PromotionRefused, match="corrections"):
            gov.set_policy(s, "helpdesk", mode="supervised", by="ops-lead", channel="test")


def test_shadow_to_assisted_needs_agreeing_shadow_reviews_and_no_skipping(migrated_engine):
    with transaction(migrated_engine) as s:
        gov.policy_for(s, "helpdesk", "shadow")
        with pytest.raises(gov.PromotionRefused, match="skips a mode"):
            gov.set_policy(s, "helpdesk", mode="supervised", by="ops-lead", channel="test")
        plans = [_plan(s, "helpdesk", "shadowed", i) for i in range(5)]
        for plan in plans[:3]:
            record_shadow_review(s, plan.id, agrees=True, by="analyst")
        with pytest.raises(gov.PromotionRefused, match="3 shadow reviews"):
            gov.set_policy(s, "helpdesk", mode="assisted", by="ops-lead", channel="test")
        for plan in plans[3:]:
            record_shadow_review(s, plan.id, agrees=True, by="analyst")
        assert (
            gov.set_policy(s, "helpdesk", mode="assisted", by="ops-lead", channel="test").mode
            == "assisted"
        )
        with pytest.raises(ValueError, match="not a shadowed plan"):
            record_shadow_review(s, _plan(s, "helpdesk", "kept", 9).id, agrees=True, by="analyst")


def test_cli_refuses_supervised_by_nobody_and_changes_nothing(tmp_path, capsys):
    home = ["--home", str(tmp_path)]
    code = main([*home, "policy", "helpdesk", "--set-mode", "supervised", "--by", "nobody"])
    assert code == 3
    assert "PromotionRefused" in capsys.readouterr().err
    engine = open_store(Settings(CLOSEDLOOP_HOME=tmp_path).resolved_database_url())
    with transaction(engine) as s:
        policy = s.exec(select(Policy).where(Policy.scope == "helpdesk")).first()
        assert policy is None or policy.mode == "assisted"
    assert main([*home, "policy", "helpdesk", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "assisted"


def test_new_scope_never_starts_supervised(migrated_engine):
    with transaction(migrated_engine) as s:
        assert gov.policy_for(s, "fresh", "supervised").mode == "assisted"


def test_drift_freezes_supervised_back_to_assisted(migrated_engine):
    with transaction(migrated_engine) as s:
        seed_supervised_evidence(s, "helpdesk")
        gov.set_policy(s, "helpdesk", mode="supervised", by="ops-lead", channel="test")
        change = gov.apply_verdict(s, "helpdesk", "escalate", run_id="run-x")
        assert change == {"scope": "helpdesk", "from": "supervised", "to": "assisted"}
        gov.set_policy(s, "helpdesk", mode="supervised", by="ops-lead", channel="test")
        assert gov.apply_verdict(s, "helpdesk", "keep", drift=False) is None
        change = gov.apply_verdict(s, "helpdesk", "keep", drift=True)
        assert change["to"] == "assisted" and gov.find_policy(s, "helpdesk").mode == "assisted"
        assert (
            len(gov.policy_versions(s, "helpdesk")) == 5
        )  # created, promoted, frozen, promoted, frozen


def test_prediction_drift_is_a_contradicted_prediction():
    verdict = Verdict(
        plan_id=1,
        decision="keep",
        kpi="k",
        delta=1.0,
        ci_low=0.5,
        ci_high=1.5,
        predicted_delta=-4.0,
    )
    assert prediction_drift(verdict)
    assert not prediction_drift(verdict.model_copy(update={"predicted_delta": 1.2}))
    assert not prediction_drift(verdict.model_copy(update={"ci_low": -5.0, "ci_high": -1.0}))


def test_global_kill_switch_stops_every_scope(migrated_engine):
    with transaction(migrated_engine) as s:
        assert not gov.kill_switch_on(s, "helpdesk")
        gov.set_policy(s, gov.GLOBAL_SCOPE, kill_switch=True, by="ciso", channel="test")
        assert gov.kill_switch_on(s, "helpdesk") and gov.kill_switch_on(s, "o2c")
        with pytest.raises(gov.KillSwitchOn):
            gov.check_kill_switch(s, "anything")
        gov.set_policy(s, gov.GLOBAL_SCOPE, kill_switch=False, by="ciso", channel="test")
        assert not gov.kill_switch_on(s, "helpdesk")
