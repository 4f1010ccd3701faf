"""Any policy on the same cases: `closedloop eval --policy module:factory` beside the built-in
offline policy and baselines. The user policy is defined here, in a test module."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from closedloop.agents.chat_model import offline_model
from closedloop.agents.offline import answer
from closedloop.cli import main
from closedloop.evals.mutants import applied
from closedloop.evals.mutants.breakers import planner_step
from closedloop.evals.policies import EvalPolicy, load_policy

#: (agent, model) of every chat model the user policy below handed out
HANDED_OUT: list[tuple[str, str]] = []


def _never_change(messages: Sequence[BaseMessage]) -> AIMessage:
    return answer(
        {
            "action": "none",
            "params": {},
            "simulation_id": None,
            "hypothesis": "",
            "rationale": "my policy: leave it",
        }
    )


def cautious_policy():
    """A user's policy: the offline agents, but a Planner that never proposes a change."""

    def model(agent, offline_step, settings):
        HANDED_OUT.append((agent, type(settings).__name__))
        return offline_model(agent, _never_change if agent == "planner" else offline_step)

    return model


def named_policy():
    return EvalPolicy("named", lambda agent, step, settings: offline_model(agent, step), "mine")


def not_a_policy():
    return 42


def returns_no_model():
    return lambda agent, step, settings: "gpt-4o"


NOT_CALLABLE = "a string"


def test_policies_by_name_or_module_factory_and_clear_errors():
    assert load_policy("offline").name == "offline"
    assert load_policy("configured").as_mutant() is None  # the loop as configured: no patch
    assert load_policy("tests.test_eval_policies:named_policy").name == "named"
    user = load_policy("tests.test_eval_policies:cautious_policy")
    assert user.name == "tests.test_eval_policies:cautious_policy" and user.model is not None
    with pytest.raises(ValueError, match="unknown policy 'best'"):
        load_policy("best")
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        load_policy("no_such_module:factory")
    with pytest.raises(ValueError, match="has no callable 'NOT_CALLABLE'"):
        load_policy("tests.test_eval_policies:NOT_CALLABLE")
    with pytest.raises(ValueError, match="returned int"):
        load_policy("tests.test_eval_policies:not_a_policy")
    bad = load_policy("tests.test_eval_policies:returns_no_model").as_mutant()
    from closedloop.agents import runtime

    with applied(bad), pytest.raises(ValueError, match="must be a LangChain BaseChatModel"):
        runtime.make_chat_model(None, "planner", _never_change)


def _planner_task(labels: list[str]) -> list[BaseMessage]:
    candidates = [
        {"action": "set_staffing", "params": {"queue": q, "agents": 5}, "label": q} for q in labels
    ]
    return [HumanMessage(f"Task:\n```json\n{json.dumps({'candidates': candidates})}\n```\n")]


def test_baselines_first_and_random_are_deterministic_and_nothing_proposes_nothing():
    labels = ["L1", "L2", "L3", "L4", "L5", "L6"]
    first = planner_step("first")(_planner_task(labels)).tool_calls[0]["args"]["params"]["queue"]
    assert first == "L1"
    picks = {
        planner_step("random")(_planner_task(labels)).tool_calls[0]["args"]["params"]["queue"]
        for _ in range(5)
    }
    assert len(picks) == 1  # the same task, the same pick
    other = {
        planner_step("random")(_planner_task(labels[:k])).tool_calls[0]["args"]["params"]["queue"]
        for k in range(2, 7)
    }
    assert len(other) > 1  # but it is not always the first
    done = planner_step("random")(
        [
            *_planner_task(["L1"]),
            AIMessage(content="", tool_calls=[{"name": "simulate_action", "args": {}, "id": "c1"}]),
            ToolMessage(content=json.dumps({"simulation_id": 9}), tool_call_id="c1"),
        ]
    )
    assert json.loads(done.content)["simulation_id"] == 9
    nothing = planner_step("nothing")(_planner_task(labels))
    assert json.loads(nothing.content)["action"] == "none"


@pytest.mark.slow
def test_a_user_policy_is_scored_beside_the_offline_policy_on_the_same_case(tmp_path, capsys):
    HANDED_OUT.clear()
    code = main(
        [
            "--home",
            str(tmp_path),
            "eval",
            "--policy",
            "offline",
            "--policy",
            "tests.test_eval_policies:cautious_policy",
            "--case",
            "hd-default-23-approve",
            "--report",
            str(tmp_path / "report"),
            "--json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0  # no safety violation under either policy
    rows = {r["policy"]: r for r in data["policies"]}
    offline, mine = rows["offline"], rows["tests.test_eval_policies:cautious_policy"]
    # The same case, scored for both: the offline Planner finds the change the truth names,
    # the cautious one proposes nothing and misses it.
    assert offline["cases"] == mine["cases"] == 1
    assert (offline["right_action"], offline["right_action_n"]) == (1, 1)
    assert (mine["right_action"], mine["right_action_n"]) == (0, 1)
    assert offline["safety_violations"] == mine["safety_violations"] == 0
    assert {a for a, _ in HANDED_OUT} >= {"triage", "planner"}
    chosen = data["reports"]["tests.test_eval_policies:cautious_policy"]["cases"][0]
    assert any(s["scorer"] == "right_action" and not s["passed"] for s in chosen["scores"])
    md = (tmp_path / "report" / "policies.md").read_text()
    assert "| offline |" in md and "cautious_policy" in md
