"""Start, pause and resume closed-loop runs with a durable checkpointer in the store's database.

Every step is checkpointed synchronously, and the process driving a run is recorded as
its owner (``host:pid``) while it drives it. A run whose owner died (``kill -9``, a power
cut) is *interrupted*: :meth:`LoopRunner.recover` resumes it from its last checkpoint,
after resolving the writes it may have left in flight (the outbox); ``run``, ``watch`` and
the service recover interrupted runs when they start.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Self

from langgraph.types import Command
from pydantic import BaseModel
from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlmodel import select

from closedloop.agents.binding import bind_catalog
from closedloop.agents.context import LoopContext
from closedloop.agents.writes import reconcile
from closedloop.contracts import ApprovalAnswer, NotPaused, RunNotFound, RunStatus
from closedloop.graphs.gate import AlreadyDecided, decide_approval
from closedloop.graphs.loop import build_graph
from closedloop.graphs.owners import owner_gone, owner_id
from closedloop.settings import Settings
from closedloop.store.db import open_store, transaction
from closedloop.store.models import Approval, LoopRun, utcnow
from closedloop.store.outbox import unresolved_executions

log = logging.getLogger(__name__)
#: How long a decided approval may wait for its decider to resume the run before recovery does.
DECIDED_GRACE = timedelta(seconds=60)
FINISHED = (
    "kept",
    "rolled_back",
    "escalated",
    "rejected",
    "blocked",
    "shadowed",
    "completed",
    "failed",
    "execution_failed",
    "rollback_failed",
)


# Checkpoints only deserialize known types (LangGraph's msgpack allow-list).
os.environ.setdefault("LANGGRAPH_STRICT_MSGPACK", "true")


@contextmanager
def checkpointer(url: str) -> Iterator[Any]:
    """A LangGraph checkpointer in the same database as the store."""
    if url.startswith("sqlite"):
        from langgraph.checkpoint.sqlite import SqliteSaver

        path = make_url(url).database
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        try:
            yield SqliteSaver(conn)
        finally:
            conn.close()
    else:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg import Connection
        from psycopg.rows import dict_row

        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with Connection.connect(
            conninfo, autocommit=True, prepare_threshold=0, row_factory=dict_row
        ) as conn:
            saver = PostgresSaver(conn)
            saver.setup()
            yield saver


class LoopRunner:
    """Drives closed-loop runs for one process; open it as a context manager."""

    def __init__(self, settings: Settings, api_client_factory: Any = None) -> None:
        self.settings = settings
        self.url = settings.resolved_database_url()
        self.engine = open_store(self.url)
        self.context = LoopContext(
            settings=settings, engine=self.engine, api_client_factory=api_client_factory
        )
        self._cp_cm = None
        self.graph = None

    def __enter__(self) -> Self:
        self._cp_cm = checkpointer(self.url)
        self.graph = build_graph().compile(checkpointer=self._cp_cm.__enter__())
        return self

    def __exit__(self, *exc: object) -> None:
        self.context.close()
        self._cp_cm.__exit__(*exc)

    def start(
        self,
        api_url: str | None,
        scope: str | None = None,
        run_id: str | None = None,
        history: str | None = None,
    ) -> dict[str, Any]:
        """Begin a new run against the enterprise system at ``api_url`` (None: the connector's
        default base URL) through the configured connector; returns the state where it stopped.
        ``history`` names an event log file to mine instead of the feed's history (the feed
        still gives the events after the change).

        The run is bound to the connector's catalog version (stored in the store), so a resumed
        run acts through exactly the catalog it planned with.
        """
        self.recover_quietly()
        run_id = run_id or f"run-{uuid.uuid4().hex[:12]}"
        scope = scope or self.settings.default_scope
        with transaction(self.engine) as session:
            session.add(LoopRun(id=run_id, scope=scope, api_url=api_url))
        try:
            version, base_url = bind_catalog(self.settings, self.engine, api_url)
            with transaction(self.engine) as session:
                run = session.get(LoopRun, run_id)
                run.catalog_version, run.api_url = version, base_url
            return self._invoke(
                {
                    "run_id": run_id,
                    "scope": scope,
                    "api_url": base_url,
                    "catalog_version": version,
                    "history": history,
                    "steps": [],
                },
                run_id,
            )
        except Exception:
            self._mark_failed(run_id)
            raise

    def _mark_failed(self, run_id: str) -> None:
        failed: RunStatus = "failed"
        with transaction(self.engine) as session:
            run = session.get(LoopRun, run_id)
            if run is not None:
                run.status, run.updated_at = failed, utcnow()

    def resume(
        self, run_id: str, value: ApprovalAnswer | dict[str, Any] | None, expect: str
    ) -> dict[str, Any]:
        """Resume a run paused at an interrupt of kind ``expect`` ('approval' or 'evidence').

        For an approval ``value`` is the approver's answer (an ``ApprovalAnswer``
        or its dict); an invalid answer raises ``InvalidApproval`` (a ValueError)
        and leaves the run paused.
        """
        pending = self.pending(run_id)
        if pending is None or pending.get("kind") != expect:
            found = pending.get("kind") if pending else "nothing"
            raise NotPaused(f"run {run_id} is not waiting for {expect} (it waits for {found})")
        if isinstance(value, BaseModel):
            value = value.model_dump()  # checkpoints hold plain JSON
        if expect == "approval":
            value = self._decide(run_id, pending, value)
        else:
            self.recover_quietly()
        # LangGraph treats a falsy resume value as "no resume": always send something.
        try:
            return self._invoke(Command(resume=value or {"resumed": True}), run_id)
        except (ValueError, NotPaused):
            raise  # a refused answer leaves the run paused, not failed
        except Exception:
            self._mark_failed(run_id)
            raise

    def _decide(self, run_id: str, pending: dict[str, Any], value: Any) -> dict[str, Any]:
        """Decide the approval atomically before resuming: only the winner resumes the graph;
        everyone else gets AlreadyDecided (a NotPaused) naming the decision that stands.

        The winner then takes the run over and checks it still waits for this approval, so
        the graph is resumed by one owner even if the store ever lost the first decision (as
        it did while a process dropped its own SQLite locks, see ``secure_sqlite_file``): a
        second winner is told the run is not waiting.
        """
        from closedloop.contracts import parse_approval

        answer = parse_approval(value).model_dump()  # InvalidApproval leaves the run paused
        won, approval = decide_approval(
            self.engine,
            pending["approval_id"],
            answer["decision"],
            str(answer.get("by") or "unknown"),
            str(answer.get("comment") or ""),
            str(answer.get("channel") or "cli"),
        )
        if not won:
            raise AlreadyDecided(approval)
        # From here a crash leaves an interrupted run (recovery resumes the stored decision).
        if not self._claim(run_id, None):
            raise NotPaused(
                f"run {run_id} is being driven by another process, which resumes it with the "
                "decision stored"
            )
        if self.pending(run_id) != pending:
            self._release(run_id)
            raise NotPaused(f"run {run_id} no longer waits for approval #{approval.id}")
        return answer

    # -- recovery --------------------------------------------------------------------------

    def interrupted_runs(self) -> list[str]:
        """Runs whose driving process died before they paused or finished."""
        with transaction(self.engine) as session:
            rows = session.exec(select(LoopRun).where(LoopRun.owner.is_not(None))).all()
        now = utcnow()
        stale = [run.id for run in rows if owner_gone(run.owner, run.updated_at, now)]
        # Decided (compare-and-set won) but never resumed: the decider died in between.
        with transaction(self.engine) as session:
            undelivered = session.exec(
                select(LoopRun.id)
                .join(Approval, Approval.run_id == LoopRun.id)
                .where(
                    LoopRun.status == "paused",
                    LoopRun.owner.is_(None),
                    Approval.decided_at < now - DECIDED_GRACE,
                    Approval.status.in_(("approved", "rejected")),
                    Approval.channel != "shadow-review",
                )
            ).all()
        return stale + [run_id for run_id in undelivered if run_id not in stale]

    def recover_quietly(self) -> list[str]:
        """Recover interrupted runs as a side job (at the start of run, watch and the service):
        a run that cannot be recovered now stays interrupted for the next try. The ids handled."""
        handled = []
        for run_id in self.interrupted_runs():
            try:
                self.recover(run_id)
            except Exception as exc:  # noqa: BLE001 - the caller's own work must not fail for another run
                log.warning("run %s stays interrupted: %s: %s", run_id, type(exc).__name__, exc)
                continue
            handled.append(run_id)
        return handled

    def recover_interrupted(self) -> list[dict[str, Any]]:
        """Recover every interrupted run (see :meth:`recover`); what each came to."""
        results = []
        for run_id in self.interrupted_runs():
            try:
                results.append(self.recover(run_id))
            except NotPaused:
                continue  # another process took it over first
        return results

    def recover(self, run_id: str) -> dict[str, Any]:
        """Resume a run from its last checkpoint after a crash, exactly once.

        Takes the run over (a compare-and-set on its owner; NotPaused if a live process
        drives it), resolves the writes it left in flight against the system, then
        continues the graph: a decided approval resumes with the stored decision, a pending
        one or a wait for evidence stays paused, an interrupted step runs again.
        """
        with transaction(self.engine) as session:
            run = session.get(LoopRun, run_id)
            if run is None:
                raise RunNotFound(f"no run {run_id!r} in the store")
            previous = run.owner
        if (
            previous
            and previous != owner_id()
            and not owner_gone(previous, run.updated_at, utcnow())
        ):
            raise NotPaused(f"run {run_id} is being driven by {previous}; nothing to recover")
        if not self._claim(run_id, previous):
            raise NotPaused(f"run {run_id} was taken over by another process")
        try:
            state = run.api_url or ""
            for row in unresolved_executions(self.engine, run_id):
                reconcile(self.context, row.id, state)
            snapshot = self.graph.get_state(self._config(run_id))
            if not snapshot.values:  # killed before the first checkpoint: start it over
                return self._restart(run_id)
            pending = self.pending(run_id)
            if pending and pending.get("kind") == "approval":
                with transaction(self.engine) as session:
                    approval = session.get(Approval, pending["approval_id"])
                if approval.status == "pending":
                    return {**self.state(run_id), "pending": pending}
                answer = {
                    "decision": "approve" if approval.status == "approved" else "reject",
                    "by": approval.decided_by or "unknown",
                    "comment": approval.comment,
                    "channel": approval.channel,
                }
                return self._invoke(Command(resume=answer), run_id)
            if pending is not None or not snapshot.next:
                return self._sync_status(run_id)
            return self._invoke(None, run_id)
        except (ValueError, NotPaused):
            raise
        except Exception:
            self._mark_failed(run_id)
            raise
        finally:
            self._release(run_id)

    def _restart(self, run_id: str) -> dict[str, Any]:
        with transaction(self.engine) as session:
            run = session.get(LoopRun, run_id)
        return self._invoke(
            {
                "run_id": run_id,
                "scope": run.scope,
                "api_url": run.api_url,
                "catalog_version": run.catalog_version,
                "steps": [],
            },
            run_id,
        )

    def _sync_status(self, run_id: str) -> dict[str, Any]:
        state = {**self.state(run_id), "pending": self.pending(run_id)}
        with transaction(self.engine) as session:
            run = session.get(LoopRun, run_id)
            if state["pending"] is None and state.get("outcome") in FINISHED:
                run.status = state["outcome"]
            elif state["pending"] and state["pending"].get("kind") == "approval":
                run.status = "paused"
            run.owner, run.updated_at = None, utcnow()
        return state

    def _claim(self, run_id: str, previous: str | None) -> bool:
        """Become the run's owner if nobody took it since we looked (compare-and-set)."""
        with transaction(self.engine) as session:
            condition = LoopRun.owner.is_(None) if previous is None else LoopRun.owner == previous
            return (
                session.exec(
                    update(LoopRun)
                    .where(LoopRun.id == run_id, condition)
                    .values(owner=owner_id(), updated_at=utcnow())
                ).rowcount
                == 1
            )

    def _release(self, run_id: str) -> None:
        with transaction(self.engine) as session:
            session.exec(
                update(LoopRun)
                .where(LoopRun.id == run_id, LoopRun.owner == owner_id())
                .values(owner=None, updated_at=utcnow())
            )

    def pending(self, run_id: str) -> dict[str, Any] | None:
        """The interrupt a run waits on, or None."""
        snapshot = self.graph.get_state(self._config(run_id))
        if not snapshot.values:
            raise RunNotFound(f"no run {run_id!r} in the store")
        interrupts = snapshot.interrupts
        return interrupts[0].value if interrupts else None

    def state(self, run_id: str) -> dict[str, Any]:
        """The current state values of a run."""
        return dict(self.graph.get_state(self._config(run_id)).values)

    def run_of_approval(self, approval_id: int) -> str:
        """The run an approval belongs to."""
        with transaction(self.engine) as session:
            approval = session.get(Approval, approval_id)
            if approval is None:
                raise RunNotFound(f"no approval {approval_id}")
            return approval.run_id

    def _invoke(self, value: Any, run_id: str) -> dict[str, Any]:
        """Drive the graph as the run's owner, checkpointing every step before the next begins."""
        with transaction(self.engine) as session:
            session.exec(
                update(LoopRun)
                .where(LoopRun.id == run_id)
                .values(owner=owner_id(), updated_at=utcnow())
            )
        try:
            self.graph.invoke(value, self._config(run_id), context=self.context, durability="sync")
        finally:
            self._release(run_id)
        return {**self.state(run_id), "pending": self.pending(run_id)}

    @staticmethod
    def _config(run_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": run_id}}
