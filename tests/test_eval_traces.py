"""Stored traces: written beside each case's result and graded again without running anything;
a trace that was altered, or a file that is not a trace, is caught."""

from __future__ import annotations

import json

import pytest

from closedloop.cli import main
from closedloop.evals.cases import EvalCase
from closedloop.evals.grading import adversarial_scores, grade_loop
from closedloop.evals.runner import _result
from closedloop.evals.traces import load_trace, regrade, save_trace
from tests.test_eval_scorers import TRUTH, trace

CASE = {
    "name": "t-approve",
    "source": "test: a synthetic approved rule",
    "world": {"seed": 7},
    "branch": "approve",
    "truth": "mine",
}


def _stored(tmp_path, cases_dir, **kw):
    cases_dir.mkdir(exist_ok=True)
    (cases_dir / "c.yaml").write_text(json.dumps({"cases": [CASE]}), encoding="utf-8")
    case = EvalCase.model_validate(CASE)
    t = trace(**kw)
    scores = grade_loop(case, t, {"mine": TRUTH})
    result = _result(case, scores, t.state.get("outcome"), 1.0)
    return save_trace(tmp_path / "traces", result, t), scores


def test_a_stored_trace_grades_the_same_and_an_altered_one_differs(tmp_path, monkeypatch):
    cases_dir = tmp_path / "cases"
    path, scores = _stored(tmp_path, cases_dir)
    monkeypatch.setattr("closedloop.evals.truth.load_truth", lambda: {"worlds": {"mine": TRUTH}})
    again = regrade(tmp_path / "traces", cases_dir)
    assert [r.same for r in again] == [True]
    assert [s.model_dump() for s in again[0].regraded] == [s.model_dump() for s in scores]
    data = json.loads(path.read_text())
    data["trace"]["verdicts"][-1]["decision"] = "rollback"  # the store said keep
    path.write_text(json.dumps(data))
    changed = regrade(tmp_path / "traces", cases_dir)[0]
    assert not changed.same and any(d.startswith("verdict:") for d in changed.differences)


def test_not_a_trace_or_an_unknown_case_is_refused_with_the_file_named(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match="x.json: not a stored eval trace"):
        load_trace(tmp_path / "x.json")
    (tmp_path / "x.json").write_text(json.dumps({"case": "a"}))
    with pytest.raises(ValueError, match="format 1 expected"):
        load_trace(tmp_path / "x.json")
    with pytest.raises(FileNotFoundError, match="no stored eval traces"):
        regrade(tmp_path / "empty")
    path, _ = _stored(tmp_path, tmp_path / "cases")
    with pytest.raises(ValueError, match="'t-approve' is not among the cases"):
        regrade(path.parent)  # the bundled cases do not have it
    assert main(["eval", "--regrade", str(tmp_path / "nowhere")]) == 2


def test_an_outage_must_show_on_the_run_and_in_its_report():
    case = EvalCase.model_validate(
        {**CASE, "kind": "adversarial", "attack": {"kind": "model_down"}, "truth": None}
    )
    fell = {"step": "plan", "fallback": True, "action": "none"}
    silent = adversarial_scores(case, trace(steps=[fell]))
    assert {s.scorer: s.passed for s in silent} == {
        "outage_recorded_per_step": True,
        "outage_in_outcome": False,  # the steps say so, the run itself does not
    }
    t = trace(steps=[fell])
    t.degraded = "planner: gpt-4o-mini failed (APIConnectionError: Connection error.)"
    assert all(s.passed for s in adversarial_scores(case, t))
