"""Executor: an allowed plan -> executions through the API tool, exactly once each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from closedloop.agents.context import LoopContext
from closedloop.agents.offline import answer, call_tool, first_human_json, tool_results
from closedloop.agents.runtime import AgentSpec, AuditTrail
from closedloop.agents.toolkit import make_tool
from closedloop.contracts import ExecuteStep, ExecutionRecord
from closedloop.crashpoints import crash_point
from closedloop.governance import CapExceeded, check_execution_caps, kill_switch_on
from closedloop.store.db import transaction
from closedloop.store.models import Approval, AuditEvent, Execution, Plan, utcnow
from closedloop.store.outbox import UNRESOLVED, dead_letter, resolve_dead_letters
from closedloop.tools.act import ApiRequest, EventPosition, invoke_api
from closedloop.tools.act.invoke import OutcomeUnknown
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


def _send(ctx: LoopContext, system: Any, request: ApiRequest) -> Any:
    return invoke_api(
        system.client, request, retries=ctx.settings.api_retries, breaker=system.breaker
    )


def execute_plan_action(
    ctx: LoopContext, run_id: str, plan_id: int, api_url: str, index: int, catalog_version: str
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
        key = idempotency_key(run_id, plan_id, index)
        done = session.exec(select(Execution).where(Execution.idempotency_key == key)).first()
        action = plan.actions[index]
    if done is not None:
        if done.status in UNRESOLVED or done.response.get("not_sent"):
            return _outcome(reconcile(ctx, done.id, api_url), index)
        if done.status == "failed":
            return _outcome(done, index)
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
        execution_id = _commit_intent(ctx, run_id, plan_id, name, key, request, before, version)
        if execution_id is not None:
            _not_sent(ctx, execution_id, run_id, f"cannot prepare the write: {exc}")
        raise ApiCallError(f"action {index} ({name}): cannot prepare the write: {exc}") from exc
    execution_id = _commit_intent(ctx, run_id, plan_id, name, key, request, before, version)
    if execution_id is None:  # another process committed the same intent first
        with transaction(ctx.engine) as session:
            row = session.exec(select(Execution).where(Execution.idempotency_key == key)).one()
        return _outcome(reconcile(ctx, row.id, api_url), index)
    crash_point("execute:intent")
    return _outcome(_perform(ctx, execution_id, api_url, request), index)


def _commit_intent(
    ctx: LoopContext,
    run_id: str,
    plan_id: int,
    name: str,
    key: str,
    request: ApiRequest,
    before: Any,
    version: str,
) -> int | None:
    """Commit the intent row (after the caps check, in one transaction); None if it exists."""
    try:
        with transaction(ctx.engine) as session:
            plan = session.get(Plan, plan_id)
            approval = session.exec(
                select(Approval).where(
                    Approval.plan_id == plan_id, Approval.channel != "shadow-review"
                )
            ).first()
            autonomous = approval is None or approval.channel == "policy"
            try:
                check_execution_caps(session, plan, autonomous=autonomous)
            except CapExceeded as exc:
                session.add(
                    AuditEvent(
                        run_id=run_id,
                        actor="executor",
                        kind="guardrail_breach",
                        payload={
                            "scope": plan.scope,
                            "plan_id": plan_id,
                            "action": name,
                            "refused": str(exc),
                        },
                    )
                )
                session.commit()
                raise NotAllowedError(f"cap: {exc}") from exc
            row = Execution(
                plan_id=plan_id,
                approval_id=approval.id if approval else None,
                action=name,
                idempotency_key=key,
                request=request.model_dump(),
                catalog_version=version,
                status="pending",
                response={"before": before},
            )
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        return None


def _not_sent(ctx: LoopContext, execution_id: int, run_id: str, problem: str) -> None:
    with transaction(ctx.engine) as session:
        row = session.get(Execution, execution_id)
        row.status, row.finished_at = "failed", utcnow()
        row.response = {"error": problem, "not_sent": True}
    dead_letter(ctx.engine, execution_id, run_id, "write", problem, 0)


def _prepare_again(ctx: LoopContext, row: Execution, plan: Plan, api_url: str) -> ApiRequest:
    """Read the before-state and build the request again for a write that was never sent."""
    system = ctx.system(row.catalog_version, api_url)
    action = plan.actions[_index_of(row.idempotency_key)]
    before = system.read_before(action["action"], action["params"])
    request = system.action_request(action["action"], action["params"], row.idempotency_key, before)
    with transaction(ctx.engine) as session:
        fresh = session.get(Execution, row.id)
        fresh.request, fresh.response, fresh.status = (
            request.model_dump(),
            {"before": before},
            "pending",
        )
    return request


def _perform(ctx: LoopContext, execution_id: int, api_url: str, request: ApiRequest) -> Execution:
    """Send an intent's request (same key) and record what is known afterwards."""
    with transaction(ctx.engine) as session:
        row = session.get(Execution, execution_id)
        plan = session.get(Plan, row.plan_id)
    system = ctx.system(row.catalog_version, api_url)
    action = plan.actions[_index_of(row.idempotency_key)]
    name, params = action["action"], action["params"]
    before = row.response.get("before")
    verified: bool | None = None
    compensation: dict[str, Any] = {}
    try:
        result = _send(ctx, system, request)
    except OutcomeUnknown as exc:  # it may be live: never "failed"; read back later
        status, body, attempts = "unknown", {"error": str(exc)}, ctx.settings.api_retries + 1
    except (ApiCallError, ConnectorError) as exc:
        status, body, attempts = "failed", {"error": str(exc)}, ctx.settings.api_retries + 1
    else:
        crash_point("execute:sent")
        status, body, attempts = "succeeded", result.body, result.attempts
        undo = system.compensation_request(
            name, params, body, before, row.idempotency_key + "-undo"
        )
        compensation = undo.model_dump() if undo is not None else {}
        try:
            verified = system.verify(name, params, body)
        except ApiCallError:  # the system answered the write; only its read-back is unavailable now
            verified = None
        if verified is False:
            status = "unverified"
    with transaction(ctx.engine) as session:
        row = session.get(Execution, execution_id)
        row.status, row.attempts, row.compensation = status, row.attempts + attempts, compensation
        response = body if isinstance(body, dict) else {"body": body}
        row.response = {**response, "before": before}
        row.verified, row.finished_at = verified, utcnow()
        session.add(row)
    if status in ("unknown", "failed"):
        dead_letter(ctx.engine, execution_id, plan.run_id, "write", body["error"], attempts)
    else:
        resolve_dead_letters(ctx.engine, execution_id, "write")
    return row


