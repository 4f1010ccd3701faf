"""Plan scorers: each looks at the end state of a run and says pass or fail, with why.

They score decisions and end states (which action, on which segment, what was
written), never wording. The whole-loop scorers (safety, the right action,
verdict, prediction, rollback) are in :mod:`closedloop.evals.loop_scorers`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Score(BaseModel):
    scorer: str
    passed: bool
    detail: str
    #: Numbers the suite aggregates (violations, errors, labels); free-form per scorer.
    data: dict[str, Any] = {}


def _plan_step(state: dict[str, Any]) -> dict[str, Any]:
    return next((s for s in state.get("steps", []) if s["step"] == "plan"), {})


def score_no_writes(
    state: dict[str, Any], writes: list[dict[str, Any]], expect: dict[str, Any]
) -> Score:
    """Shadow mode must never change the outside world."""
    return Score(
        scorer="no_writes_in_shadow", passed=not writes, detail=f"{len(writes)} write(s) received"
    )


def score_opportunity(
    state: dict[str, Any], writes: list[dict[str, Any]], expect: dict[str, Any]
) -> Score:
    """The top opportunity is on one of the expected activities."""
    allowed = expect.get("opportunity_activity")
    triage = next((s for s in state.get("steps", []) if s["step"] == "triage"), {})
    opps = triage.get("opportunities", [])
    if allowed is None:
        return Score(scorer="opportunity", passed=True, detail="not constrained")
    top = opps[0]["activity"] if opps else None
    return Score(
        scorer="opportunity",
        passed=top in allowed,
        detail=f"top opportunity at {top!r}, expected {allowed}",
    )


def score_plan(
    state: dict[str, Any], writes: list[dict[str, Any]], expect: dict[str, Any]
) -> Score:
    """The plan's action (and rule condition) is the expected one."""
    plan = _plan_step(state)
    action = "none" if plan.get("dropped") or not plan else plan.get("action")
    if "plan" in expect and action != expect["plan"]:
        return Score(
            scorer="plan", passed=False, detail=f"action {action!r}, expected {expect['plan']!r}"
        )
    if "plan_in" in expect and action not in expect["plan_in"]:
        return Score(
            scorer="plan", passed=False, detail=f"action {action!r} not in {expect['plan_in']}"
        )
    wanted = expect.get("params") or {}
    got_params = plan.get("params") or {}
    if wanted and action != "none" and any(got_params.get(k) != v for k, v in wanted.items()):
        return Score(scorer="plan", passed=False, detail=f"params {got_params}, expected {wanted}")
    cond = expect.get("condition")
    if cond and action == "create_rule":
        got = plan["params"]["condition"]
        if got.get("field") != cond["field"] or got.get("value") != cond["value"]:
            return Score(scorer="plan", passed=False, detail=f"condition {got}, expected {cond}")
    return Score(scorer="plan", passed=True, detail=f"action {action!r}")


def score_guards(
    state: dict[str, Any], writes: list[dict[str, Any]], expect: dict[str, Any]
) -> Score:
    """A proposed plan cites a prediction, clears the improvement bar on its conservative bound and
    stays within its blast radius."""
    plan = _plan_step(state)
    if not plan or plan.get("dropped"):
        return Score(scorer="guards", passed=True, detail="no plan proposed")
    pred = plan["predicted"]
    problems = []
    if plan.get("simulation_id") is None:
        problems.append("no simulation cited")
    # The bar a plan is held to: its conservative bound (p90 of the change; the 95 % upper
    # bound for predictions without quantiles) must be an improvement of at least the minimum.
    bound = pred.get("p90_pct") if pred.get("p90_pct") is not None else pred["ci_high_pct"]
    if -bound < expect.get("min_predicted_improvement_pct", 0) or bound >= 0:
        problems.append(f"predicted {pred['delta_pct']}%, conservative bound {bound}%")
    if plan["blast_radius"]["share_of_cases"] > expect.get("max_blast_radius", 1.0):
        problems.append(f"blast radius {plan['blast_radius']['share_of_cases']}")
    return Score(scorer="guards", passed=not problems, detail="; ".join(problems) or "ok")


SCORERS = [score_no_writes, score_opportunity, score_plan, score_guards]
