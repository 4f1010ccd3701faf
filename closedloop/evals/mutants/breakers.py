"""The broken replacements the mutants patch in (each a factory: original -> replacement)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from closedloop.agents.offline import answer, call_tool, first_human_json, tool_results
from closedloop.governance import GateDecision

Factory = Callable[[Any], Any]


class _Everything(frozenset):
    """A set that contains every plan status."""

    def __contains__(self, item: object) -> bool:
        return True


EVERYTHING = _Everything()


def triage_spec(how: str) -> Factory:
    """Triage that selects nothing, the lowest priorities first, or at random."""

    def step(messages: Sequence[BaseMessage]) -> AIMessage:
        results = tool_results(messages)
        if "list_insights" not in results:
            return call_tool("list_insights", {}, messages)
        insights = list(results["list_insights"][-1])
        if how == "reversed":
            insights.sort(key=lambda i: (i.get("priority", 0), i["insight_id"]))
        elif how == "random":
            random.Random(13).shuffle(insights)
        chosen = [] if how == "nothing" else insights[:3]
        return answer(
            {
                "selected": [{"insight_id": i["insight_id"], "rationale": how} for i in chosen],
                "missing_data": [],
                "summary": f"mutant triage ({how})",
            }
        )

    return lambda spec: dataclasses.replace(spec, offline_step=step)


def no_plan(orig: Callable[..., Any]) -> Callable[..., Any]:
    """A Planner that never plans (and so never predicts): the do-nothing agent."""
    return lambda *a, **k: {"plan_id": None, "outcome": "no_plan", "steps": []}


def planner_spec(how: str) -> Factory:
    """A Planner that proposes nothing, or the first candidate after predicting only it."""
    step = planner_step(how)
    return lambda spec: dataclasses.replace(spec, offline_step=step)


def planner_step(how: str) -> Callable[[Sequence[BaseMessage]], AIMessage]:
    """The planner model of a baseline: propose nothing, the first candidate or a random one
    (seeded by the candidates, so the same task gets the same pick), predicting only it."""

    def step(messages: Sequence[BaseMessage]) -> AIMessage:
        task = first_human_json(messages)
        candidates = task.get("candidates", [])
        if how == "nothing" or not candidates:
            return answer(
                {
                    "action": "none",
                    "params": {},
                    "simulation_id": None,
                    "hypothesis": "",
                    "rationale": "mutant: do nothing",
                }
            )
        sims = tool_results(messages).get("simulate_action", [])
        first = candidates[0]
        if how == "random":
            labels = "|".join(sorted(str(c.get("label", c["action"])) for c in candidates))
            first = random.Random(labels).choice(candidates)
        if not sims:
            return call_tool(
                "simulate_action", {"action": first["action"], "params": first["params"]}, messages
            )
        return answer(
            {
                "action": first["action"],
                "params": first["params"],
                "simulation_id": sims[0].get("simulation_id"),
                "hypothesis": f"{how} candidate",
                "rationale": f"baseline: {how} candidate",
            }
        )

    return step


def watchdog_spec(decision: str) -> Factory:
    """A Watchdog model that measures, then always answers ``decision``."""

    def step(messages: Sequence[BaseMessage]) -> AIMessage:
        if "measure_kpi" not in tool_results(messages):
            return call_tool("measure_kpi", {}, messages)
        return answer({"decision": decision, "rationale": f"mutant: always {decision}"})

    return lambda spec: dataclasses.replace(spec, offline_step=step)


def inflated(factor: float) -> Factory:
    """Predictions whose effect and interval are ``factor`` times larger."""
    scaled = (
        "delta_hours",
        "delta_per_treated_case_hours",
        "ci_low_hours",
        "ci_high_hours",
        "delta_pct",
        "ci_low_pct",
        "ci_high_pct",
        "ci_low_per_treated_case_hours",
        "ci_high_per_treated_case_hours",
        "p10_pct",
        "p50_pct",
        "p90_pct",
        "p10_hours",
        "p50_hours",
        "p90_hours",
    )

    def factory(orig: Callable[..., Any]) -> Callable[..., Any]:
        def contract(*args: Any, **kwargs: Any) -> Any:
            pred = orig(*args, **kwargs)
            data = pred.model_dump()
            return pred.model_copy(
                update={k: data[k] * factor for k in scaled if data.get(k) is not None}
            )

        return contract

    return factory


def reversed_decision(orig: Callable[..., str]) -> Callable[..., str]:
    """Keep where the evidence says roll back, and the other way round."""
    swap = {"keep": "rollback", "rollback": "keep"}
    return lambda m: swap.get(orig(m), orig(m))


def no_guardrail(orig: Callable[..., str]) -> Callable[..., str]:
    """Decide on cycle time alone, whatever the guardrails say."""

    def decide(m: Any) -> str:
        if not m.enough_cases:
            return "wait"
        if m.ci_high is not None and m.ci_high < 0:
            return "keep"
        if m.ci_low is not None and m.ci_low > 0:
            return "rollback"
        return "escalate"

    return decide


def always_route(route: str) -> Factory:
    """A gate that sends every plan the same way."""
    return lambda orig: (
        lambda *a, **k: GateDecision(route=route, plan_status="approved", within_caps=True)
    )


def shadow_as_assisted(orig: Callable[..., Any]) -> Callable[..., Any]:
    """A gate that treats shadow mode as assisted."""
    return lambda mode, *a, **k: orig("assisted" if mode == "shadow" else mode, *a, **k)


def self_promote(orig: Callable[..., Any]) -> Callable[..., Any]:
    """Learn that promotes a scope to supervised on every kept change, asking nobody."""

    def apply(session: Any, scope: str, verdict: str, *args: Any, **kwargs: Any) -> Any:
        if verdict != "keep":
            return orig(session, scope, verdict, *args, **kwargs)
        from closedloop.governance import policy_for

        policy = policy_for(session, scope)
        before, policy.mode = policy.mode, "supervised"
        session.add(policy)
        return {"from": before, "to": "supervised"}

    return apply


def inverted_rules(orig: Callable[..., Any]) -> Callable[..., Any]:
    """A rule learner whose rules predict the other label."""

    def generate(*args: Any, **kwargs: Any) -> Any:
        rules = orig(*args, **kwargs)
        labels = sorted(rules.labels)
        flip = {a: b for a, b in zip(labels, reversed(labels))}
        return rules.model_copy(
            update={
                "rules": [
                    r.model_copy(update={"predicts": flip.get(r.predicts, r.predicts)})
                    for r in rules.rules
                ]
            }
        )

    return generate
