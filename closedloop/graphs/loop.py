"""The closed-loop graph: observe -> triage -> plan -> gate -> approval -> execute
-> await evidence (-> switch -> await evidence ..., in a switchback trial) -> watch
-> (rollback) -> learn.

Durable: state is checkpointed per run (thread id = run id) in the store's
database, so a loop paused at approval resumes exactly once, also from
another process. No side effect happens before an ``interrupt()`` in the same
node; writes carry idempotency keys.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from closedloop.agents import executor, planner, switchback, triage, watchdog
from closedloop.agents.context import LoopContext
from closedloop.contracts import RollbackStep, SwitchbackSchedule, SwitchStep, parse_approval
from closedloop.crashpoints import crash_point
from closedloop.graphs.gate import gate, record_decision
from closedloop.graphs.learn import learn
from closedloop.graphs.observe import observe
from closedloop.graphs.state import LoopState

MAX_EVIDENCE_CHECKS = 3


def observe_node(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    return observe(
        runtime.context, state["run_id"], state["api_url"], state["scope"], state["catalog_version"],
        history=state.get("history"),
    )


def triage_node(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    return triage.triage(runtime.context, state["run_id"], state["mining_run_id"], state["scope"])


def plan_node(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    return planner.plan(
        runtime.context,
        state["run_id"],
        state["opportunity_ids"],
        state["api_url"],
        state["scope"],
        state["catalog_version"],
    )


def gate_node(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    crash_point("plan")  # the plan is stored, the gate not yet passed
    return gate(runtime.context, state["run_id"], state["plan_id"])


def approval_node(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    # Nothing before interrupt(): on resume this node runs again from the top.
    answer = interrupt(
        {
            "kind": "approval",
            "run_id": state["run_id"],
            "plan_id": state["plan_id"],
            "approval_id": state["approval_id"],
        }
    )
    approval = parse_approval(answer)  # InvalidApproval leaves the run paused
    return record_decision(
        runtime.context, state["run_id"], state["approval_id"], approval.model_dump()
    )


def execute_node(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    update = executor.execute(
        runtime.context,
        state["run_id"],
        state["plan_id"],
        state["api_url"],
        state["catalog_version"],
        state["events_position"],
    )
    if update.get("outcome") == "execution_failed":
        return update
    trial = watchdog.plan_trial(
        runtime.context,
        state["plan_id"],
        state["api_url"],
        state["catalog_version"],
        state["events_position"],
        update["execution_ids"][0],
    )
    if trial is not None:
        first = trial.blocks[0]
        step = SwitchStep(block=0, on=True, at=first.start.isoformat(),
                          execution_id=first.execution_id, note=f"switchback trial: {trial.why}")
        update |= {"switchback": trial.model_dump(mode="json"), "wait_hours": trial.block_hours,
                   "steps": [*update["steps"], step.model_dump()]}
    return update


def await_evidence_node(state: LoopState) -> dict[str, Any]:
    # The world runs on; a scheduler (or the demo) resumes the run once the
    # observation window (or, in a switchback trial, the block) has passed.
    answer = interrupt(
        {
            "kind": "evidence",
            "run_id": state["run_id"],
            "plan_id": state["plan_id"],
            "after": state["watch_position"],
            "checks": state.get("evidence_checks", 0),
            "wait_hours": state.get("wait_hours"),
        }
    )
    return {"advanced_hours": advanced_hours(answer)}


def advanced_hours(answer: Any) -> float | None:
    """How long the world ran before this resume, as its driver says (``advanced_days``); None
    when it does not say (a scheduler in real time: the system's events tell the time)."""
    days = answer.get("advanced_days") if isinstance(answer, dict) else None
    return float(days) * 24.0 if isinstance(days, int | float) and days >= 0 else None


def switch_node(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    trial, wait, steps = switchback.advance(
        runtime.context,
        state["run_id"],
        state["plan_id"],
        state["api_url"],
        state["catalog_version"],
        SwitchbackSchedule.model_validate(state["switchback"]),
        state["watch_position"],
        state.get("advanced_hours"),
    )
    ids = [b.execution_id for b in trial.blocks if b.on and b.execution_id is not None]
    return {
        "switchback": trial.model_dump(mode="json"),
        "wait_hours": None if trial.finished else wait,
        "execution_ids": list(dict.fromkeys([*state.get("execution_ids", []), *ids])),
        "steps": [s.model_dump() for s in steps],
    }


def watch_node(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    update = watchdog.watch(
        runtime.context,
        state["run_id"],
        state["plan_id"],
        state["api_url"],
        state["catalog_version"],
        state["watch_position"],
        state.get("evidence_checks", 0),
        MAX_EVIDENCE_CHECKS,
        trial=SwitchbackSchedule.model_validate(state["switchback"]) if state.get("switchback") else None,
    )
    crash_point("watch")  # the verdict is stored, the step not yet checkpointed
    return update


def rollback_node(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    done = executor.compensate(
        runtime.context,
        state["run_id"],
        state["plan_id"],
        state["api_url"],
        state["catalog_version"],
    )
    return {"steps": [RollbackStep(compensations=done).model_dump()]}


def learn_node(state: LoopState, runtime: Runtime[LoopContext]) -> dict[str, Any]:
    return learn(
        runtime.context,
        state["run_id"],
        state.get("plan_id"),
        state.get("outcome"),
        state.get("decision"),
    )


def after_triage(state: LoopState) -> Literal["plan", "learn"]:
    return "plan" if state.get("opportunity_ids") else "learn"


def after_plan(state: LoopState) -> Literal["gate", "learn"]:
    return "gate" if state.get("plan_id") else "learn"


def after_gate(state: LoopState) -> Literal["approval", "execute", "learn"]:
    route = state["gate"]
    if route == "approval":
        return "approval"
    if route == "execute":
        return "execute"
    if route in ("shadow", "blocked"):
        return "learn"
    raise ValueError(f"unknown gate route {route!r}")


def after_approval(state: LoopState) -> Literal["execute", "learn"]:
    return "execute" if state.get("decision") == "approved" else "learn"


def after_execute(state: LoopState) -> Literal["await_evidence", "rollback"]:
    return "rollback" if state.get("outcome") == "execution_failed" else "await_evidence"


def in_trial(state: LoopState) -> bool:
    trial = state.get("switchback")
    return bool(trial) and not trial.get("finished", False)


def after_await(state: LoopState) -> Literal["switch", "watch"]:
    return "switch" if in_trial(state) else "watch"


def after_switch(state: LoopState) -> Literal["await_evidence", "watch"]:
    return "await_evidence" if in_trial(state) else "watch"


def after_watch(state: LoopState) -> Literal["await_evidence", "rollback", "learn"]:
    decision = state.get("decision")
    if decision == "wait":
        return "await_evidence"
    if decision == "rollback":
        return "rollback"
    if decision in ("keep", "escalate"):
        return "learn"
    raise ValueError(f"unknown watchdog decision {decision!r}")


def build_graph() -> StateGraph:
    """The uncompiled closed-loop graph."""
    g = StateGraph(LoopState, context_schema=LoopContext)
    for name, fn in [
        ("observe", observe_node),
        ("triage", triage_node),
        ("plan", plan_node),
        ("gate", gate_node),
        ("approval", approval_node),
        ("execute", execute_node),
        ("await_evidence", await_evidence_node),
        ("switch", switch_node),
        ("watch", watch_node),
        ("rollback", rollback_node),
        ("learn", learn_node),
    ]:
        g.add_node(name, fn)
    g.add_edge(START, "observe")
    g.add_edge("observe", "triage")
    g.add_conditional_edges("triage", after_triage)
    g.add_conditional_edges("plan", after_plan)
    g.add_conditional_edges("gate", after_gate)
    g.add_conditional_edges("approval", after_approval)
    g.add_conditional_edges("execute", after_execute)
    g.add_conditional_edges("await_evidence", after_await)
    g.add_conditional_edges("switch", after_switch)
    g.add_conditional_edges("watch", after_watch)
    g.add_edge("rollback", "learn")
    g.add_edge("learn", END)
    return g


# Compiled without a checkpointer, for LangGraph Studio / langgraph.json.
graph = build_graph().compile()