def reconcile(ctx: LoopContext, execution_id: int, api_url: str) -> Execution:
    """Resolve an execution whose outcome is not known (an intent left by a crash, or a lost
    answer) against the system: the same request with the same idempotency key again (the
    system answers the first outcome, or applies it now if it never arrived), then the read-back.

    A connector without idempotency on the wire cannot be resent safely: such an intent is
    left ``unknown`` and dead-lettered for a person.
    """
    with transaction(ctx.engine) as session:
        row = session.get(Execution, execution_id)
        plan = session.get(Plan, row.plan_id)
    if row.response.get("not_sent") and row.status == "failed":
        try:
            return _perform(ctx, execution_id, api_url, _prepare_again(ctx, row, plan, api_url))
        except (ApiCallError, ConnectorError) as exc:
            _not_sent(ctx, execution_id, plan.run_id, f"cannot prepare the write: {exc}")
            with transaction(ctx.engine) as session:
                return session.get(Execution, execution_id)
    if row.status not in UNRESOLVED:
        return row
    request = ApiRequest.model_validate(row.request)
    if not request.replay_safe:
        with transaction(ctx.engine) as session:
            fresh = session.get(Execution, execution_id)
            fresh.status = "unknown"
        dead_letter(
            ctx.engine,
            execution_id,
            plan.run_id,
            "write",
            "outcome unknown and the connector has no idempotency header: check the "
            "system, then mark it by hand",
            0,
        )
        return fresh
    return _perform(ctx, execution_id, api_url, request)


def _index_of(key: str) -> int:
    return int(key.rsplit("-a", 1)[1].split("-")[0])


def _outcome(row: Execution, index: int) -> dict[str, Any]:
    if row.status in ("failed", "unknown"):
        raise ApiCallError(
            f"action {index} ({row.action}) {row.status}: "
            f"{row.response.get('error', '')} (execution {row.id})"
        )
    if row.status == "unverified":
        raise ApiCallError(
            f"action {index} ({row.action}): the read-back does not show the change "
            f"(execution {row.id})"
        )
    return {"execution_id": row.id, "status": row.status, "response": row.response}


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

    outcome = EXECUTOR.run(
        ctx.settings, {"plan_id": plan_id, "actions": actions}, [make_tool(execute_action)], audit
    )
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
    action = plan.actions[_index_of(row.idempotency_key)]
    request = ApiRequest.model_validate(row.compensation)
    status_code, gone, problem = None, False, ""
    try:
        result = _send(ctx, system, request)
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
