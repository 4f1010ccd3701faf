"""The Watchdog's design choice, guardrail rollback and censoring, on event records and a real store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pandas as pd
import pytest
from sqlmodel import select

from closedloop.agents.watchdog import plan_design, rule_decision, snapshots
from closedloop.contracts import DesignChoice, Guardrails, GuardrailThresholds
from closedloop.sandbox.app import create_app
from closedloop.store.db import open_store, transaction
from closedloop.store.models import (
    Dataset,
    Insight,
    KpiSnapshot,
    LoopRun,
    MiningRun,
    Opportunity,
    Plan,
)
from closedloop.tools.act import System, load_manifest
from closedloop.tools.connect import apply_overlay, build_catalog, load_overlay
from closedloop.tools.log import CASE, TIMESTAMP
from closedloop.tools.measure import Interval, measure_change, sequential_rework_check

T0 = datetime(2024, 3, 1, tzinfo=UTC)
GUARD = Guardrails(max_relative_worsening=0.1, min_cases_per_cohort=20, max_writes=1,
                   end_activities=["Close"], start_activities=["Register"],
                   thresholds=GuardrailThresholds())
CORRECTED = DesignChoice(design="treatment_control_corrected", why="shared people")


class NoSources:
    """A plan whose twin is not at hand: designs fall back to the change kind alone."""

    scenario = None
    twin = None
    frame = None


def helpdesk_system() -> System:
    manifest = load_manifest()
    doc = create_app(seed=1).openapi()
    for name in manifest.overlays:
        doc = apply_overlay(doc, load_overlay(manifest.folder / name), str(name))
    return System(build_catalog(doc), "http://sandbox", httpx.Client())


def case(i: int, cohort: str, hours: float, *, closed: bool = True, rework: bool = False) -> list[dict]:
    """A ticket of ``hours`` (Register, Resolve [twice if reworked], Close unless open)."""
    start = T0 + timedelta(minutes=10 * i)
    steps = [("Register", 0.0), ("Resolve", hours / 2)]
    steps += [("Resolve", hours * 0.75)] if rework else []
    steps += [("Close", hours)] if closed else []
    return [{"case_id": f"c{i}", "activity": a, "lifecycle": "complete", "resource": "r",
             "timestamp": (start + timedelta(hours=at)).isoformat(),
             "attributes": {"experiment": f"cohort:{cohort}"}} for a, at in steps]


def test_a_staffing_plan_is_measured_before_after_a_rule_plan_by_corrected_treatment_control() -> None:
    system = helpdesk_system()
    staffing = Plan(actions=[{"action": "set_queue_staffing", "params": {"queue": "L1", "agents": 4}}])
    rule = Plan(actions=[{"action": "create_rule", "params": {
        "name": "auto", "condition": {"field": "category", "op": "eq", "value": "password"},
        "rule_action": "auto_resolve", "treatment_share": 0.5}}])
    route = Plan(actions=[{"action": "create_rule", "params": {
        "name": "route", "condition": {"field": "category", "op": "eq", "value": "software"},
        "rule_action": "route", "route_queue": "L2", "treatment_share": 1.0}}])
    by_staff = plan_design(system, staffing, NoSources())
    by_rule = plan_design(system, rule, NoSources())
    assert by_staff.design == "before_after_with_counterfactual" and "cannot be split" in by_staff.why
    assert by_rule.design == "treatment_control_corrected" and "share resources" in by_rule.why
    # The same undoable rule on every matching case has no control group: it is toggled by time.
    assert plan_design(system, route, NoSources()).design == "switchback"
    # Unless the twin forecasts a growing queue: blocks would inherit each other's backlog.
    log = NoSources()
    log.frame = pd.DataFrame({CASE: ["a", "a", "b", "b"], TIMESTAMP: pd.to_datetime(
        ["2026-01-01 00:00", "2026-01-01 10:00", "2026-01-02 00:00", "2026-01-02 10:00"], utc=True)})
    steady = route.model_copy(update={"predicted": {"baseline_hours": 12.0}})
    growing = route.model_copy(update={"predicted": {"baseline_hours": 30.0}})
    assert plan_design(system, steady, log).design == "switchback"
    design = plan_design(system, growing, log)
    assert design.design == "before_after_with_counterfactual"
    assert "3.0 times the log's 10.0 h" in design.why and "keeps growing" in design.why


def test_a_rework_breach_rolls_back_even_when_cycle_time_improved(tmp_path) -> None:
    rng = np.random.default_rng(3)
    records, i = [], 0
    for cohort, hours, rework in (("treatment", 2.0, 0.05), ("control", 6.0, 0.02)):
        for _ in range(2000):
            records += case(i, cohort, hours * rng.uniform(0.5, 1.5), rework=rng.random() < rework)
            i += 1
    correction = Interval(mean=-0.5, ci_low=-1.0, ci_high=0.0, source="twin")
    m = measure_change(records, GUARD, CORRECTED, ["cohort"], "test", correction=correction)
    assert m.design == "treatment_control_corrected" and m.enough_cases
    assert m.ci_high < 0  # treatment is clearly faster...
    rework = next(r for r in m.guardrail_check.results if r.kpi == "rework_rate")
    assert rework.worsening == pytest.approx(3.0, abs=1.0) and rework.breached
    assert m.guardrail_check.breached and m.sequential is not None
    assert rule_decision(m) == "rollback"  # ...but rework rose by 3 points: roll back
    assert rule_decision(m.model_copy(update={"guardrail_breached": False, "sequential": None})) \
        == "rollback"  # the guardrail check alone decides it
    held = m.guardrail_check.model_copy(update={"breached": False, "breaches": []})
    calm = m.model_copy(update={"guardrail_breached": False, "guardrail_check": held,
                                "sequential": None})
    assert rule_decision(calm) == "keep"
    abort = sequential_rework_check([True] * 10, baseline_rate=0.02)
    assert abort.decision == "abort" and rule_decision(calm.model_copy(
        update={"sequential": abort})) == "rollback"  # a sequential abort alone rolls back too

    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    with transaction(engine) as session:
        for row in (
            Dataset(id=1, name="d", source="t", format="api", events=1, cases=1, sha256="x"),
            LoopRun(id="r1", scope="s"),
            MiningRun(id=1, dataset_id=1, report={}, duration_s=0.0),
            Insight(id=1, mining_run_id=1, kind="k", activity="a", metric="m", value=1.0),
            Opportunity(id=1, insight_id=1, fingerprint="f", process="p", pattern="x",
                        activity="a", impact=1, feasibility=1, risk=0, priority=1),
            Plan(id=1, run_id="r1", opportunity_id=1, scope="s", hypothesis="h", risk_tier="low"),
        ):
            session.add(row)
            session.flush()
        for row in snapshots(1, m):
            session.add(row)
    with transaction(engine) as session:
        rows = session.exec(select(KpiSnapshot).where(KpiSnapshot.plan_id == 1)).all()
    kinds = {(r.kpi, r.cohort) for r in rows}
    for cohort in ("treatment", "control"):
        assert {("cycle_time_hours", cohort), ("rework_rate", cohort), ("reopen_rate", cohort),
                ("cost_per_case", cohort)} <= kinds
    treated_rework = next(r for r in rows if (r.kpi, r.cohort) == ("rework_rate", "treatment"))
    assert treated_rework.mean == pytest.approx(m.guardrail_kpis["treatment"].rework.rate)


def test_without_a_breach_a_faster_treatment_is_kept() -> None:
    records, i = [], 0
    for cohort, hours in (("treatment", 2.0), ("control", 6.0)):
        for k in range(40):
            records += case(i, cohort, hours * (0.8 + 0.01 * k))
            i += 1
    m = measure_change(records, GUARD, CORRECTED, ["cohort"], "test",
                       correction=Interval(mean=0.0, ci_low=-0.1, ci_high=0.1, source="twin"))
    assert not m.guardrail_check.breached and rule_decision(m) == "keep"


def test_open_cases_are_censored_not_dropped() -> None:
    records, i = [], 0
    for cohort, hours in (("treatment", 2.0), ("control", 4.0)):
        for k in range(30):
            records += case(i, cohort, hours + 0.05 * k)
            i += 1
    # Ten treated tickets are still open at the window end (the last event), about 40 h old.
    for _ in range(10):
        records += case(i, "treatment", 0.0, closed=False)
        i += 1
    records += case(i, "control", 40.0)  # sets the window end
    plain = DesignChoice(design="treatment_control", why="no sharing")
    m = measure_change(records, GUARD, plain, ["cohort"], "test")
    assert m.treatment_n == 40 and m.effect.open_cases == 10
    assert "censored" in m.effect.estimator
    # Dropping the open ones would give the closed tickets' mean (~2.7 h); censored at their
    # age (hours since they arrived) they count as long tickets and the mean rises.
    closed_mean = np.mean([2.0 + 0.05 * k for k in range(30)])
    assert m.treatment.mean > closed_mean + 3
    assert m.enough_cases  # 30 closed per cohort >= 20
