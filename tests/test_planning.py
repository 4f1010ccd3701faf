"""Deterministic planning of catalog actions (closedloop.tools.act.planning) on a small real frame."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from closedloop.contracts import Prediction
from closedloop.sandbox.app import create_app
from closedloop.tools.act import planning
from closedloop.tools.act.actionability import actionability
from closedloop.tools.act.candidates import Opportunity, candidates_for
from closedloop.tools.act.catalog import Condition
from closedloop.tools.act.evidence import approval_gate, failure_prior
from closedloop.tools.act.pool_map import map_pool, state_members
from closedloop.tools.act.ranking import Weighed, decide
from closedloop.tools.connect import CONNECTORS_DIR, load_connector, load_overlay
from closedloop.tools.errors import NotAllowedError, ScenarioError
from closedloop.tools.log import frame_from_records
from closedloop.tools.mining.mine import mine
from closedloop.tools.mining.opportunities import segment_profile
from closedloop.tools.twin import (
    AddCapacity,
    AsIs,
    AutomateActivity,
    RouteSegment,
    fit_twin,
    route_plan,
    simulate,
    simulate_log,
)

T0 = datetime(2024, 1, 1, 8, tzinfo=UTC)


def helpdesk_records(cases: int = 40) -> list[dict]:
    """Tickets: the desk registers, a first-level queue (L1) resolves, the desk closes; 1 in 4 is 'password'."""
    out = []
    for i in range(cases):
        start = T0 + timedelta(hours=3 * i)
        category = "password" if i % 4 == 0 else "hardware"
        steps = [("Register ticket", "desk-1", 0.0, 0.1), ("Resolve", f"L1-agent-{i % 2}", 2.0 + i % 3, 0.5),
                 ("Close", "desk-1", 5.0 + i % 3, 0.1)]
        for activity, resource, begin, length in steps:
            for lifecycle, at in (("start", begin), ("complete", begin + length)):
                out.append({"case_id": f"t{i}", "activity": activity, "lifecycle": lifecycle,
                            "timestamp": (start + timedelta(hours=at)).isoformat(), "resource": resource,
                            "attributes": {"category": category}})
    return out


@pytest.fixture(scope="module")
def frame():
    return frame_from_records(helpdesk_records())


@pytest.fixture(scope="module")
def catalog():
    """The helpdesk connector's catalog: the sandbox's own OpenAPI document plus the overlay."""
    return load_connector(create_app().openapi(),
                          load_overlay(CONNECTORS_DIR / "helpdesk.overlay.yaml"))


@pytest.fixture(scope="module")
def twin(frame):
    return fit_twin(frame, seed=1)


def test_pools_map_by_headcount_without_any_naming_convention(frame, twin) -> None:
    resolve = twin.pool_of("Resolve")
    match = map_pool(twin, resolve, {"first": 2, "desk": 1}, name_hint=False)
    assert (match.state_pool, match.evidence) == ("first", "headcount")
    # Two pools of the system with the same headcount: no honest mapping without more evidence.
    tie = map_pool(twin, resolve, {"A": 2, "B": 2}, name_hint=False)
    assert tie.state_pool is None and "2 pools" in tie.detail
    # The declared name hint breaks the tie, and says it is a hint.
    hinted = map_pool(twin, resolve, {"L1": 2, "L2": 2})
    assert (hinted.state_pool, hinted.evidence) == ("L1", "headcount+name_hint")
    # Members listed by the state are the strongest evidence.
    listed = {"X": {"agents": 2, "members": ["L1-agent-0", "L1-agent-1"]}, "Y": 2}
    members = state_members(listed, {})
    assert members == {"X": ["L1-agent-0", "L1-agent-1"]}
    assert map_pool(twin, resolve, listed, members).evidence == "members"


def test_opaque_resource_names_still_give_a_staffing_candidate(catalog) -> None:
    records = helpdesk_records()
    for r in records:  # people named by ids that carry no pool name
        r["resource"] = {"desk-1": "u93", "L1-agent-0": "u17", "L1-agent-1": "u42"}[r["resource"]]
    frame = frame_from_records(records)
    twin = fit_twin(frame, seed=1)
    opp = Opportunity(id=1, activity="Resolve", segments=SEGMENTS)
    made, dropped = candidates_for(catalog, opp, twin, frame, {"L1": 2, "desk": 1}, {}, 0.5)
    staffing = [c for c in made if c.action == "set_queue_staffing"]
    assert [c.params for c in staffing] == [{"queue": "L1", "agents": 3}]
    assert "headcount" in staffing[0].evidence[0]
    # Without a headcount match nothing is guessed: the candidate is dropped with the reason.
    made, dropped = candidates_for(catalog, opp, twin, frame, {"L1": 7, "desk": 1}, {}, 0.5)
    assert not [c for c in made if c.action == "set_queue_staffing"]
    assert any("no honest mapping" in d.reason for d in dropped)


def test_segment_share_and_blast_radius(frame, catalog) -> None:
    rule = {"name": "auto", "condition": {"field": "category", "op": "eq", "value": "password"},
            "rule_action": "auto_resolve", "treatment_share": 0.5}
    password = Condition(field="category", value="password")
    assert planning.segment_share(frame, password) == 0.25
    assert planning.segment_share(frame, Condition(field="category", op="neq", value="password")) == 0.75
    assert planning.segment_share(frame, Condition(field="missing", value="x")) == 1.0
    assert planning.segment_share(frame, None) == 1.0
    blast = planning.blast_radius(catalog, frame, "create_rule", rule)
    assert (blast.share_of_cases, blast.segment_share, blast.treatment_share) == (0.125, 0.25, 0.5)
    staffing = planning.blast_radius(catalog, frame, "set_queue_staffing", {"queue": "L1", "agents": 3})
    assert staffing.share_of_cases == 1.0 and staffing.treatment_share == 1.0


def test_risk_tier(catalog) -> None:
    assert planning.risk_tier(catalog, "create_rule", 0.125) == "low"
    assert planning.risk_tier(catalog, "create_rule", 0.4) == "medium"
    assert planning.risk_tier(catalog, "set_queue_staffing", 0.1) == "medium"  # a medium-risk action
    assert planning.risk_tier(catalog, "set_queue_staffing", 1.0) == "high"
    with pytest.raises(NotAllowedError, match="not in the catalog"):
        planning.risk_tier(catalog, "drop_tables", 0.0)


SEGMENTS = [{"attribute": "category", "value": "hardware", "share": 0.75, "mean_processing_hours": 0.5},
            {"attribute": "category", "value": "password", "share": 0.25, "mean_processing_hours": 0.1},
            {"attribute": "channel", "value": "chat", "share": 0.1, "mean_processing_hours": 0.05}]


def test_candidates_come_from_the_catalogs_change_kinds(catalog, frame, twin) -> None:
    opp = Opportunity(id=3, activity="Resolve", segments=SEGMENTS)
    found, dropped = candidates_for(catalog, opp, twin, frame, {"L1": 2, "desk": 1}, {}, 0.5)
    assert [c.action for c in found] == ["set_queue_staffing", "create_rule"]
    assert found[0].params == {"queue": "L1", "agents": 3} and not found[0].partial
    assert found[0].scenario == {"kind": "add_capacity", "activity_or_pool": twin.pool_of("Resolve"),
                                 "extra": 1}
    assert found[1].params["condition"] == {"field": "category", "op": "eq", "value": "password"}
    assert found[1].params["treatment_share"] == 0.5 and found[1].partial
    assert found[1].params["rule_action"] == "auto_resolve"  # the value meaning automate_activity
    assert found[1].opportunity_id == 3 and found[1].change_kind == "automate_activity"
    # The bot's failure rate and how long a failure goes unnoticed are not constants: declared
    # ranges (this small log has no rework to learn from), shown with where they came from.
    assert found[1].assumptions == {"failure_rate": (0.0, 0.5), "failure_delay_hours": (0.0, 24.0)}
    assert any("declared prior" in e and "failure rate" in e for e in found[1].evidence)
    assert any("noticed after" in e and "declared prior" in e for e in found[1].evidence)
    assert [d.change_kind for d in dropped] == ["route_segment"]
    assert planning.change_kind(catalog, "create_rule", found[1].params) == "automate_activity"
    assert planning.change_kind(catalog, "create_rule", {"rule_action": "route"}) == "route_segment"


def test_actionability_lists_the_change_kinds_that_apply(catalog, frame, twin) -> None:
    pools = {"L1": 2, "desk": 1}
    both = actionability(catalog, "Resolve", "bottleneck", SEGMENTS, twin, frame, pools, {}, 0.5)
    assert both.actionable and both.kinds == ["automate_activity", "set_capacity"]
    assert both.lever == "setting"  # a rule applies, not only people
    assert "one more in pool L1" in both.rationale() and "category=password" in both.rationale()
    # Without a routine segment only the staffing change is left.
    people = actionability(catalog, "Resolve", "bottleneck", [], twin, frame, pools, {}, 0.5)
    assert people.kinds == ["set_capacity"] and people.lever == "capacity"


def test_an_activity_the_catalog_cannot_change_is_not_actionable_and_says_why(catalog, frame,
                                                                               twin) -> None:
    # No pool of the system has the activity's headcount (and names are not read): no mapping;
    # no segment is routine: nothing to automate.
    pools = {"Q1": 7, "Q2": 9}
    found = actionability(catalog, "Resolve", "bottleneck", [], twin, frame, pools, {}, 0.5,
                          name_hint=False)
    assert not found.actionable and found.kinds == [] and found.lever == "none"
    assert {c.change_kind for c in found.checks} >= {"set_capacity", "automate_activity"}
    assert not any(c.applies for c in found.checks)
    why = found.rationale()
    assert why.startswith("no catalog action can change it") and "no honest mapping" in why
    assert "no routine segment" in why


def test_failure_prior_widens_with_the_segments_rework() -> None:
    rows = []
    for i in range(40):  # 30 of 40 'password' cases resolve twice (rework)
        acts = ["Resolve", "Resolve"] if i < 30 else ["Resolve"]
        for k, a in enumerate(acts):
            rows.append({"case_id": f"c{i}", "activity": a, "resource": "r",
                         "timestamp": (T0 + timedelta(hours=i + k / 10)).isoformat(),
                         "attributes": {"category": "password"}})
    frame = frame_from_records(rows)
    wide = failure_prior(frame, "category", ["password"], ["Resolve"])
    assert wide.low == 0.0 and 0.75 < wide.high < 0.95 and "widens" in wide.source
    few = failure_prior(frame, "category", ["other"], ["Resolve"])
    assert (few.low, few.high) == (0.0, 0.5) and "too few" in few.source


def test_approval_gate_is_read_from_attribute_values() -> None:
    rows = []
    for i in range(60):
        amount = 100.0 * i
        acts = ["Create", "Approve", "Ship"] if amount >= 3000 else ["Create", "Ship"]
        for k, a in enumerate(acts):
            rows.append({"case_id": f"o{i}", "activity": a, "resource": "r",
                         "timestamp": (T0 + timedelta(hours=i + k)).isoformat(),
                         "attributes": {"amount": amount, "region": "x"}})
    frame = frame_from_records(rows)
    gate = approval_gate(frame, "Approve")
    assert gate is not None and (gate.attribute, gate.threshold) == ("amount", 3000.0)
    assert approval_gate(frame, "Ship") is None


def test_cases_not_yet_at_an_activity_are_no_gate() -> None:
    """Every order is checked; the newest 2 of 60 are not yet. Read as a gate, "checked only
    from the smallest amount" became a candidate that raised an approval threshold the check
    does not have (the order-to-cash bench simulated skipping the credit check)."""
    rows = []
    for i in range(60):
        acts = ["Create", "Check"] if i < 58 else ["Create"]
        for k, a in enumerate(acts):
            rows.append({"case_id": f"o{i}", "activity": a, "resource": "r",
                         "timestamp": (T0 + timedelta(hours=i + k)).isoformat(),
                         "attributes": {"amount": 100.0 + (i * 37) % 60 * 50}})
    assert approval_gate(frame_from_records(rows), "Check") is None


def test_segment_expression() -> None:
    assert planning.segment_expression(Condition(field="category", value="password")) == "category == 'password'"
    assert planning.segment_expression(Condition(field="c", op="neq", value="x")) == "c != 'x'"
    assert planning.segment_expression(Condition(field="c", op="in", value=["a", "b"])) == "c in ('a', 'b')"


def test_scenarios_of_catalog_actions(frame, catalog, twin) -> None:
    pools = {"L1": 2, "desk": 1}
    staff, ranges = planning.scenario_for(catalog, "set_queue_staffing", {"queue": "L1", "agents": 3},
                                          twin, frame, pools, "Resolve")
    assert isinstance(staff, AddCapacity) and staff.extra == 1 and ranges == {}
    assert staff.activity_or_pool == twin.pool_of("Resolve")
    rule = {"name": "auto", "condition": {"field": "category", "op": "eq", "value": "password"},
            "rule_action": "auto_resolve", "treatment_share": 0.5}
    bot, ranges = planning.scenario_for(catalog, "create_rule", rule, twin, frame, pools, "Resolve")
    assert isinstance(bot, AutomateActivity)
    assert (bot.activity, bot.segment, bot.share) == ("Resolve", "category == 'password'", 0.5)
    assert ranges == {"failure_rate": (0.0, 0.5), "failure_delay_hours": (0.0, 24.0)}
    with pytest.raises(ScenarioError, match="unknown pool 'L9'"):
        planning.scenario_for(catalog, "set_queue_staffing", {"queue": "L9", "agents": 3}, twin,
                              frame, pools, "Resolve")
    with pytest.raises(ScenarioError, match="no pool of the twin maps"):
        planning.scenario_for(catalog, "set_queue_staffing", {"queue": "Q", "agents": 3}, twin,
                              frame, {"Q": 9, "desk": 1}, "Resolve")
    with pytest.raises(ScenarioError, match="unknown queue None"):  # a route names its queue
        planning.scenario_for(catalog, "create_rule", {**rule, "rule_action": "route"}, twin,
                              frame, pools, "Resolve")


def test_decision_ranks_on_the_conservative_bound_and_records_no_change() -> None:
    def pred(mean: float, p90: float) -> Prediction:
        return Prediction(baseline_hours=10, delta_hours=mean / 10, delta_per_treated_case_hours=0,
                          treated_share=0, ci_low_hours=0, ci_high_hours=0, delta_pct=mean,
                          ci_low_pct=mean * 2, ci_high_pct=p90 + 5, ci_low_per_treated_case_hours=0,
                          ci_high_per_treated_case_hours=0, p10_pct=mean * 1.5, p50_pct=mean,
                          p90_pct=p90)

    staff = Weighed(label="staff", action="s", predicted=pred(-30, -12), cost=1.0,
                    risk_tier="high", verdict="")
    rule = Weighed(label="rule", action="r", predicted=pred(-20, -10), cost=0.25,
                   risk_tier="low", verdict="")
    weak = Weighed(label="weak", action="w", predicted=pred(-20, -2), verdict="", risk_tier="low")
    ranked = decide([weak, staff, rule], 5.0)
    assert [(w.label, w.verdict) for w in ranked] == [("rule", "chosen"), ("staff", "cleared"),
                                                      ("weak", "below_bar")]
    assert "90 % confidence" in ranked[-1].reason
    assert decide([weak], 5.0)[0].verdict == "below_bar"  # nothing clears: no change


def test_default_guardrails_use_the_case_boundaries_of_the_log(frame, catalog) -> None:
    report = mine(frame).model_dump(mode="json")
    guard = planning.default_guardrails(report)
    assert guard.start_activities == ["Register ticket"] and guard.end_activities == ["Close"]
    assert list(guard.model_dump()) == ["max_relative_worsening", "min_cases_per_cohort", "max_writes",
                                        "end_activities", "start_activities"]
    assert planning.compensation_description(catalog, "create_rule").startswith("DELETE /rules/{rule_id}")
    assert planning.cohort_split(0.5)["control_share"] == 0.5


def two_line_records(cases: int = 150) -> list[dict]:
    """Tickets: the desk registers, a first line (3 agents) triages and resolves; hardware tickets
    are escalated and resolved by a second line (2 agents), a third of all tickets."""
    out = []
    for i in range(cases):
        start = T0 + timedelta(hours=1.5 * i)
        category = ("hardware", "software", "password")[(i // 2) % 3]
        agent = f"L1-agent-{i % 3}"
        steps = [("Register ticket", "desk-1", 0.0, 0.05), ("Triage", agent, 0.5 + i % 4 * 0.2, 0.3)]
        if category == "hardware":
            steps += [("Escalate", agent, 0.9 + i % 4 * 0.2, 0.1),
                      ("Resolve", f"L2-agent-{i % 2}", 2.0 + i % 5 * 0.3, 1.0)]
        else:
            steps += [("Resolve", agent, 1.0 + i % 4 * 0.2, 0.4)]
        steps.append(("Close", "desk-1", 4.0 + i % 5 * 0.3, 0.05))
        for activity, resource, begin, length in steps:
            for lifecycle, at in (("start", begin), ("complete", begin + length)):
                out.append({"case_id": f"t{i}", "activity": activity, "lifecycle": lifecycle,
                            "timestamp": (start + timedelta(hours=at)).isoformat(),
                            "resource": resource, "attributes": {"category": category}})
    return out


@pytest.fixture(scope="module")
def two_lines():
    frame = frame_from_records(two_line_records())
    twin = fit_twin(frame, seed=1)
    first = twin.pool_of("Triage")
    second = twin.pool_of_resources(["L2-agent-0", "L2-agent-1"])
    assert first != second
    return frame, twin, first, second


def test_a_route_candidate_sends_a_segment_to_the_queue_already_doing_its_work(catalog,
                                                                              two_lines) -> None:
    frame, twin, first, second = two_lines
    opp = Opportunity(id=5, activity="Triage",
                      segments=[seg.model_dump() for seg in segment_profile(frame, "Triage")])
    pools = {"L1": 3, "L2": 2, "desk": 1}
    made, dropped = candidates_for(catalog, opp, twin, frame, pools, {}, 0.5, name_hint=False)
    routes = [c for c in made if c.change_kind == "route_segment"]
    # Only hardware tickets were ever resolved by the second line: the one segment with evidence.
    assert [c.params["route_queue"] for c in routes] == ["L2"]
    route = routes[0]
    assert route.params["condition"] == {"field": "category", "op": "eq", "value": "hardware"}
    assert route.params["rule_action"] == "route" and route.params["treatment_share"] == 0.5
    assert route.scenario == {"kind": "route_segment", "segment": "category == 'hardware'",
                              "from_pool": first, "to_pool": second, "share": 0.5}
    assert any("skip Triage and go straight to Resolve" in e for e in route.evidence)
    # Split into treatment and control, a route relieves the control cases' pool too: the loop
    # could not measure it, so it is predicted and listed but never chosen.
    assert "treatment vs control would miss" in route.unmeasurable
    good = Prediction(baseline_hours=10, delta_hours=-5, delta_per_treated_case_hours=-5,
                      treated_share=0.3, ci_low_hours=-6, ci_high_hours=-4, delta_pct=-50,
                      ci_low_pct=-60, ci_high_pct=-40, p90_pct=-45,
                      ci_low_per_treated_case_hours=-6, ci_high_per_treated_case_hours=-4)
    judged = decide([Weighed(label="route", action="create_rule", predicted=good, verdict="",
                             unmeasurable=route.unmeasurable)], 5.0)
    assert judged[0].verdict == "below_bar" and "not measurable" in judged[0].reason
    # The desk is entered at work the first line never does: no route there, and why.
    desk = [d for d in dropped if d.change_kind == "route_segment"]
    assert len(desk) == 1 and "'desk'" in desk[0].reason and "drop work" in desk[0].reason
    # A target queue no twin pool maps onto honestly gives no candidate, only the reason.
    made, dropped = candidates_for(catalog, opp, twin, frame, {"L1": 3, "A": 2, "B": 2, "desk": 1},
                                   {}, 0.5, name_hint=False)
    assert not [c for c in made if c.change_kind == "route_segment"]
    assert any("queue 'A': 0 pools of the twin" in d.reason for d in dropped)
    # A screen picks among segments: with none better than another, the first is kept.
    made, _ = candidates_for(catalog, opp, twin, frame, pools, {}, 0.5, name_hint=False,
                             screen=lambda scenario: 0.0)
    assert [c.params["route_queue"] for c in made if c.change_kind == "route_segment"] == ["L2"]
    scenario, ranges = planning.scenario_for(catalog, "create_rule", route.params, twin, frame,
                                             pools, "Triage", name_hint=False)
    assert scenario.model_dump() == route.scenario and ranges == {}


def test_a_routed_segment_skips_the_first_line_and_is_resolved_by_the_second(two_lines) -> None:
    _, twin, first, second = two_lines
    plan = route_plan(twin, first, second)
    assert (plan.leave, plan.enter, plan.previous) == ("Triage", "Resolve", ["Register ticket"])
    route = RouteSegment(segment="category == 'software'", from_pool=first, to_pool=second)
    start = datetime(2024, 3, 4, 8, tzinfo=UTC)
    before = simulate_log(twin, 300, start, seed=2)
    after = simulate_log(twin, 300, start, seed=2, scenario=route)
    l2 = set(twin.pools[second].resource_names)

    def untriaged(log):
        triaged = set(log.loc[log["activity"] == "Triage", "case_id"])
        return log[~log["case_id"].isin(triaged)]

    assert untriaged(before).empty
    skipped = untriaged(after)
    # about a third of the cases (software) skip triage; each is resolved by the second line
    assert 0.2 < skipped["case_id"].nunique() / 300 < 0.45
    resolved = skipped[skipped["activity"] == "Resolve"]
    assert len(resolved) >= skipped["case_id"].nunique() and set(resolved["resource"]) <= l2
    # The new edge's pool table steers routed cases only: the as-is run is unchanged.
    assert simulate(twin, route, cases=200, replications=2, seed=3).as_is == \
        simulate(twin, AsIs(), cases=200, replications=2, seed=3).as_is
    half = simulate_log(twin, 300, start, seed=2, scenario=route.model_copy(update={"share": 0.5}))
    assert 0.3 < untriaged(half)["case_id"].nunique() / skipped["case_id"].nunique() < 0.7
    with pytest.raises(ScenarioError, match="same pool"):
        route_plan(twin, first, first)
    with pytest.raises(ScenarioError, match="drop work"):
        route_plan(twin, first, twin.pool_of("Close"))


def test_an_activity_that_takes_no_handling_time_is_not_work_a_bot_could_take_over(catalog) -> None:
    records = two_line_records()
    for i in range(0, 150, 3):  # a customer reopens a third of the tickets: an instant, no work
        at = (T0 + timedelta(hours=1.5 * i + 5.0)).isoformat()
        records += [{"case_id": f"t{i}", "activity": "Reopen", "lifecycle": lifecycle,
                     "timestamp": at, "resource": "customer",
                     "attributes": {"category": ("hardware", "software", "password")[(i // 2) % 3]}}
                    for lifecycle in ("start", "complete")]
    frame = frame_from_records(records)
    twin = fit_twin(frame, seed=1)
    pools = {"L1": 3, "L2": 2, "desk": 1}

    def automations(activity: str) -> tuple[list, list]:
        opp = Opportunity(id=1, activity=activity,
                          segments=[s.model_dump() for s in segment_profile(frame, activity)])
        made, dropped = candidates_for(catalog, opp, twin, frame, pools, {}, 0.5, name_hint=False)
        return ([c for c in made if c.change_kind == "automate_activity"],
                [d for d in dropped if d.change_kind == "automate_activity"])

    made, dropped = automations("Reopen")
    assert not made and "an event, not work a bot could take over" in dropped[0].reason
    _made, dropped = automations("Triage")  # work, judged as work (no segment quick enough here)
    assert dropped and all("an event" not in d.reason for d in dropped)
    assert "no routine segment at Triage" in dropped[0].reason
