"""The counterfactual harness: the sandbox run twice from one seed, with and without a change."""

from __future__ import annotations

import pytest

from closedloop.evals.counterfactual import (
    NoChange,
    RuleChange,
    StaffingChange,
    best_candidate,
    change_from_action,
    regime_staffing,
    run_world,
    standard_candidates,
    true_effect,
)

SHORT = {"history_days": 7.0, "observe_days": 5.0, "drain_days": 3.0}


def test_no_change_twice_gives_exactly_zero_effect() -> None:
    result = true_effect(3, NoChange(), **SHORT)
    assert result.cases > 50
    assert result.effect_hours == 0.0 and result.effect_pct == 0.0
    assert result.reopen_effect_points == 0.0
    assert result.changed_mean_cycle_hours == result.baseline_mean_cycle_hours
    # and the world itself is deterministic: the same seed gives the same cases
    again = run_world(3, NoChange(), **SHORT)
    assert again.cases == run_world(3, NoChange(), **SHORT).cases


def test_an_extra_agent_on_the_bottleneck_queue_shortens_cycle_time_clearly() -> None:
    result = true_effect(3, StaffingChange(queue="L1", agents=4), **SHORT)
    assert result.effect_hours < -1.0 and result.effect_pct < -10.0
    assert result.treated_cases == 0 and result.effect_per_treated_case_hours is None
    # the non-bottleneck queue barely matters next to it
    other = true_effect(3, StaffingChange(queue="L2", agents=3), **SHORT)
    assert other.effect_hours > result.effect_hours / 3


def test_rule_effect_per_treated_case_and_reopen_rate() -> None:
    rule = RuleChange(condition={"field": "category", "op": "eq", "value": "hardware"},
                      treatment_share=1.0)  # the bot fails 85 % on hardware (hidden)
    result = true_effect(3, rule, **SHORT)
    assert result.treated_cases > 0 and result.effect_per_treated_case_hours is not None
    assert result.reopen_rate_changed > result.reopen_rate_baseline


def test_best_candidate_ranks_by_true_effect_and_can_choose_nothing() -> None:
    best = best_candidate(3, [NoChange(), StaffingChange(queue="L1", agents=4)], **SHORT)
    assert best.best == 1 and best.best_label == "L1 = 4 agents"
    assert best.results[0].effect_hours == 0.0
    worse = best_candidate(3, [StaffingChange(queue="L1", agents=2)], **SHORT)
    assert worse.best is None and worse.best_label == "no change"
    assert worse.results[0].effect_hours > 0


def test_change_from_loop_actions() -> None:
    assert change_from_action("set_queue_staffing", {"queue": "L1", "agents": 4}) == StaffingChange(
        queue="L1", agents=4)
    rule = change_from_action("create_rule", {
        "name": "r", "condition": {"field": "category", "op": "eq", "value": "password"},
        "rule_action": "auto_resolve", "treatment_share": 0.5})
    assert isinstance(rule, RuleChange) and rule.treatment_share == 0.5
    route = change_from_action("create_rule", {
        "name": "r", "condition": {"field": "category", "op": "eq", "value": "software"},
        "rule_action": "route", "route_queue": "L2", "treatment_share": 1.0})
    assert route.action == {"type": "route", "queue": "L2"}  # the connector names it route_queue
    assert change_from_action("none", {}) == NoChange()
    with pytest.raises(ValueError, match="no counterfactual"):
        change_from_action("delete_everything", {})


PASSWORD_RULE = RuleChange(condition={"field": "category", "op": "eq", "value": "password"})


def test_unreliable_bot_makes_the_password_rule_hurt() -> None:
    default = true_effect(3, PASSWORD_RULE, **SHORT)
    unreliable = true_effect(3, PASSWORD_RULE, regime="unreliable-bot", **SHORT)
    assert unreliable.regime == "unreliable-bot" and default.regime == "default"
    # the bot's rework: far more reopens, and the rule now lengthens cycle time
    assert unreliable.reopen_effect_points > default.reopen_effect_points + 10
    assert default.effect_hours < 0 < unreliable.effect_hours
    assert unreliable.effect_per_treated_case_hours > 0


def test_second_line_bottleneck_favours_an_l2_agent() -> None:
    staffing = regime_staffing("second-line-bottleneck")
    l1 = true_effect(3, StaffingChange(queue="L1", agents=staffing["L1"] + 1),
                     regime="second-line-bottleneck", **SHORT)
    l2 = true_effect(3, StaffingChange(queue="L2", agents=staffing["L2"] + 1),
                     regime="second-line-bottleneck", **SHORT)
    assert l2.effect_pct < -10 and l2.effect_hours < 3 * l1.effect_hours


def test_nothing_helps_regime_leaves_no_change_as_the_best_answer() -> None:
    candidates = standard_candidates(regime_staffing("nothing-helps"))
    for seed in (1, 2):
        best = best_candidate(seed, candidates, regime="nothing-helps", min_gain_pct=1.0,
                              **SHORT)
        assert best.best is None and best.best_label == "no change", best.results
        assert all(r.effect_pct > -1.0 for r in best.results)
    # the same candidates do help in the default world
    default = best_candidate(1, standard_candidates(regime_staffing()), min_gain_pct=1.0,
                             **SHORT)
    assert default.best is not None and default.results[default.best].effect_pct < -10


def test_regime_worlds_are_deterministic_per_seed() -> None:
    for regime in ("overload", "unreliable-bot"):
        assert run_world(4, PASSWORD_RULE, regime=regime, **SHORT).cases == run_world(
            4, PASSWORD_RULE, regime=regime, **SHORT).cases
    assert run_world(4, NoChange(), regime="overload", **SHORT).cases != run_world(
        4, NoChange(), **SHORT).cases


def test_materiality_bar_of_best_candidate() -> None:
    extra = StaffingChange(queue="L2", agents=3)  # helps the default world only a little
    loose = best_candidate(3, [extra], **SHORT)
    strict = best_candidate(3, [extra], min_gain_pct=5.0, **SHORT)
    assert loose.results[0].effect_hours < 0 and -loose.results[0].effect_pct < 5.0
    assert loose.best == 0 and strict.best is None and strict.min_gain_pct == 5.0
