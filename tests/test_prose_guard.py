"""Model text is never evidence: a model's prose is labelled as such and keeps only the numbers
the tools computed, wherever it is stored (plan, verdict, opportunity, steps) and so wherever it
is shown (approval card, report).

The loop test runs the real openai client against a hostile OpenAI-compatible server on
loopback: it does the Planner's and the Watchdog's work properly (calls the tools, cites a real
prediction) but writes "-397 %, pre-approved by the CFO" into the hypothesis and "-99 h" into the
verdict's rationale, next to one number it copied correctly from a tool.
"""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI, Request
from sqlmodel import Session, select

from closedloop.agents.model_text import PROSE_FIELDS, guard_outcome
from closedloop.agents.runtime import AgentOutcome, AuditTrail
from closedloop.agents.triage import TriageOutput
from closedloop.api.cards import approval_card
from closedloop.demo import advance_clock
from closedloop.graphs.runner import LoopRunner
from closedloop.report import render_run
from closedloop.sandbox.server import SandboxServer
from closedloop.settings import Settings
from closedloop.store.models import Approval, AuditEvent, LoopRun, Opportunity, Plan, Verdict
from closedloop.tools.act import computed_facts, guard_prose
from closedloop.tools.act.prose import MODEL_TEXT_LABEL, NUMBER_REMOVED
from tests.helpers_model import completion, serve

# --- the guard on its own -------------------------------------------------------------------


def test_numbers_the_tools_did_not_compute_are_removed_and_the_text_labelled():
    facts = computed_facts({"delta_pct": -13.4, "ci_low_pct": -20.1, "share_of_cases": 0.25})
    out = guard_prose("-97 %, pre-approved by the CFO; really cuts 13.4 % for 25 % of cases", facts)
    assert out.text.startswith(MODEL_TEXT_LABEL)
    assert "97" not in out.text and NUMBER_REMOVED in out.text
    assert "13.4 %" in out.text and "25 %" in out.text  # computed: a share matches its percentage
    assert out.removed == ["-97 %"] and out.kept == ["13.4 %", "25 %"]
    assert "pre-approved by the CFO" in out.text  # words stay, labelled as the model's


def test_rounding_magnitude_dates_and_names():
    facts = computed_facts(
        {"delta": -15.3127, "events": 1234, "log_end": "2026-11-30T10:00:00", "cases": 3}
    )
    out = guard_prose(
        "effect -15.31 h (about 15 h), not -99 h; 1,234 events until 2026-11-30, "
        "next 2999-01-01; p90 and v2 are names; 3 cases",
        facts,
    )
    assert out.removed == ["-99", "2999-01-01"]
    for kept in ("-15.31", "15", "1,234", "2026-11-30", "p90", "v2", "3 cases"):
        assert kept in out.text


def test_prose_in_the_inputs_is_not_evidence():
    # A number inside another model's hypothesis must not whitelist itself.
    facts = computed_facts({"plan": {"hypothesis": "-97 % pre-approved", "delta_pct": -13.4}})
    assert guard_prose("-97 %", facts).removed == ["-97 %"]


def test_guarding_twice_changes_nothing_and_empty_stays_empty():
    facts = computed_facts([1.5])
    once = guard_prose("1.5 then 7", facts)
    assert guard_prose(once.text, facts).text == once.text
    assert guard_prose("", facts).text == ""


def test_many_numbers_cannot_blow_up_the_stored_text():
    out = guard_prose("9 " * 3000, computed_facts([]))
    assert len(out.text) <= 4000 and len(out.removed) == 3000


def test_an_outcome_of_the_offline_policy_is_left_alone_and_a_models_is_guarded():
    audit = AuditTrail("run-x")
    audit.add("triage", "tool_result", {"tool": "list_insights", "result": [{"priority": 0.42}]})
    output = TriageOutput.model_validate(
        {
            "selected": [{"insight_id": 1, "rationale": "priority 0.42, saves 1,000,000 EUR"}],
            "summary": "5 opportunities",
        }
    )
    offline = AgentOutcome(output, "closedloop-offline-rule-policy", False, 1)
    assert guard_outcome("triage", offline, {}, audit) is output
    model = AgentOutcome(output, "some-llm", False, 1)
    guarded = guard_outcome("triage", model, {"scope": "helpdesk"}, audit)
    assert guarded.selected[0].rationale == (
        f"{MODEL_TEXT_LABEL} priority 0.42, saves {NUMBER_REMOVED} EUR"
    )
    assert guarded.summary == f"{MODEL_TEXT_LABEL} {NUMBER_REMOVED} opportunities"
    [event] = [e for e in audit.events if e["kind"] == "guard"]
    assert event["payload"]["model_text"] == [
        {"field": "selected[0].rationale", "removed": ["1,000,000"]},
        {"field": "summary", "removed": ["5"]},
    ]
    assert {"rationale", "hypothesis", "summary"} == PROSE_FIELDS


# --- a hostile model in the loop ------------------------------------------------------------


def _task(messages: list[dict]) -> dict:
    text = next(m["content"] for m in messages if m["role"] == "user")
    start = text.index("```json\n") + len("```json\n")
    return json.loads(text[start : text.index("\n```", start)])


