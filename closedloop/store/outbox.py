"""The outbox of writes: an intent committed before each write, and dead letters for the writes
(and compensations) that could not be completed.

An :class:`~closedloop.store.models.Execution` row in status ``pending`` is the intent: it is
committed, with the request and its idempotency key, before the request leaves. A crash
at any later instant leaves that row behind, so recovery knows every write that may be
live and resolves it against the system (see ``closedloop.agents.executor.reconcile``).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import select

from closedloop.store.db import transaction
from closedloop.store.models import DeadLetter, Execution, Plan, utcnow

UNRESOLVED = ("pending", "unknown")


def dead_letter(
    engine: Engine, execution_id: int, run_id: str, kind: str, reason: str, attempts: int
) -> int:
    """Record (or refresh) the open dead letter of an execution; its id."""
    with transaction(engine) as session:
        row = session.exec(
            select(DeadLetter).where(
                DeadLetter.execution_id == execution_id,
                DeadLetter.kind == kind,
                DeadLetter.status == "open",
            )
        ).first()
        if row is None:
            row = DeadLetter(execution_id=execution_id, run_id=run_id, kind=kind, reason="")
        row.reason, row.attempts = reason[:2000], row.attempts + attempts
        session.add(row)
        session.flush()
        return row.id


def resolve_dead_letters(engine: Engine, execution_id: int, kind: str | None = None) -> int:
    """Close the open dead letters of an execution (of one kind, or all); how many."""
    with transaction(engine) as session:
        query = select(DeadLetter).where(
            DeadLetter.execution_id == execution_id, DeadLetter.status == "open"
        )
        if kind is not None:
            query = query.where(DeadLetter.kind == kind)
        rows = session.exec(query).all()
        for row in rows:
            row.status, row.resolved_at = "resolved", utcnow()
            session.add(row)
        return len(rows)


def list_dead_letters(engine: Engine, status: str | None = "open") -> list[DeadLetter]:
    """Dead letters, oldest first (``status`` None: all)."""
    with transaction(engine) as session:
        query = select(DeadLetter).order_by(DeadLetter.id)
        if status is not None:
            query = query.where(DeadLetter.status == status)
        return list(session.exec(query).all())


def unresolved_executions(engine: Engine, run_id: str | None = None) -> list[Execution]:
    """Executions whose outcome is not known yet (intents and unknowns), of one run or all."""
    with transaction(engine) as session:
        query = select(Execution).where(Execution.status.in_(UNRESOLVED))
        if run_id is not None:
            query = query.join(Plan, Plan.id == Execution.plan_id).where(Plan.run_id == run_id)
        return list(session.exec(query).all())


__all__ = [
    "UNRESOLVED",
    "dead_letter",
    "list_dead_letters",
    "resolve_dead_letters",
    "unresolved_executions",
]
