"""Executor: an allowed plan -> executions through the API tool, exactly once each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, Field
from sqlmodel import select

from closedloop.agents.context import LoopContext
from closedloop.agents.offline import answer, call_tool, first_human_json, tool_results
from closedloop.agents.runtime import AgentSpec, AuditTrail
from closedloop.agents.toolkit import make_tool
from closedloop.contracts import ExecuteStep, ExecutionRecord
from closedloop.governance import kill_switch_on
from closedloop.store.db import transaction
from closedloop.store.models import Approval, Execution, Plan, utcnow
from closedloop.tools.act import ApiRequest, EventPosition, invoke_api
from closedloop.tools.base import write_tool
from closedloop.tools.connect import ConnectorError
from closedloop.tools.errors import ApiCallError, NotAllowedError

EXECUTABLE_STATUSES = {"approved"}


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


def execute_plan_action(ctx: LoopContext, run_id: str, plan_id: int, api_url: str, index: int,
                        catalog_version: str) -> dict[str, Any]:
    """Perform action ``index`` of an approved plan once, through the connector; returns the record.

    Guards: the plan must be approved, its scope's kill switch off, the action
    in the plan and in the catalog the plan was made with (its request is built
    by the connector, nothing else can be sent). A succeeded execution is
    returned as it is, never repeated. The before-state is read first, the
    compensation is built from the response or the before-state, and the change
    is verified by read-back where the connector says how.
    """
    with transaction(ctx.engine) as session:
        plan = session.get(Plan, plan_id)
        if plan is None or plan.run_id != run_id:
            raise NotAllowedError(f"plan {plan_id} does not belong to run {run_id}")
        if plan.status not in EXECUTABLE_STATUSES:
            raise NotAllowedError(f"plan {plan_id} is {plan.status!r}; only approved plans execute")
        if kill_switch_on(session, plan.scope):
            raise NotAllowedError(f"the kill switch of scope {plan.scope!r} is on")
        if not 0 <= index < len(plan.actions):
            raise NotAllowedError(f"plan {plan_id} has no action {index}")
        version = plan.catalog_version or catalog_version
        approval = session.exec(select(Approval).where(Approval.plan_id == plan_id)).first()
        key = idempotency_key(run_id, plan_id, index)
        done = session.exec(select(Execution).where(Execution.idempotency_key == key)).first()
        if done is not None and done.status in ("succeeded", "compensated"):
            return {"execution_id": done.id, "status": done.status, "replayed_from_store": True}
        action = plan.actions[index]
    system = ctx.system(version, api_url)
    name, params = action["action"], action["params"]
    request = system.action_request(name, params, key)  # NotInCatalogError for anything else
    verified: bool | None = None
    compensation: dict[str, Any] = {}
    try:
        before = system.read_before(name, params)
        request = system.action_request(name, params, key, before)
        result = invoke_api(system.client, request, retries=ctx.settings.api_retries)
        status, body, attempts = "succeeded", result.body, result.attempts
        undo = system.compensation_request(name, params, body, before, key + "-undo")
        compensation = undo.model_dump() if undo is not None else {}
        verified = system.verify(name, params, body)
        if verified is False:
            status = "unverified"
    except (ApiCallError, ConnectorError) as exc:
        status, body, attempts = "failed", {"error": str(exc)}, ctx.settings.api_retries + 1
    with transaction(ctx.engine) as session:
        row = session.exec(select(Execution).where(Execution.idempotency_key == key)).first() or Execution(
            plan_id=plan_id, approval_id=approval.id if approval else None, action=name,
            idempotency_key=key, request=request.model_dump(), catalog_version=version)
        row.status, row.attempts, row.compensation = status, row.attempts + attempts, compensation
        row.response = body if isinstance(body, dict) else {"body": body}
        row.verified, row.finished_at = verified, utcnow()
        session.add(row)
        session.flush()
        execution_id = row.id
    if status == "failed":
        raise ApiCallError(f"action {index} ({name}) failed: {body['error']} (execution {execution_id})")
    if status == "unverified":
        raise ApiCallError(f"action {index} ({name}): the read-back does not show the change "
                           f"(execution {execution_id})")
    return {"execution_id": execution_id, "status": status, "response": body}


def offline_step(messages: Sequence[BaseMessage]) -> AIMessage:
    """Offline policy: execute each action of the plan in order, then report."""
    task = first_human_json(messages)
    results = tool_results(messages).get("execute_action", [])
    n = len(task.get("actions", []))
    if len(results) < n:
        return call_tool("execute_action", {"index": len(results)}, messages)
    executed = [r["execution_id"] for r in results if "execution_id" in r]
    failed = [{"index": i, "error": r["error"]} for i, r in enumerate(results) if "error" in r]
    return answer({"executed": executed, "failed": failed,
                   "summary": f"{len(executed)} of {n} actions executed, {len(failed)} failed."})


EXECUTOR: AgentSpec[ExecutorOutput] = AgentSpec(name="executor", prompt="executor", output=ExecutorOutput,
                                                 offline_step=offline_step, may_write=True)


def execute(ctx: LoopContext, run_id: str, plan_id: int, api_url: str, catalog_version: str,
            observed: dict[str, Any] | None = None) -> dict[str, Any]:
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

    outcome = EXECUTOR.run(ctx.settings, {"plan_id": plan_id, "actions": actions}, [make_tool(execute_action)],
                           audit)
    with transaction(ctx.engine) as session:
        rows = session.exec(select(Execution).where(Execution.plan_id == plan_id)).all()
        plan = session.get(Plan, plan_id)
        ok = [r for r in rows if r.status == "succeeded"]
        plan.status = "executed" if len(ok) == len(actions) else "failed"
        audit.save(session)
    step = ExecuteStep(
        agent_model=outcome.model, fallback=outcome.used_fallback,
        executions=[ExecutionRecord(id=r.id, action=r.action, status=r.status, attempts=r.attempts,
                                    idempotency_key=r.idempotency_key, response=r.response) for r in rows],
        summary=outcome.output.summary)
    update: dict[str, Any] = {"execution_ids": [r.id for r in rows], "steps": [step.model_dump()]}
    if plan.status == "executed":
        system = ctx.system(catalog_version, api_url)
        start = EventPosition.model_validate(observed or {})
        update["watch_position"] = system.read_events(start).position.model_dump(mode="json")
    if plan.status == "failed":
        update["outcome"] = "execution_failed"
    return update


def compensate(ctx: LoopContext, run_id: str, plan_id: int, api_url: str,
               catalog_version: str) -> list[dict[str, Any]]:
    """Run the compensating call of every performed execution of a plan (rollback), once each.

    The compensations were built by the connector when the action ran (from its
    response or before-state); they are sent as stored.
    """
    with transaction(ctx.engine) as session:
        rows = session.exec(select(Execution).where(Execution.plan_id == plan_id)).all()
    done = []
    for row in reversed(rows):
        if row.status not in ("succeeded", "unverified") or not row.compensation:
            continue
        system = ctx.system(row.catalog_version or catalog_version, api_url)
        request = ApiRequest.model_validate(row.compensation)
        result = invoke_api(system.client, request, retries=ctx.settings.api_retries)
        with transaction(ctx.engine) as session:
            fresh = session.get(Execution, row.id)
            fresh.status = "compensated"
            fresh.response = {**fresh.response, "compensation_response": result.body}
            session.add(fresh)
        done.append({"execution_id": row.id, "compensation": row.compensation, "status_code": result.status_code})
    return done
