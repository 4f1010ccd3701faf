"""Replay a dead letter: finish what a write or a compensation should have done.

A dead-lettered write is resolved with the same request and idempotency key (the system
answers its first outcome or applies it now); if its plan is no longer meant to be live
(failed, rolled back, rejected) the write, once known live, is undone too. A dead-lettered
compensation is sent again and verified by read-back. The plan becomes ``rolled_back``
only when every one of its executions is gone by the system's read-back.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from closedloop.agents.context import LoopContext
from closedloop.agents.executor import undo_execution
from closedloop.agents.writes import reconcile
from closedloop.contracts import NotPaused
from closedloop.store.db import transaction
from closedloop.store.models import DeadLetter, Execution, LoopRun, Plan
from closedloop.store.outbox import resolve_dead_letters

NOT_LIVE = ("failed", "rolled_back", "rollback_failed", "rejected", "blocked")
LIVE = ("succeeded", "unverified")


def replay_dead_letter(ctx: LoopContext, dead_letter_id: int) -> dict[str, Any]:
    """Replay one open dead letter; what became of its execution. NotPaused when it is closed."""
    with transaction(ctx.engine) as session:
        letter = session.get(DeadLetter, dead_letter_id)
        if letter is None:
            raise NotPaused(f"no dead letter #{dead_letter_id}")
        if letter.status != "open":
            raise NotPaused(f"dead letter #{dead_letter_id} is already {letter.status}")
        row = session.get(Execution, letter.execution_id)
        plan = session.get(Plan, row.plan_id)
        run = session.get(LoopRun, plan.run_id)
    api_url = run.api_url or ""
    if row.status in ("pending", "unknown", "failed"):
        if row.status == "failed" and not row.response.get("not_sent"):
            with transaction(ctx.engine) as session:
                session.get(Execution, row.id).status = "unknown"
        row = reconcile(ctx, row.id, api_url)
    if (
        row.status in LIVE
        and plan.status in NOT_LIVE
        and row.compensation
        or row.status == "compensation_failed"
    ):
        undo_execution(ctx, row.id, api_url)
    with transaction(ctx.engine) as session:
        row = session.get(Execution, row.id)
        rows = session.exec(select(Execution).where(Execution.plan_id == plan.id)).all()
        fresh = session.get(Plan, plan.id)
        if fresh.status in ("rollback_failed", "rolled_back") and not any(
            r.status in (*LIVE, "pending", "unknown", "compensation_failed") for r in rows
        ):
            fresh.status = "rolled_back"
    if row.status in (*LIVE, "compensated"):
        resolve_dead_letters(ctx.engine, row.id)
    with transaction(ctx.engine) as session:
        letter = session.get(DeadLetter, dead_letter_id)
    return {
        "dead_letter": dead_letter_id,
        "status": letter.status,
        "execution_id": row.id,
        "execution_status": row.status,
        "plan_status": fresh.status,
    }


__all__ = ["replay_dead_letter"]
