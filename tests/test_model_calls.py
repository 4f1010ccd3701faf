"""Every model turn is metered in the store (tokens, estimated cost, latency), and a run whose
model failed says so in the run itself: the real openai client against the scripted
OpenAI-compatible server on loopback of tests/test_llm_path.py."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from closedloop.agents.model_calls import estimate_cost, loop_usage, price
from closedloop.demo import advance_clock
from closedloop.graphs.runner import LoopRunner
from closedloop.report import render_run
from closedloop.sandbox.server import SandboxServer
from closedloop.settings import Settings
from closedloop.store.models import LoopRun, ModelCall
from tests.test_llm_path import SECRET, model_server  # noqa: F401 - the fixture


@pytest.mark.slow
def test_every_model_call_is_metered_and_an_outage_marks_the_run_degraded(
    tmp_path,
    model_server,  # noqa: F811
    monkeypatch,
):
    monkeypatch.setenv("CLOSEDLOOP_PRICE_PROMPT_PER_MTOK", "2")
    monkeypatch.setenv("CLOSEDLOOP_PRICE_COMPLETION_PER_MTOK", "8")
    base_url, seen = model_server
    settings = Settings(
        DATABASE_URL=f"sqlite:///{tmp_path}/s.db",
        CLOSEDLOOP_HOME=str(tmp_path),
        OPENAI_API_KEY=SECRET,
        OPENAI_BASE_URL=base_url,
        CLOSEDLOOP_MODEL="scripted-model",
    )
    with SandboxServer(seed=3) as sandbox, LoopRunner(settings) as runner:
        advance_clock(sandbox.url, 21)
        state = runner.start(sandbox.url, scope="helpdesk")
        with Session(runner.engine) as s:
            calls = s.exec(select(ModelCall).where(ModelCall.run_id == state["run_id"])).all()
            usage = loop_usage(s, state["run_id"])
            run = s.get(LoopRun, state["run_id"])
    remote = [c for c in calls if not c.offline]
    # One row per request the model server answered, with the tokens it reported.
    assert len(remote) == len(seen) == usage["model_calls"] > 0
    assert all(c.model == "scripted-model" and c.ok for c in remote)
    assert all(c.prompt_tokens == 1 and c.completion_tokens == 1 for c in remote)
    assert all(c.latency_ms > 0 for c in calls)
    assert usage["prompt_tokens"] == usage["completion_tokens"] == len(seen)
    assert usage["cost_usd"] == pytest.approx(len(seen) * (2 + 8) / 1e6)
    # Triage answered validly; the planner's invalid answers were replaced by the offline policy.
    assert {c.agent for c in remote} >= {"triage", "planner"}
    assert not any(c.fallback for c in calls if c.agent == "triage")
    fallback = [c for c in calls if c.fallback]
    assert fallback and all(c.offline and c.agent == "planner" for c in fallback)
    assert usage["fallback_steps"] == len(fallback)
    assert usage["steps"] == len(calls)
    assert usage["by_agent"]["planner"]["fallback"] and not usage["by_agent"]["triage"]["fallback"]
    # The run itself says it is degraded: which step fell back and why.
    assert run.degraded and run.degraded.startswith("planner: scripted-model failed")
    assert "triage" not in run.degraded
    text = render_run(state, run.degraded)
    assert "DEGRADED" in text and "plan" in text.split("DEGRADED", 1)[1].splitlines()[0]


@pytest.mark.slow
def test_an_offline_run_is_metered_and_not_degraded(tmp_path):
    settings = Settings(DATABASE_URL=f"sqlite:///{tmp_path}/s.db", CLOSEDLOOP_HOME=str(tmp_path))
    with SandboxServer(seed=3) as sandbox, LoopRunner(settings) as runner:
        advance_clock(sandbox.url, 21)
        state = runner.start(sandbox.url, scope="helpdesk")
        with Session(runner.engine) as s:
            usage = loop_usage(s, state["run_id"])
            run = s.get(LoopRun, state["run_id"])
    assert run.degraded is None and "DEGRADED" not in render_run(state)
    assert usage["steps"] > 0 and usage["model_calls"] == 0
    assert usage["cost_usd"] == 0.0 and usage["prompt_tokens"] == 0
    assert set(usage["by_agent"]) >= {"triage", "planner"}


def test_cost_estimates_use_the_price_table_or_the_environment_and_never_guess(monkeypatch):
    monkeypatch.delenv("CLOSEDLOOP_PRICE_PROMPT_PER_MTOK", raising=False)
    monkeypatch.delenv("CLOSEDLOOP_PRICE_COMPLETION_PER_MTOK", raising=False)
    assert price("gpt-4o-mini-2024-07-18") == (0.15, 0.60)  # longest prefix, not gpt-4o
    assert estimate_cost("gpt-4o", False, 1000, 100) == pytest.approx(0.0035)
    assert estimate_cost("my-local-llama", False, 1000, 100) is None
    assert estimate_cost("my-local-llama", True, 1000, 100) == 0.0
    monkeypatch.setenv("CLOSEDLOOP_PRICE_PROMPT_PER_MTOK", "lots")
    with pytest.raises(ValueError, match="CLOSEDLOOP_PRICE_PROMPT_PER_MTOK"):
        price("gpt-4o")
