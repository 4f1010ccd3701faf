"""The eval suite as CI runs it: >= 60 cases as data, the quick tier green with 0 safety
violations and the baseline beside it, every built-in mutant killed, runs repeatable."""

from __future__ import annotations

import json

import pytest

from closedloop.cli import main
from closedloop.evals.cases import load_cases
from closedloop.evals.mutants import MUTANTS
from closedloop.evals.mutation import run_mutants, thresholds
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
    assert {c.truth for c in cases if c.truth} - {"connector"} <= set(truth["worlds"])
    # o2c worlds get their truth through the connector while grading (closedloop.evals.o2c_truth)
    assert {c.world.domain for c in cases if c.truth == "connector"} == {"o2c"}
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
        "nothing-helps",
    }
    assert len(MUTANTS) >= 17


# A hang guard, not a time limit: the whole suite takes about 9 minutes on 2 idle cores.
@pytest.mark.timeout(3600)
@pytest.mark.slow
def test_full_offline_suite_passes_and_regrading_its_traces_reproduces_every_verdict(
    tmp_path, capsys
):
    # The whole offline suite (every case, >= 60), its thresholds, 0 safety violations and the
    # do-nothing baseline beside it; each case's trace is stored and graded again from it.
    traces, report = tmp_path / "traces", tmp_path / "report"
    code = main(
        ["--home", str(tmp_path), "eval", "--full", "--report", str(report)]
        + ["--traces", str(traces), "--json"]
    )
    data = json.loads(capsys.readouterr().out)
    limits = thresholds()
    assert code == 0, [
        (c["case"], [s for s in c["scores"] if not s["passed"]])
        for c in data["cases"]
        if not c["as_expected"]
    ]
    ran = [c for c in data["cases"] if not c["skipped"]]
    assert len(data["cases"]) >= 60 and len(ran) >= 60
    assert data["safety_violations"] == 0 <= int(limits["max_safety_violations"])
    assert data["pass_rate"] >= float(limits["pass_rate"])
    assert {c["kind"] for c in ran} >= {"loop", "adversarial"}
    assert data["baseline"]["agent"].startswith("planner_nothing")
    assert data["baseline"]["summary"]["right_action"]["n"] > 0
    # The same case on other world seeds behaves the same (pass^k over seeds = pass^1).
    seeds = data["summary"]["over_seeds"]
    assert seeds["k"] >= 2 and seeds["pass_k"] == seeds["pass_1"] and seeds["flip_rate"] == 0.0
    # Metered model calls reach the report: every loop case has steps, no model was configured.
    usage = data["summary"]["usage"]
    assert usage["steps"] > 0 and usage["model_calls"] > 0  # the adversarial model servers
    md = (report / "eval.md").read_text()
    assert "do-nothing baseline" in md and "Cohen's kappa" in md
    # Re-grading the stored traces reproduces every score.
    assert main(["eval", "--regrade", str(traces), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)["regraded"]
    # Every case that ran has a trace (skipped ones, e.g. without ../shared/data, have none).
    assert len(again) == len(ran) and all(r["same"] for r in again)
    # A trace that says something else is caught: the approved change was not kept but undone.
    path = next(
        p
        for p in sorted(traces.glob("hd-*approve.json"))
        if json.loads(p.read_text())["trace"]["verdicts"]
    )
    stored = json.loads(path.read_text())
    verdict = stored["trace"]["verdicts"][-1]
    verdict["decision"] = "keep" if verdict["decision"] != "keep" else "rollback"
    path.write_text(json.dumps(stored))
    assert main(["eval", "--regrade", str(traces), "--json"]) == 1
    differs = [r for r in json.loads(capsys.readouterr().out)["regraded"] if not r["same"]]
    assert [r["case"] for r in differs] == [stored["case"]]


# Mutants only the people cases can catch: those cases read BPI 2012 from ../shared/data and are
# skipped where it is absent (a user's clone), so there these mutants cannot be caught.
PEOPLE_ONLY = {"rules_inverted"}


@pytest.mark.timeout(3600)
@pytest.mark.slow
def test_every_built_in_mutant_is_killed(tmp_path):
    report = run_mutants(Settings(CLOSEDLOOP_HOME=str(tmp_path)), tier="quick")
    survivors = {m.mutant for m in report.mutants if not m.killed}
    if not (data_dir() / "logs" / "bpic2012.xes.gz").exists():
        survivors -= PEOPLE_ONLY
    assert survivors == set(), survivors
    assert len(report.mutants) == len(MUTANTS)
    assert all(m.by for m in report.mutants if m.killed)  # each names the case that caught it


@pytest.mark.timeout(1800)
@pytest.mark.slow
def test_pass5_equals_pass1_offline_and_every_run_scores_the_same(tmp_path):
    # Five runs, each planned afresh (new twins, new predictions, new worlds on loopback): the
    # offline loop is deterministic, so every run passes or fails alike and even every score's
    # numbers agree. A world the loop changes (approve: executed, measured, judged) and one it
    # must not touch (reject).
    report = run_suite(
        Settings(CLOSEDLOOP_HOME=str(tmp_path)),
        tier="quick",
        baseline=False,
        names=["hd-default-7-approve", "hd-default-7-reject"],
        repeat=5,
        traces=tmp_path / "traces",
    )
    rep = report.summary["repeatability"]
    assert rep["k"] == 5 and rep["cases"] == 2
    assert rep["pass_k"] == rep["pass_1"] and rep["flip_rate"] == 0.0
    assert rep["identical_scores"] == 1.0
    assert sorted(p.name for p in (tmp_path / "traces").iterdir()) == [
        f"run{i}" for i in range(1, 6)
    ]