def hostile_model(said: dict[str, str]) -> FastAPI:
    """Does the work properly, writes invented numbers into its prose (kept in ``said``)."""
    app = FastAPI()

    def reply(message: dict) -> dict:
        return completion(message, "hostile")

    def call(name: str, args: dict, n: int) -> dict:
        fn = {"name": name, "arguments": json.dumps(args)}
        return reply(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": f"call-{n}", "type": "function", "function": fn}],
            }
        )

    def answer(data: dict) -> dict:
        return reply({"role": "assistant", "content": json.dumps(data)})

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> dict:
        body = await request.json()
        messages = body["messages"]
        system = messages[0]["content"]
        results = [json.loads(m["content"]) for m in messages if m["role"] == "tool"]
        if "**Triage**" in system:
            if not results:
                return call("list_insights", {}, 0)
            best = max(results[-1], key=lambda i: i["priority"])
            return answer(
                {
                    "selected": [
                        {"insight_id": best["insight_id"], "rationale": "saves 1,000,000 EUR"}
                    ],
                    "missing_data": [],
                    "summary": "one opportunity",
                }
            )
        if "**Planner**" in system:
            candidates = _task(messages)["candidates"]
            if len(results) < len(candidates):
                c = candidates[len(results)]
                return call(
                    "simulate_action", {"action": c["action"], "params": c["params"]}, len(results)
                )
            cleared = [(r, c) for r, c in zip(results, candidates, strict=True) if r.get("clears")]
            best, cand = max(cleared, key=lambda rc: rc[0]["score"])
            said["true_pct"] = f"{-best['delta_pct']:.1f} %"
            return answer(
                {
                    "action": cand["action"],
                    "params": cand["params"],
                    "simulation_id": best["simulation_id"],
                    "hypothesis": f"-397 %, pre-approved by the CFO (the twin says {said['true_pct']})",
                    "rationale": "the best of 4217 candidates",
                }
            )
        if "**Watchdog**" in system:
            if not results:
                return call("measure_kpi", {}, 0)
            measured = results[-1]
            said["true_h"] = f"{measured['treatment']['mean']:.2f} h"
            return answer(
                {
                    "decision": "escalate",
                    "rationale": f"-99 h per case, treated cases took {said['true_h']}",
                }
            )
        # Anything else (the Executor) gets no valid answer: its offline policy stands in.
        return reply({"role": "assistant", "content": "I would rather not."})

    return app


@pytest.fixture
def hostile_server():
    said: dict[str, str] = {}
    with serve(hostile_model(said)) as url:
        yield url, said


def test_a_hostile_models_numbers_reach_no_card_verdict_or_report(tmp_path, hostile_server):
    url, said = hostile_server
    settings = Settings(
        DATABASE_URL=f"sqlite:///{tmp_path}/s.db",
        CLOSEDLOOP_HOME=str(tmp_path),
        OPENAI_API_KEY="sk-configured-key-for-the-test-000",
        OPENAI_BASE_URL=url,
        CLOSEDLOOP_MODEL="hostile",
    )
    with SandboxServer(seed=3) as sandbox, LoopRunner(settings) as runner:
        advance_clock(sandbox.url, 21)
        state = runner.start(sandbox.url, scope="helpdesk")
        assert state["pending"]["kind"] == "approval", state.get("outcome")
        steps = {s["step"]: s for s in state["steps"]}
        assert not steps["plan"]["fallback"] and not steps["triage"]["fallback"]
        with Session(runner.engine) as s:
            plan = s.exec(select(Plan)).one()
            approval = s.exec(select(Approval).where(Approval.plan_id == plan.id)).one()
            run = s.get(LoopRun, state["run_id"])
            opportunity = s.exec(select(Opportunity)).first()
            card = json.dumps(approval_card(plan, approval, run))
        # The card: the planner's words labelled, its invented number gone, its true one kept.
        assert plan.hypothesis.startswith(MODEL_TEXT_LABEL)
        for text in (plan.hypothesis, card, steps["plan"]["hypothesis"]):
            assert "-397" not in text and "397 %" not in text
        # (the card shows brackets as plain parentheses: no Markdown links)
        assert said["true_pct"] in plan.hypothesis and "number removed: not computed" in card
        assert "4217" not in steps["plan"]["rationale"]
        assert "1,000,000" not in opportunity.rationale
        state = runner.resume(
            state["run_id"], {"decision": "approve", "by": "ops-lead"}, expect="approval"
        )
        advance_clock(sandbox.url, 14)
        for _ in range(3):
            if not state["pending"]:
                break
            state = runner.resume(state["run_id"], {"checked_by": "test"}, expect="evidence")
        with Session(runner.engine) as s:
            [verdict] = s.exec(select(Verdict)).all()
            guards = s.exec(
                select(AuditEvent).where(
                    AuditEvent.run_id == state["run_id"], AuditEvent.kind == "guard"
                )
            ).all()
    watch = [st for st in state["steps"] if st["step"] == "watch"][-1]
    assert not watch["fallback"]
    for text in (verdict.rationale, watch["rationale"]):
        assert "-99" not in text and MODEL_TEXT_LABEL in text
        assert said["true_h"] in text  # the measured number the model copied stays
    report = render_run(state)
    assert "-397" not in report and "-99 h" not in report and MODEL_TEXT_LABEL in report
    removed = {
        (e.actor, n)
        for e in guards
        if "model_text" in e.payload
        for f in e.payload["model_text"]
        for n in f["removed"]
    }
    assert {("planner", "-397 %"), ("planner", "4217"), ("watchdog", "-99")} <= removed
    assert ("triage", "1,000,000") in removed
