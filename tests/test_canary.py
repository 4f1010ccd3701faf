"""A canary measures a new bot's failure rate, and the Planner predicts with it instead of the prior."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from closedloop.agents.canary import failure_lookup
from closedloop.contracts import Prediction
from closedloop.sandbox.app import create_app
from closedloop.store.db import open_store, transaction
from closedloop.store.models import KpiSnapshot, LoopRun, Opportunity, Plan
from closedloop.tools.act.candidates import Opportunity as PlanOpportunity
from closedloop.tools.act.candidates import candidates_for
from closedloop.tools.act.evidence import automation_assumptions, failure_notice, failure_prior
from closedloop.tools.act.ranking import Weighed, decide
from closedloop.tools.act.system import System
from closedloop.tools.connect import CONNECTORS_DIR, load_connector, load_overlay
from closedloop.tools.log import frame_from_records
from closedloop.tools.measure import FailureCounts, automation_failures
from closedloop.tools.twin import fit_twin
from tests.test_planning import helpdesk_records

T0 = datetime(2024, 3, 4, 8, tzinfo=UTC)


def _event(case: str, activity: str, resource: str, at: datetime) -> dict:
    return {"case_id": case, "activity": activity, "resource": resource, "timestamp": at.isoformat()}


def canary_events(bot_activity: str = "Auto-resolve") -> list[dict]:
    """40 treated cases an hour apart: the bot runs, then 10 need a person (Triage by alice), 28
    close, 2 stay open; 2 more begin within the last day (too recent to judge)."""
    rows = []
    for i in range(42):
        at, case = T0 + timedelta(hours=i), f"t{i}"
        if i >= 40:
            at = T0 + timedelta(hours=80 + i)
        rows.append(_event(case, "Register ticket", "desk", at))
        rows.append(_event(case, bot_activity, "bot", at + timedelta(minutes=5)))
        if i < 10:  # the customer reopens 3 h after the bot's step; alice triages an hour later
            rows.append(_event(case, "Reopen", "customer", at + timedelta(hours=3, minutes=5)))
            rows.append(_event(case, "Triage", "alice", at + timedelta(hours=4)))
            rows.append(_event(case, "Close", "desk", at + timedelta(hours=5)))
        elif i < 38 or i >= 40:
            rows.append(_event(case, "Close", "desk", at + timedelta(minutes=10)))
    rows.append(_event("other", "Register ticket", "desk", T0 + timedelta(hours=130)))
    return rows


def test_a_canary_counts_the_cases_people_had_to_do_after_the_bot() -> None:
    frame = frame_from_records(canary_events())
    treated = [f"t{i}" for i in range(42)]
    got = automation_failures(frame, treated, ["Triage", "Resolve"], ["Close"], people=["alice"])
    assert (got.failed, got.cases, got.pending) == (10, 38, 2)  # 2 recent cases not judged
    assert got.rate == pytest.approx(10 / 38)
    assert got.low95 < 10 / 38 < got.high95 and 0.1 < got.low95 and got.high95 < 0.5
    # How long each failure went unnoticed: the bot's step until the reopen, not the queue after.
    assert got.notice_n == 10 and got.notice_q1 == pytest.approx(3.0) == got.notice_q3
    # A bot writing the people's own activity name is not a failure: only people's events count.
    same_name = frame_from_records(canary_events(bot_activity="Triage"))
    again = automation_failures(same_name, treated, ["Triage"], ["Close"], people=["alice"])
    assert (again.failed, again.cases) == (10, 38)
    # Without knowing who the people are, the bot's own Triage would count as a failure.
    blind = automation_failures(same_name, treated, ["Triage"], ["Close"])
    assert blind.failed == blind.cases == 40


def test_measured_failures_replace_the_declared_prior_once_there_are_enough() -> None:
    frame = frame_from_records(canary_events())
    measured = FailureCounts(failed=30, cases=40, plans=[7])
    got = failure_prior(frame, "category", ["password"], ["Triage"], measured)
    low, high = measured.interval
    assert (got.low, got.high) == (round(low, 4), round(high, 4)) and got.low > 0.5
    assert "measured by the canary of plan #7" in got.source and "30 of 40" in got.source
    few = failure_prior(frame, "category", ["password"], ["Triage"],
                        FailureCounts(failed=3, cases=5, plans=[7]))
    assert (few.low, few.high) == (0.0, 0.5) and "declared prior" in few.source
    # The canary's notice delays replace the log's rework gaps once enough failures were seen.
    noticed = FailureCounts(failed=30, cases=40, plans=[7], notice_hours=(2.0, 5.0), notice_n=30)
    _, (rate, notice) = automation_assumptions(frame, "category", ["password"], ["Triage"], noticed)
    assert (notice.low, notice.high) == (2.0, 5.0) and "30 failures came back" in notice.source
    assert rate.low > 0.5
    unseen = failure_notice(frame, ["Triage"], FailureCounts(failed=3, cases=40, plans=[7],
                                                            notice_hours=(2.0, 5.0), notice_n=3))
    assert "declared prior" in unseen.source


def test_the_planner_predicts_with_the_failures_a_canary_of_the_same_rule_measured(tmp_path) -> None:
    catalog = load_connector(create_app().openapi(), load_overlay(CONNECTORS_DIR / "helpdesk.overlay.yaml"))
    system = System(catalog, "http://127.0.0.1:9", httpx.Client())  # never called
    frame = frame_from_records(helpdesk_records())
    twin = fit_twin(frame, seed=0)
    opp = PlanOpportunity(id=3, activity="Resolve", segments=[
        {"attribute": "category", "value": "password", "share": 0.25, "mean_processing_hours": 0.1}])
    engine = open_store(f"sqlite:///{tmp_path}/store.db")
    before, _ = candidates_for(catalog, opp, twin, frame, {"L1": 2, "desk": 1}, {}, 0.5,
                               failures=failure_lookup(engine, system))
    rule = next(c for c in before if c.action == "create_rule")
    assert rule.assumptions["failure_rate"] == (0.0, 0.5)
    assert "declared prior that this canary on 50% of the segment measures" in rule.explore
    # A canary of the same rule (another treated share) measured 27 failures in 36 cases; one
    # on another segment measured none and must not count.
    with transaction(engine) as session:
        session.add(LoopRun(id="r1", scope="helpdesk", api_url=system.base_url))
        session.add(Opportunity(id=3, fingerprint="f", process="helpdesk", pattern="bottleneck",
                                activity="Resolve", impact=1.0, feasibility=1.0, risk=0.0,
                                priority=1.0))
        session.flush()
        for plan_id, value, rate in ((1, "password", 27 / 36), (2, "hardware", 0.0)):
            params = {**rule.params, "treatment_share": 0.3,
                      "condition": {**rule.params["condition"], "value": value}}
            session.add(Plan(id=plan_id, run_id="r1", opportunity_id=3, scope="helpdesk",
                             hypothesis="h", risk_tier="low", actions=[{"action": rule.action,
                                                                        "params": params}]))
            session.flush()
            session.add(KpiSnapshot(plan_id=plan_id, kpi="automation_failure_rate", cohort="treatment",
                                    n=36, mean=rate, ci_low=0.0, ci_high=1.0, source="test"))
    after, _ = candidates_for(catalog, opp, twin, frame, {"L1": 2, "desk": 1}, {}, 0.5,
                              failures=failure_lookup(engine, system))
    measured = next(c for c in after if c.action == "create_rule")
    low, high = measured.assumptions["failure_rate"]
    assert 0.55 < low < 27 / 36 < high < 0.9
    assert any("measured by the canary of plan #1" in e and "27 of 36" in e for e in measured.evidence)
    assert measured.explore is None  # measured: judged on its p90 from now on, never explored again


def _pred(p50: float, p90: float) -> Prediction:
    return Prediction(baseline_hours=10, delta_hours=p50 / 10, delta_per_treated_case_hours=0,
                      treated_share=0.5, ci_low_hours=0, ci_high_hours=0, delta_pct=p50,
                      ci_low_pct=p50 * 2, ci_high_pct=p90 + 5, ci_low_per_treated_case_hours=0,
                      ci_high_per_treated_case_hours=0, p10_pct=p50 * 1.5, p50_pct=p50, p90_pct=p90)


def test_a_canary_is_chosen_only_when_nothing_clears_and_it_measures_what_is_assumed() -> None:
    unknown = "the bot's failure rate is a declared prior that this canary measures"
    canary = Weighed(label="bot canary", action="r", predicted=_pred(-12, +8), cost=0.25,
                     risk_tier="low", verdict="", explore=unknown)
    staff = Weighed(label="staff", action="s", predicted=_pred(-30, -12), cost=1.0,
                    risk_tier="low", verdict="")
    ranked = decide([canary, staff], 5.0)
    assert [(w.label, w.verdict) for w in ranked] == [("staff", "chosen"), ("bot canary", "canary")]
    alone = decide([canary], 5.0)[0]
    assert alone.verdict == "chosen" and "a canary, since the bot's failure rate" in alone.reason
    # Nothing to measure (the rate was measured), a median short of the bar, or an effect the
    # loop cannot measure: below the bar, "no change".
    assert decide([canary.model_copy(update={"explore": None})], 5.0)[0].verdict == "below_bar"
    weak = canary.model_copy(update={"predicted": _pred(-3, +8)})
    assert decide([weak], 5.0)[0].verdict == "below_bar"
    blind = canary.model_copy(update={"unmeasurable": "treatment and control share the pool"})
    assert decide([blind], 5.0)[0].verdict == "below_bar"
    # Of two canaries the one with the better median goes first.
    better = canary.model_copy(update={"label": "better", "predicted": _pred(-20, +9)})
    assert [w.label for w in decide([canary, better], 5.0)] == ["better", "bot canary"]
