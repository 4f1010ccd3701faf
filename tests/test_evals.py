"""The shadow-mode eval suite runs green, and its scorers do fail on bad plans."""

from __future__ import annotations

import pytest

from closedloop.cli import main
from closedloop.evals.runner import EvalCase, load_cases
from closedloop.evals.scorers import score_guards, score_no_writes, score_plan

PLAN = {"step": "plan", "action": "create_rule", "simulation_id": 3,
        "params": {"condition": {"field": "category", "op": "eq", "value": "password"}},
        "predicted": {"delta_pct": -8.0, "ci_high_pct": -4.0}, "blast_radius": {"share_of_cases": 0.16}}


def test_bundled_cases_parse():
    cases = load_cases()
    assert len(cases) >= 3 and all(isinstance(c, EvalCase) for c in cases)


def test_scorers_fail_on_wrong_decisions():
    state = {"steps": [PLAN]}
    expect = {"plan": "create_rule", "condition": {"field": "category", "value": "password"},
              "min_predicted_improvement_pct": 5, "max_blast_radius": 0.25}
    assert score_plan(state, [], expect).passed
    assert score_guards(state, [], expect).passed
    wrong = {"steps": [{**PLAN, "params": {"condition": {"field": "category", "value": "hardware"}}}]}
    assert not score_plan(wrong, [], expect).passed
    weak = {"steps": [{**PLAN, "predicted": {"delta_pct": -2.0, "ci_high_pct": 1.0}}]}
    assert not score_guards(weak, [], expect).passed
    assert not score_no_writes(state, [{"method": "POST", "path": "/rules"}], expect).passed


@pytest.mark.slow
def test_eval_suite_passes_in_shadow_mode(tmp_path, capsys):
    code = main(["--home", str(tmp_path), "eval"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "pass rate 100%" in out


def test_eval_suite_fails_below_threshold(tmp_path, capsys):
    case = tmp_path / "cases"
    case.mkdir()
    (case / "impossible.yaml").write_text(
        "name: impossible\nsandbox: {seed: 7, history_days: 21}\nexpect: {plan: set_queue_staffing}\n")
    assert main(["--home", str(tmp_path), "eval", "--cases", str(case)]) == 1
    assert "FAILED: action 'create_rule'" in capsys.readouterr().out
