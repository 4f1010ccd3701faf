"""End to end on the sandbox: a canary earns what a bot was assumed to do, and the next plan uses it."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from closedloop.demo import advance_clock
from closedloop.graphs.runner import LoopRunner
from closedloop.sandbox.params import params_for
from closedloop.sandbox.server import SandboxServer
from closedloop.settings import Settings
from closedloop.store.models import KpiSnapshot, Plan, Verdict

REGIME = "second-line-bottleneck"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(DATABASE_URL=f"sqlite:///{tmp_path}/store.db", CLOSEDLOOP_HOME=str(tmp_path))


def _run(runner: LoopRunner, url: str) -> dict:
    state = runner.start(url, scope="helpdesk")
    if state["pending"] and state["pending"]["kind"] == "approval":
        state = runner.resume(state["run_id"], {"decision": "approve", "by": "tester"}, expect="approval")
        advance_clock(url, 14)
        state = runner.resume(state["run_id"], {}, expect="evidence")
    return state


def _considered(state: dict) -> list[dict]:
    return [w for st in state["steps"] if st["step"] == "plan" for w in st.get("considered", [])]


def test_a_canary_measures_the_bot_and_the_next_plan_predicts_with_it(settings):
    # Second line is the bottleneck: no change clears the p90 bar, since the bot's failure rate
    # is a declared 0-50 % prior. Auto-resolving half the password tickets is chosen as a canary
    # (its median clears the bar); the Watchdog measures the bot; the next plan of that rule
    # predicts with the measured rate instead of the prior, and is no canary any more.
    with SandboxServer(seed=1, regime=REGIME) as sandbox, LoopRunner(settings) as runner:
        advance_clock(sandbox.url, 21)
        first = _run(runner, sandbox.url)
        with Session(runner.engine) as s:
            plan = s.exec(select(Plan)).one()
            verdict = s.exec(select(Verdict)).one()
            failures = s.exec(select(KpiSnapshot).where(
                KpiSnapshot.kpi == "automation_failure_rate")).all()[-1]
        chosen = [w for w in _considered(first) if w["verdict"] == "chosen"]
        assert plan.actions[0]["action"] == "create_rule" and len(chosen) == 1
        assert "a canary, since the bot's failure rate" in chosen[0]["reason"]
        assert "as a canary" in plan.hypothesis
        assert verdict.decision in ("keep", "escalate", "rollback")
        # The sandbox's hidden failure rate (truth, read by this test only) is inside the canary's.
        assert failures.ci_low <= params_for(REGIME).auto_resolve_failure["password"] <= failures.ci_high
        second = _run(runner, sandbox.url)
    rules = [w for w in _considered(second) if w["action"] == "create_rule"
             and "password" in str(w["params"]) and w.get("predicted")]
    assert rules, _considered(second)
    measured = rules[0]
    assert any(f"measured by the canary of plan #{plan.id}" in e for e in measured["evidence"])
    assert "a canary" not in measured["reason"]  # measured once: judged on its p90 from now on
