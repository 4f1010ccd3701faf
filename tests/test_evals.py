"""The shadow-mode eval suite runs green, and its scorers do fail on bad plans."""

from __future__ import annotations

import pytest

from closedloop.cli import main
from closedloop.evals.runner import CaseResult, EvalCase, load_cases
from closedloop.evals.scorers import score_guards, score_no_writes, score_plan

PLAN = {
    "step": "plan",
    "action": "create_rule",
    "simulation_id": 3,
    "params": {"condition": {"field": "category", "op": "eq", "value": "password"}},
    "predicted": {"delta_pct": -8.0, "ci_high_pct": 1.0, "p90_pct": -6.0},
    "blast_radius": {"share_of_cases": 0.16},
}
STAFF = {
    "step": "plan",
    "action": "set_queue_staffing",
    "simulation_id": 4,
    "params": {"queue": "L2", "agents": 3},
    "predicted": {"delta_pct": -30.0, "ci_high_pct": 2.0, "p90_pct": -12.0},
    "blast_radius": {"share_of_cases": 1.0},
}


def test_bundled_cases_parse():
    cases = load_cases()
    assert len(cases) >= 3 and all(isinstance(c, EvalCase) for c in cases)
    # Expectations follow the sandbox's counterfactual truth (benchmarks/results/counterfactual.md):
    # in the default regime one more first-line agent is best.
    default = {c.name: c.expect for c in cases}
    assert default["password_bottleneck"]["plan"] == "set_queue_staffing"
    assert default["other_seed"]["params"] == {"queue": "L1"}


def test_staffing_expectation_fails_on_the_wrong_queue_or_the_rule():
    expect = {
        "plan": "set_queue_staffing",
        "params": {"queue": "L1"},
        "max_blast_radius": 1.0,
        "min_predicted_improvement_pct": 5,
    }
    assert not score_plan({"steps": [STAFF]}, [], expect).passed  # L2 is the wrong queue
    right = {"steps": [{**STAFF, "params": {"queue": "L1", "agents": 4}}]}
    assert score_plan(right, [], expect).passed and score_guards(right, [], expect).passed
    assert not score_plan({"steps": [PLAN]}, [], expect).passed  # the rule is not the best action


def test_scorers_fail_on_wrong_decisions():
    state = {"steps": [PLAN]}
    expect = {
        "plan": "create_rule",
        "condition": {"field": "category", "value": "password"},
        "min_predicted_improvement_pct": 5,
        "max_blast_radius": 0.25,
    }
    assert score_plan(state, [], expect).passed
    assert score_guards(state, [], expect).passed
    wrong = {
        "steps": [{**PLAN, "params": {"condition": {"field": "category", "value": "hardware"}}}]
    }
    assert not score_plan(wrong, [], expect).passed
    weak = {
        "steps": [{**PLAN, "predicted": {"delta_pct": -8.0, "ci_high_pct": 1.0, "p90_pct": -2.0}}]
    }
    assert not score_guards(weak, [], expect).passed  # the conservative bound misses the bar
    old = {"steps": [{**PLAN, "predicted": {"delta_pct": -8.0, "ci_high_pct": 0.5}}]}
    assert not score_guards(old, [], expect).passed  # no quantiles: the 95 % bound is the bar
    assert not score_no_writes(state, [{"method": "POST", "path": "/rules"}], expect).passed


def test_a_known_gap_must_fail_and_a_fixed_one_is_flagged():
    gap = "measured shortfall"
    assert CaseResult(case="c", passed=False, scores=[], outcome=None, known_gap=gap).as_expected
    assert not CaseResult(case="c", passed=True, scores=[], outcome=None, known_gap=gap).as_expected
    assert not CaseResult(case="c", passed=False, scores=[], outcome=None).as_expected
    assert CaseResult(case="c", passed=True, scores=[], outcome=None).as_expected


def test_eval_suite_fails_below_threshold(tmp_path, capsys):
    case = tmp_path / "cases"
    case.mkdir()
    (case / "impossible.yaml").write_text(
        "name: impossible\nsource: a test\ntier: quick\nsandbox: {seed: 7, history_days: 21}\n"
        "mode: shadow\nbranch: none\nexpect: {plan: drop_tables}\n"
    )
    assert main(["--home", str(tmp_path), "eval", "--cases", str(case), "--no-baseline"]) == 1
    assert "expected 'drop_tables'" in capsys.readouterr().out


def test_a_case_without_its_source_is_refused(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: nameless\nexpect: {plan: none}\n")
    with pytest.raises(ValueError, match=r"(?s)bad.yaml: case 1: .*source"):
        load_cases(tmp_path)
