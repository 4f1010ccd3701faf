"""Deterministic planning of catalog actions (closedloop.tools.act.planning) on a small real frame."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from closedloop.sandbox.app import create_app
from closedloop.tools.act import planning
from closedloop.tools.act.catalog import Condition
from closedloop.tools.connect import CONNECTORS_DIR, load_connector, load_overlay
from closedloop.tools.errors import NotAllowedError, ScenarioError
from closedloop.tools.log import frame_from_records
from closedloop.tools.mining.mine import mine
from closedloop.tools.twin import AddCapacity, AutomateActivity, fit_twin

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


def test_pool_of_activity_prefers_the_pools_of_the_state(frame) -> None:
    assert planning.pool_of_activity(frame, "Resolve", ["L1", "L2"]) == "L1"
    assert planning.pool_of_activity(frame, "Close", ["desk", "L1"]) == "desk"
    assert planning.pool_of_activity(frame, "Resolve", ["L1-agent"]) == "L1-agent"
    assert planning.pool_of_activity(frame, "Resolve", []) == "L1"  # the naming fallback


def test_queue_of_activity_comes_from_resource_names(frame) -> None:
    assert planning.queue_of_activity(frame, "Resolve") == "L1"
    assert planning.queue_of_activity(frame, "Close") == "desk"
    assert planning.queue_of_activity(frame, "no such activity") is None


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


def test_candidates_come_from_the_catalogs_change_kinds(catalog) -> None:
    segments = [{"attribute": "category", "value": "hardware", "share": 0.75, "mean_processing_hours": 0.5},
                {"attribute": "category", "value": "password", "share": 0.25, "mean_processing_hours": 0.1},
                {"attribute": "channel", "value": "chat", "share": 0.1, "mean_processing_hours": 0.05}]
    found = planning.candidate_actions(catalog, segments, "L1", {"L1": 2}, share=0.5)
    assert [c.action for c in found] == ["set_queue_staffing", "create_rule"]
    assert found[0].params == {"queue": "L1", "agents": 3} and not found[0].partial
    assert found[1].params["condition"] == {"field": "category", "op": "eq", "value": "password"}
    assert found[1].params["treatment_share"] == 0.5 and found[1].partial
    assert found[1].params["rule_action"] == "auto_resolve"  # the value meaning automate_activity
    assert planning.candidate_actions(catalog, segments, "L2", {"L1": 2}, share=0.5)[0].action == "create_rule"
    assert planning.change_kind(catalog, "create_rule", found[1].params) == "automate_activity"
    assert planning.change_kind(catalog, "create_rule", {"rule_action": "route"}) == "route_segment"


def test_segment_expression() -> None:
    assert planning.segment_expression(Condition(field="category", value="password")) == "category == 'password'"
    assert planning.segment_expression(Condition(field="c", op="neq", value="x")) == "c != 'x'"
    assert planning.segment_expression(Condition(field="c", op="in", value=["a", "b"])) == "c in ('a', 'b')"


def test_scenarios_of_catalog_actions(frame, catalog) -> None:
    twin = fit_twin(frame, seed=1)
    pools = {"L1": 2, "desk": 1}
    staff = planning.scenario_for(catalog, "set_queue_staffing", {"queue": "L1", "agents": 3}, twin,
                                  frame, pools, "Resolve")
    assert isinstance(staff, AddCapacity) and staff.extra == 1
    assert staff.activity_or_pool == twin.pool_of("Resolve")
    rule = {"name": "auto", "condition": {"field": "category", "op": "eq", "value": "password"},
            "rule_action": "auto_resolve", "treatment_share": 0.5}
    bot = planning.scenario_for(catalog, "create_rule", rule, twin, frame, pools, "Resolve")
    assert isinstance(bot, AutomateActivity)
    assert (bot.activity, bot.segment, bot.share) == ("Resolve", "category == 'password'", 0.5)
    assert bot.failure_rate == planning.ASSUMED_AUTOMATION_FAILURE
    with pytest.raises(ScenarioError, match="unknown pool 'L9'"):
        planning.scenario_for(catalog, "set_queue_staffing", {"queue": "L9", "agents": 3}, twin,
                              frame, pools, "Resolve")
    with pytest.raises(ScenarioError, match="cannot be simulated yet"):
        planning.scenario_for(catalog, "create_rule", {**rule, "rule_action": "route"}, twin,
                              frame, pools, "Resolve")


def test_default_guardrails_use_the_case_boundaries_of_the_log(frame, catalog) -> None:
    report = mine(frame).model_dump(mode="json")
    guard = planning.default_guardrails(report)
    assert guard.start_activities == ["Register ticket"] and guard.end_activities == ["Close"]
    assert list(guard.model_dump()) == ["max_relative_worsening", "min_cases_per_cohort", "max_writes",
                                        "end_activities", "start_activities"]
    assert planning.compensation_description(catalog, "create_rule").startswith("DELETE /rules/{rule_id}")
    assert planning.cohort_split(0.5)["control_share"] == 0.5
