"""The Executor's writes: intents committed before sending, sending with retries, outcomes
recorded, and reconciliation of writes whose outcome is not known (exactly once, by key)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from closedloop.agents.context import LoopContext
from closedloop.crashpoints import crash_point
from closedloop.governance import CapExceeded, check_execution_caps
from closedloop.store.db import transaction
from closedloop.store.models import Approval, AuditEvent, Execution, Plan, utcnow
from closedloop.store.outbox import UNRESOLVED, dead_letter, resolve_dead_letters
from closedloop.tools.act import ApiRequest, invoke_api
from closedloop.tools.act.invoke import OutcomeUnknown
from closedloop.tools.connect import ConnectorError
from closedloop.tools.errors import ApiCallError, NotAllowedError


def send(ctx: LoopContext, system: Any, request: ApiRequest) -> Any:
    return invoke_api(
        system.client, request, retries=ctx.settings.api_retries, breaker=system.breaker
    )


def commit_intent(
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


def not_sent(ctx: LoopContext, execution_id: int, run_id: str, problem: str) -> None:
    with transaction(ctx.engine) as session:
        row = session.get(Execution, execution_id)
        row.status, row.finished_at = "failed", utcnow()
        row.response = {"error": problem, "not_sent": True}
    dead_letter(ctx.engine, execution_id, run_id, "write", problem, 0)


def prepare_again(ctx: LoopContext, row: Execution, plan: Plan, api_url: str) -> ApiRequest:
    """Read the before-state and build the request again for a write that was never sent."""
    system = ctx.system(row.catalog_version, api_url)
    action = plan.actions[action_index(row.idempotency_key)]
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


def perform(ctx: LoopContext, execution_id: int, api_url: str, request: ApiRequest) -> Execution:
    """Send an intent's request (same key) and record what is known afterwards."""
    with transaction(ctx.engine) as session:
        row = session.get(Execution, execution_id)
        plan = session.get(Plan, row.plan_id)
    system = ctx.system(row.catalog_version, api_url)
    action = plan.actions[action_index(row.idempotency_key)]
    name, params = action["action"], action["params"]
    before = row.response.get("before")
    verified: bool | None = None
    compensation: dict[str, Any] = {}
    try:
        result = send(ctx, system, request)
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
            return perform(ctx, execution_id, api_url, prepare_again(ctx, row, plan, api_url))
        except (ApiCallError, ConnectorError) as exc:
            not_sent(ctx, execution_id, plan.run_id, f"cannot prepare the write: {exc}")
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
    return perform(ctx, execution_id, api_url, request)


def action_index(key: str) -> int:
    return int(key.rsplit("-a", 1)[1].split("-")[0])


def outcome_of(row: Execution, index: int) -> dict[str, Any]:
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
