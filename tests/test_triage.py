"""Triage ranks what the connected system can act on: feasibility from the catalog's levers."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from closedloop.agents.triage import MIN_PRIORITY, offline_step
from closedloop.tools.mining.opportunities import (
    NO_LEVER_FEASIBILITY,
    InsightScore,
    rescore_insight,
    score_insight,
)


def test_without_a_system_feasibility_comes_from_the_delay_alone() -> None:
    waiting = score_insight("bottleneck", "Resolve", 20.0, 100.0, waiting_share=0.9)
    handling = score_insight("bottleneck", "Resolve", 20.0, 100.0, waiting_share=0.2)
    rework = score_insight("rework", "Resolve", 20.0, 100.0)
    assert (waiting.feasibility, handling.feasibility, rework.feasibility) == (0.8, 0.5, 0.5)
    assert waiting.priority == round(0.2 * 0.8 / 1.2, 4)
    assert waiting.feasibility_reason == "waiting-dominated delay"


@pytest.mark.parametrize(("lever", "feasibility", "reason"), [
    ("none", NO_LEVER_FEASIBILITY, "no change the connected system's catalog offers applies"),
    ("setting", 1.0, "a setting of the connected system applies"),
    ("capacity", 0.8, "only capacity applies; waiting-dominated delay"),
])
def test_the_catalogs_lever_sets_feasibility(lever, feasibility, reason) -> None:
    score = score_insight("bottleneck", "Resolve", 20.0, 100.0, waiting_share=0.9, lever=lever)
    assert score.feasibility == feasibility and score.feasibility_reason.startswith(reason)
    assert score.priority == round(0.2 * feasibility / 1.2, 4)


def test_rescoring_keeps_impact_and_risk() -> None:
    before = score_insight("bottleneck", "Receive Payment", 65.11, 100.0)
    after = rescore_insight(before, "bottleneck", "Receive Payment", 1.0, "none")
    assert (after.impact, after.risk) == (before.impact, before.risk)
    assert (after.impact, after.risk) == pytest.approx((0.6511, 0.6))
    assert after.feasibility == NO_LEVER_FEASIBILITY and after.priority < before.priority


def test_order_to_cash_the_unactionable_top_delay_falls_below_the_bar() -> None:
    # The o2c demo's numbers: customers paying takes 65 % of case time, but no team of the
    # company does it; the approval step is small but the catalog has a threshold for it.
    payment = rescore_insight(InsightScore(impact=0.6511, feasibility=0.8, risk=0.6, priority=0.3256),
                              "bottleneck", "Receive Payment", 0.99, "none")
    approval = rescore_insight(InsightScore(impact=0.097, feasibility=0.8, risk=0.6, priority=0.0485),
                               "bottleneck", "Manual Approval", 0.99, "setting")
    assert payment.priority < MIN_PRIORITY <= approval.priority


def _view(insight_id: int, activity: str, priority: float, **extra) -> dict:
    return {"insight_id": insight_id, "kind": "bottleneck", "activity": activity,
            "metric": "total_delay_hours", "value": 100.0, "impact": 0.5, "feasibility": 0.5,
            "risk": 0.2, "priority": priority, **extra}


def _messages(views: list[dict]) -> list:
    task = {"scope": "o2c", "cases": 100, "events": 900, "data_contract_problems": []}
    call = {"name": "list_insights", "args": {}, "id": "call-1"}
    return [HumanMessage(content=f"task\n```json\n{json.dumps(task)}\n```"),
            AIMessage(content="", tool_calls=[call]),
            ToolMessage(content=json.dumps(views), tool_call_id="call-1", name="list_insights")]


def test_the_offline_policy_cites_why_the_system_can_or_cannot_act() -> None:
    views = [
        _view(1, "Receive Payment", 0.0407, actionable=False, change_kinds=[],
              feasibility_reason="no change the connected system's catalog offers applies here",
              catalog="no catalog action can change it: pool 'Receive Payment': no honest mapping"),
        _view(2, "Manual Approval", 0.0606, actionable=True, change_kinds=["approval_threshold"],
              feasibility_reason="a setting of the connected system applies here",
              catalog="the catalog can act: set_approval_threshold (approval_threshold): ..."),
    ]
    out = json.loads(offline_step(_messages(views)).content)
    assert [s["insight_id"] for s in out["selected"]] == [2]
    assert "set_approval_threshold" in out["selected"][0]["rationale"]
    assert "feasibility: a setting of the connected system" in out["selected"][0]["rationale"]
    assert "cannot act on 1 (Receive Payment)" in out["summary"]


def test_without_a_system_the_offline_policy_is_unchanged() -> None:
    views = [_view(1, "Resolve", 0.3), _view(2, "Triage", 0.01), _view(3, "Close", 0.1)]
    out = json.loads(offline_step(_messages(views)).content)
    assert [s["insight_id"] for s in out["selected"]] == [1, 3]
    assert out["summary"] == f"2 of 3 insights clear priority {MIN_PRIORITY}."
    assert "feasibility:" not in out["selected"][0]["rationale"]
