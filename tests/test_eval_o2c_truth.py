"""o2c worlds get their counterfactual truth through the connector while grading: every change
the Planner weighed, run in a world of its own beside "no change", cached per world."""

from __future__ import annotations

import pytest

from closedloop.evals import o2c_truth
from closedloop.evals.connector_truth import ActionChange, true_effect_of
from closedloop.evals.world import World

HEADCOUNT = {"action": "set_team_headcount", "params": {"team": "APPROVERS", "headcount": 3}}


def _state(*considered: dict) -> dict:
    return {"steps": [{"step": "plan", "action": "none", "considered": list(considered)}]}


def test_the_candidates_are_every_weighed_change_once_and_the_chosen_one():
    state = _state(
        {**HEADCOUNT, "verdict": "chosen"},
        {**HEADCOUNT, "verdict": "cleared"},
        {"action": "set_approval_threshold", "params": {"threshold_amount": 6000.0}},
        {"action": None, "label": "no action"},
    )
    state["steps"][0].update(action="set_team_headcount", params={"team": "X", "headcount": 1})
    labels = [c.label() for c in o2c_truth.candidates_of(state)]
    assert len(labels) == 3 == len(set(labels))
    assert o2c_truth.candidates_of({"steps": []}) == []


@pytest.mark.slow
def test_truth_of_a_weighed_change_is_the_worlds_own_effect_and_cached(monkeypatch):
    monkeypatch.setattr(o2c_truth, "_RUNS", {})
    monkeypatch.setattr(o2c_truth, "_SEEN", {})
    world = World(domain="o2c", regime="default", seed=2)
    truth = o2c_truth.connector_truth(world, _state(HEADCOUNT))
    label = ActionChange(**HEADCOUNT).label()
    assert set(truth["effects"]) == {"no change", label}
    # the same number as the harness's own answer for that change
    direct = true_effect_of("o2c", 2, ActionChange(**HEADCOUNT), regime="default")
    assert truth["effects"][label]["effect_pct"] == pytest.approx(direct.effect_pct, abs=0.01)
    effect = truth["effects"][label]["effect_pct"]
    if effect <= -o2c_truth.MIN_GAIN_PCT:
        assert truth["best"] == label and truth["acceptable"] == [label]
        assert truth["effects"][label]["verdict"] == "keep"
    else:
        assert truth["best"] == "no change" and truth["acceptable"] == ["no change"]
    runs = dict(o2c_truth._RUNS)
    assert len(runs) == 2  # no change and the change, one world each
    # A run that weighed nothing (the do-nothing baseline) is judged against the same changes,
    # without running any world again.
    again = o2c_truth.connector_truth(world, _state())
    assert again["effects"] == truth["effects"] and o2c_truth._RUNS == runs
