"""Start, pause and resume closed-loop runs with a durable checkpointer in the store's database."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

from langgraph.types import Command
from pydantic import BaseModel
from sqlalchemy.engine import make_url

from closedloop.agents.binding import bind_catalog
from closedloop.agents.context import LoopContext
from closedloop.contracts import ApprovalAnswer, NotPaused, RunNotFound, RunStatus
from closedloop.graphs.loop import build_graph
from closedloop.settings import Settings
from closedloop.store.db import open_store, transaction
from closedloop.store.models import Approval, LoopRun, utcnow

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
        with Connection.connect(conninfo, autocommit=True, prepare_threshold=0, row_factory=dict_row) as conn:
            saver = PostgresSaver(conn)
            saver.setup()
            yield saver


class LoopRunner:
    """Drives closed-loop runs for one process; open it as a context manager."""

    def __init__(self, settings: Settings, api_client_factory: Any = None) -> None:
        self.settings = settings
        self.url = settings.resolved_database_url()
        self.engine = open_store(self.url)
        self.context = LoopContext(settings=settings, engine=self.engine, api_client_factory=api_client_factory)
        self._cp_cm = None
        self.graph = None

    def __enter__(self) -> Self:
        self._cp_cm = checkpointer(self.url)
        self.graph = build_graph().compile(checkpointer=self._cp_cm.__enter__())
        return self

    def __exit__(self, *exc: object) -> None:
        self.context.close()
        self._cp_cm.__exit__(*exc)

    def start(self, api_url: str | None, scope: str | None = None,
              run_id: str | None = None) -> dict[str, Any]:
        """Begin a new run against the enterprise system at ``api_url`` (None: the connector's
        default base URL) through the configured connector; returns the state where it stopped.

        The run is bound to the connector's catalog version (stored in the store), so a resumed
        run acts through exactly the catalog it planned with.
        """
        run_id = run_id or f"run-{uuid.uuid4().hex[:12]}"
        scope = scope or self.settings.default_scope
        with transaction(self.engine) as session:
            session.add(LoopRun(id=run_id, scope=scope, api_url=api_url))
        try:
            version, base_url = bind_catalog(self.settings, self.engine, api_url)
            with transaction(self.engine) as session:
                run = session.get(LoopRun, run_id)
                run.catalog_version, run.api_url = version, base_url
            return self._invoke({"run_id": run_id, "scope": scope, "api_url": base_url,
                                 "catalog_version": version, "steps": []}, run_id)
        except Exception:
            self._mark_failed(run_id)
            raise

    def _mark_failed(self, run_id: str) -> None:
        failed: RunStatus = "failed"
        with transaction(self.engine) as session:
            run = session.get(LoopRun, run_id)
            if run is not None:
                run.status, run.updated_at = failed, utcnow()

    def resume(self, run_id: str, value: ApprovalAnswer | dict[str, Any] | None, expect: str) -> dict[str, Any]:
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
        # LangGraph treats a falsy resume value as "no resume": always send something.
        try:
            return self._invoke(Command(resume=value or {"resumed": True}), run_id)
        except (ValueError, NotPaused):
            raise  # a refused answer leaves the run paused, not failed
        except Exception:
            self._mark_failed(run_id)
            raise

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
        self.graph.invoke(value, self._config(run_id), context=self.context)
        return {**self.state(run_id), "pending": self.pending(run_id)}

    @staticmethod
    def _config(run_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": run_id}}
