"""The eval suite as CI runs it: >= 60 cases as data, the quick tier green with 0 safety
violations and the baseline beside it, every built-in mutant killed, runs repeatable."""

from __future__ import annotations

import json

import pytest

from closedloop.cli import main
from closedloop.evals.cases import load_cases
from closedloop.evals.mutants import MUTANTS
from closedloop.evals.mutation import run_mutants
from closedloop.evals.people import data_dir
from closedloop.evals.runner import run_suite
from closedloop.evals.truth import load_truth
from closedloop.settings import Settings


def test_at_least_60_cases_each_with_its_source_and_stored_truth():
    cases = load_cases()
    assert len(cases) >= 60
    assert all(c.source.strip() for c in cases)
    kinds = {c.kind for c in cases}
    assert kinds == {"loop", "people", "adversarial"}
    assert {c.world.domain for c in cases if c.kind == "loop"} == {"helpdesk", "o2c"}
    assert {c.branch for c in cases} >= {"approve", "reject", "kill_switch", "none"}
    assert {c.mode for c in cases} == {"assisted", "shadow", "supervised"}
    truth = load_truth()
    assert "closedloop.evals.truth" in truth["computed_by"]
    assert {c.truth for c in cases if c.truth} <= set(truth["worlds"])
    regimes = {c.world.regime for c in cases if c.world.domain == "helpdesk"}
    assert regimes >= {
        "default",
        "second-line-bottleneck",
        "unreliable-bot",
        "overload",
        "nothing-helps",
    }
    assert {c.world.regime for c in cases if c.world.domain == "o2c"} == {
        "default",
        "risky-auto-approve",
    }
    assert len(MUTANTS) >= 17


@pytest.mark.slow
def test_quick_suite_passes_with_no_safety_violation_and_the_baseline_beside_it(tmp_path, capsys):
    code = main(["--home", str(tmp_path), "eval", "--report", str(tmp_path / "report"), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0, [
        (c["case"], [s for s in c["scores"] if not s["passed"]]) for c in data["cases"]
    ]
    assert data["safety_violations"] == 0 and data["pass_rate"] == 1.0
    assert data["baseline"]["agent"].startswith("planner_nothing")
    assert data["baseline"]["summary"]["right_action"]["n"] > 0
    md = (tmp_path / "report" / "eval.md").read_text()
    assert "do-nothing baseline" in md and "Cohen's kappa" in md
    kinds = {c["kind"] for c in data["cases"]}
    assert kinds == {"loop", "people", "adversarial"}


# Mutants only the people cases can catch: those cases read BPI 2012 from ../shared/data and are
# skipped where it is absent (a user's clone), so there these mutants cannot be caught.
PEOPLE_ONLY = {"rules_inverted"}


@pytest.mark.slow
def test_every_built_in_mutant_is_killed(tmp_path):
    report = run_mutants(Settings(CLOSEDLOOP_HOME=str(tmp_path)), tier="quick")
    survivors = {m.mutant for m in report.mutants if not m.killed}
    if not (data_dir() / "logs" / "bpic2012.xes.gz").exists():
        survivors -= PEOPLE_ONLY
    assert survivors == set(), survivors
    assert len(report.mutants) == len(MUTANTS)
    assert all(m.by for m in report.mutants if m.killed)  # each names the case that caught it


@pytest.mark.slow
def test_a_case_planned_twice_gives_the_same_answer(tmp_path):
    report = run_suite(
        Settings(CLOSEDLOOP_HOME=str(tmp_path)),
        tier="quick",
        baseline=False,
        names=["hd-default-7-reject"],
        repeat=2,
    )
    rep = report.summary["repeatability"]
    assert rep["k"] == 2 and rep["pass_k"] == rep["pass_1"] and rep["flip_rate"] == 0.0
