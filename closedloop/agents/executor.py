"""Executor: an allowed plan -> executions through the API tool, exactly once each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, Field
from sqlmodel import select

from closedloop.agents.context import LoopContext
from closedloop.agents.model_text import guard_outcome
from closedloop.agents.offline import answer, call_tool, first_human_json, tool_results
from closedloop.agents.runtime import AgentSpec, AuditTrail
from closedloop.agents.toolkit import make_tool
from closedloop.agents.writes import (
    action_index,
    commit_intent,
    not_sent,
    outcome_of,
    perform,
    reconcile,
    send,
)
from closedloop.contracts import ExecuteStep, ExecutionRecord
from closedloop.crashpoints import crash_point
from closedloop.governance import kill_switch_on
from closedloop.store.db import transaction
from closedloop.store.models import Execution, Plan
from closedloop.store.outbox import UNRESOLVED, dead_letter, resolve_dead_letters
from closedloop.tools.act import ApiRequest, EventPosition
from closedloop.tools.base import write_tool
from closedloop.tools.connect import ConnectorError
from closedloop.tools.errors import ApiCallError, NotAllowedError

EXECUTABLE_STATUSES = {"approved"}
TRIAL_STATUSES = {"executed"}  # a switchback trial toggles a plan that is live


class Failure(BaseModel):
    index: int
    error: str


class ExecutorOutput(BaseModel):
    executed: list[int] = Field(default_factory=list)
    failed: list[Failure] = Field(default_factory=list)
    summary: str = ""


def idempotency_key(run_id: str, plan_id: int, index: int, suffix: str = "") -> str:
    """The key that makes an action's write happen once, however often it is retried."""
    return f"closedloop-{run_id}-plan{plan_id}-a{index}{suffix}"


def execute_plan_action(
    ctx: LoopContext,
    run_id: str,
    plan_id: int,
    api_url: str,
    index: int,
    catalog_version: str,
    block: int | None = None,
) -> dict[str, Any]:
    """Perform action ``index`` of an approved plan once, through the connector; returns the record.

    Guards: the plan must be approved, its scope's (and the global) kill switch off, the
    caps not exceeded, the action in the plan and in the catalog the plan was made with (its
    request is built by the connector, nothing else can be sent). The intent (an Execution
    row in status ``pending`` with the request and its idempotency key) is committed before
    the request leaves, so a crash at any instant leaves a record to reconcile; an existing
    intent is resolved by :func:`reconcile`, never sent fresh. A succeeded execution is
    returned as it is. The compensation is built from the response or the before-state,
    and the change is verified by read-back where the connector says how.

    ``block``: re-apply the action of an executed plan for block ``block`` of its
    switchback trial (its own idempotency key; the plan stays as approved).
    """
    allowed = EXECUTABLE_STATUSES if block is None else TRIAL_STATUSES
    with transaction(ctx.engine) as session:
        plan = session.get(Plan, plan_id)
        if plan is None or plan.run_id != run_id:
            raise NotAllowedError(f"plan {plan_id} does not belong to run {run_id}")
        if plan.status not in allowed:
            raise NotAllowedError(
                f"plan {plan_id} is {plan.status!r}; only {' or '.join(sorted(allowed))} plans execute"
            )
        if kill_switch_on(session, plan.scope):
            raise NotAllowedError(f"the kill switch of scope {plan.scope!r} is on")
        if not 0 <= index < len(plan.actions):
            raise NotAllowedError(f"plan {plan_id} has no action {index}")
        version = plan.catalog_version or catalog_version
        key = idempotency_key(run_id, plan_id, index, "" if block is None else f"-b{block}")
        done = session.exec(select(Execution).where(Execution.idempotency_key == key)).first()
        action = plan.actions[index]
    if done is not None:
        if done.status in UNRESOLVED or done.response.get("not_sent"):
            return outcome_of(reconcile(ctx, done.id, api_url), index)
        if done.status == "failed":
            return outcome_of(done, index)
        return {"execution_id": done.id, "status": done.status, "replayed_from_store": True}
    system = ctx.system(version, api_url)
    name, params = action["action"], action["params"]
    system.action_request(name, params, key)  # NotInCatalogError for anything else
    try:
        before = system.read_before(name, params)
        request = system.action_request(name, params, key, before)
    except (ApiCallError, ConnectorError) as exc:
        # Nothing was sent: recorded as failed (not sent) and dead-lettered, to prepare again.
        request, before = system.action_request(name, params, key), None
        execution_id = commit_intent(ctx, run_id, plan_id, name, key, request, before, version)
        if execution_id is not None:
            not_sent(ctx, execution_id, run_id, f"cannot prepare the write: {exc}")
        raise ApiCallError(f"action {index} ({name}): cannot prepare the write: {exc}") from exc
    execution_id = commit_intent(ctx, run_id, plan_id, name, key, request, before, version)
    if execution_id is None:  # another process committed the same intent first
        with transaction(ctx.engine) as session:
            row = session.exec(select(Execution).where(Execution.idempotency_key == key)).one()
        return outcome_of(reconcile(ctx, row.id, api_url), index)
    crash_point("execute:intent")
    return outcome_of(perform(ctx, execution_id, api_url, request), index)


def offline_step(messages: Sequence[BaseMessage]) -> AIMessage:
    """Offline policy: execute each action of the plan in order, then report."""
    task = first_human_json(messages)
    results = tool_results(messages).get("execute_action", [])
    n = len(task.get("actions", []))
    if len(results) < n:
        return call_tool("execute_action", {"index": len(results)}, messages)
    executed = [r["execution_id"] for r in results if "execution_id" in r]
    failed = [{"index": i, "error": r["error"]} for i, r in enumerate(results) if "error" in r]
    return answer(
        {
            "executed": executed,
            "failed": failed,
            "summary": f"{len(executed)} of {n} actions executed, {len(failed)} failed.",
        }
    )


EXECUTOR: AgentSpec[ExecutorOutput] = AgentSpec(
    name="executor",
    prompt="executor",
    output=ExecutorOutput,
    offline_step=offline_step,
    may_write=True,
)


def execute(
    ctx: LoopContext,
    run_id: str,
    plan_id: int,
    api_url: str,
    catalog_version: str,
    observed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the Executor agent over an approved plan; note where the event feed stands after it
    (``watch_position``: the Watchdog reads the events from there)."""
    audit = AuditTrail(run_id)
    with transaction(ctx.engine) as session:
        plan = session.get(Plan, plan_id)
        actions = list(plan.actions)

    @write_tool
    def execute_action(index: int) -> dict[str, Any]:
        """Perform action number ``index`` (0-based) of the approved plan through the enterprise API."""
        return execute_plan_action(ctx, run_id, plan_id, api_url, index, catalog_version)

    task = {"plan_id": plan_id, "actions": actions}
    outcome = EXECUTOR.run(ctx.settings, task, [make_tool(execute_action)], audit)
    outcome.output = guard_outcome("executor", outcome, task, audit)
    with transaction(ctx.engine) as session:
        rows = session.exec(select(Execution).where(Execution.plan_id == plan_id)).all()
        plan = session.get(Plan, plan_id)
        ok = [r for r in rows if r.status == "succeeded"]
        plan.status = "executed" if len(ok) == len(actions) else "failed"
        audit.save(session)
    step = ExecuteStep(
        agent_model=outcome.model,
        fallback=outcome.used_fallback,
        executions=[
            ExecutionRecord(
                id=r.id,
                action=r.action,
                status=r.status,
                attempts=r.attempts,
                idempotency_key=r.idempotency_key,
                response=r.response,
            )
            for r in rows
        ],
        summary=outcome.output.summary,
    )
    update: dict[str, Any] = {"execution_ids": [r.id for r in rows], "steps": [step.model_dump()]}
    if plan.status == "executed":
        system = ctx.system(catalog_version, api_url)
        start = EventPosition.model_validate(observed or {})
        update["watch_position"] = system.read_events(start).position.model_dump(mode="json")
    if plan.status == "failed":
        update["outcome"] = "execution_failed"
    return update


def compensate(
    ctx: LoopContext, run_id: str, plan_id: int, api_url: str, catalog_version: str
) -> list[dict[str, Any]]:
    """Undo every performed execution of a plan (rollback), once each, verified by read-back.

    Executions whose outcome is unknown are reconciled first (a live one is undone too).
    The compensations were built by the connector when the action ran; they are sent as
    stored, retried, and an execution counts as ``compensated`` only when the read-back no
    longer shows the change. The plan is ``rolled_back`` only when every one is; otherwise
    ``rollback_failed`` with the rest dead-lettered.
    """
    with transaction(ctx.engine) as session:
        rows = session.exec(select(Execution).where(Execution.plan_id == plan_id)).all()
    done = []
    for row in reversed(rows):
        if row.status in UNRESOLVED:
            row = reconcile(ctx, row.id, api_url)
        if (
            row.status not in ("succeeded", "unverified", "compensation_failed")
            or not row.compensation
        ):
            continue
        done.append(undo_execution(ctx, row.id, api_url, catalog_version))
    with transaction(ctx.engine) as session:
        rows = session.exec(select(Execution).where(Execution.plan_id == plan_id)).all()
        live = [
            r
            for r in rows
            if r.status in ("succeeded", "unverified", "compensation_failed", "unknown", "pending")
        ]
        plan = session.get(Plan, plan_id)
        plan.status = "rollback_failed" if live else "rolled_back"
    return done


def undo_execution(
    ctx: LoopContext, execution_id: int, api_url: str, catalog_version: str | None = None
) -> dict[str, Any]:
    """Send one execution's stored compensation and check by read-back that the change is gone."""
    with transaction(ctx.engine) as session:
        row = session.get(Execution, execution_id)
        plan = session.get(Plan, row.plan_id)
    system = ctx.system(row.catalog_version or catalog_version, api_url)
    action = plan.actions[action_index(row.idempotency_key)]
    request = ApiRequest.model_validate(row.compensation)
    status_code, gone, problem = None, False, ""
    try:
        result = send(ctx, system, request)
        status_code = result.status_code
        still = system.verify(action["action"], action["params"], row.response)
        gone = still is not True
        problem = "" if gone else "the read-back still shows the change"
        body: Any = result.body
    except (ApiCallError, ConnectorError) as exc:
        problem, body = str(exc), {"error": str(exc)}
    with transaction(ctx.engine) as session:
        fresh = session.get(Execution, execution_id)
        fresh.status = "compensated" if gone else "compensation_failed"
        fresh.response = {**fresh.response, "compensation_response": body}
        session.add(fresh)
    if gone:
        resolve_dead_letters(ctx.engine, execution_id)
    else:
        dead_letter(
            ctx.engine,
            execution_id,
            plan.run_id,
            "compensation",
            problem,
            ctx.settings.api_retries + 1,
        )
    return {
        "execution_id": execution_id,
        "compensation": row.compensation,
        "status_code": status_code,
        "verified_gone": gone,
    }
