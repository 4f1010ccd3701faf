"""What the endpoints share: the store, one LoopRunner, per-run locks and the decision logic.

A decision resumes a paused loop at most once: under the run's lock the
approval is re-read, and only a still-pending approval that the run is really
waiting for is resumed. A replay of a decided approval gets the decided view.
(The lock is per process; across processes the graph's own check in
``record_decision`` and the idempotency keys on every write still hold.)
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine
from sqlmodel import select

from closedloop import governance
from closedloop.api.models import (
    ApprovalView,
    AuditChain,
    AuditEventView,
    PendingInterrupt,
    PolicyView,
    RunView,
)
from closedloop.contracts import NotPaused, RunNotFound
from closedloop.graphs.runner import LoopRunner
from closedloop.report import audit_chain
from closedloop.settings import Settings
from closedloop.store.db import open_store, transaction
from closedloop.store.models import Approval, AuditEvent, LoopRun, Plan, Policy
from closedloop.tools.errors import ToolError

log = logging.getLogger(__name__)

QUESTION_KIND = "question"
RunnerFactory = Callable[[Settings], LoopRunner]


class UrlNotAllowed(ValueError):
    """A caller-supplied API URL that is not the connector's configured base URL (answered 422)."""


def normalise_url(url: str) -> str:
    """``scheme://host:port/path`` with the default port spelled out, lower-case, no trailing slash."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}{parts.path.rstrip('/')}"


class RunFailed(RuntimeError):
    """A new run stopped on a tool error (e.g. the enterprise API is unreachable)."""

    def __init__(self, run_id: str, error: ToolError) -> None:
        first_line = (str(error).splitlines() or [""])[0]
        super().__init__(f"run {run_id} stopped: {type(error).__name__}: {first_line}")
        self.run_id = run_id


@dataclass
class Decided:
    """An approval after a decision (or a replay of one), with its plan and run rows."""

    approval: Approval
    plan: Plan
    run: LoopRun
    replayed: bool
    state: dict[str, Any] | None = None


class Service:
    """Store access and loop control for one app; thread-safe for the endpoints."""

    def __init__(self, settings: Settings, runner_factory: RunnerFactory | None = None) -> None:
        self.settings = settings
        self.engine: Engine = open_store(settings.resolved_database_url())
        self._runner_factory = runner_factory or LoopRunner
        self._runner: LoopRunner | None = None
        self._runner_lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        # Called with a new approval's id when a run pauses for one (the Teams bot posts its card).
        self.notify: Callable[[int | None], None] | None = None
        self.jobs: Any = None  # closedloop.api.jobs.Jobs, set by its router

    # -- lifecycle ---------------------------------------------------------------------

    def recover_interrupted(self) -> list[str]:
        """Finish the runs a crash of any process left interrupted (ids handled; never raises)."""
        try:
            recover = getattr(self.runner, "recover_quietly", None)
            return recover() if recover is not None else []
        except Exception:  # start-up must not fail because of an old run
            log.exception("recovering interrupted runs failed")
            return []

    @property
    def runner(self) -> LoopRunner:
        """The process's LoopRunner, opened on first use (its checkpointer lives in the store's database)."""
        with self._runner_lock:
            if self._runner is None:
                runner = self._runner_factory(self.settings)
                self._runner = runner.__enter__()
            return self._runner

    def close(self) -> None:
        if self.jobs is not None:
            self.jobs.close()
        with self._runner_lock:
            if self._runner is not None:
                self._runner.__exit__(None, None, None)
                self._runner = None

    @contextmanager
    def run_lock(self, run_id: str) -> Iterator[None]:
        """Serialise everything that resumes ``run_id`` in this process."""
        with self._locks_lock:
            lock = self._locks.setdefault(run_id, threading.Lock())
        with lock:
            yield

    # -- runs ----------------------------------------------------------------------------

    def configured_base_urls(self) -> list[str]:
        """The enterprise API base URLs the connector's credentials may be sent to."""
        from closedloop.tools.act import load_manifest

        urls = [self.settings.sandbox_url] if self.settings.sandbox_url else []
        manifest_url = load_manifest(self.settings.connector or None).base_url
        if manifest_url:
            urls.append(manifest_url)
        return urls

    def checked_api_url(self, api_url: str | None) -> str | None:
        """``api_url`` when it is a configured base URL (else UrlNotAllowed); None picks the configured one.

        The connector sends its enterprise token to the run's URL, so a caller may not choose it (SSRF).
        """
        allowed = self.configured_base_urls()
        if api_url is None:
            if not allowed:
                raise UrlNotAllowed(
                    "no enterprise API is configured: set CLOSEDLOOP_SANDBOX_URL or give the "
                    "connector manifest a base_url"
                )
            return allowed[0].rstrip("/")
        if normalise_url(api_url) not in {normalise_url(u) for u in allowed}:
            raise UrlNotAllowed(
                "api_url is not the connector's configured base URL; the connector's "
                "credentials are only sent there (configure CLOSEDLOOP_SANDBOX_URL)"
            )
        return api_url

    def start_run(self, api_url: str | None, scope: str | None, by: str = "api") -> RunView:
        """Run a new loop until it pauses or ends; a tool failure becomes RunFailed naming the run."""
        api_url = self.checked_api_url(api_url)
        run_id = f"run-{uuid.uuid4().hex[:12]}"
        try:
            self.runner.start(api_url, scope=scope, run_id=run_id)
        except ToolError as exc:
            raise RunFailed(run_id, exc) from exc
        self._audit(run_id, by, "surface", {"action": "start_run", "channel": "api"})
        view = self.run_view(run_id)
        self._announce(view)
        return view

    def _announce(self, view: RunView) -> None:
        """Post a new approval to the configured Teams conversation (when one is configured)."""
        if self.notify is not None and view.pending is not None and view.pending.kind == "approval":
            self.notify(view.pending.approval_id)

    def _audit(self, run_id: str, actor: str, kind: str, payload: dict[str, Any]) -> None:
        with transaction(self.engine) as session:
            session.add(AuditEvent(run_id=run_id, actor=actor[:200], kind=kind, payload=payload))

    def give_evidence(self, run_id: str, by: str = "api") -> RunView:
        """Resume a run that waits for evidence (the world has run on since it acted)."""
        with self.run_lock(run_id):
            self.run_view(run_id)  # 404 for an unknown run
            try:
                self.runner.resume(run_id, {"checked_by": "api"}, expect="evidence")
            except (
                RunNotFound
            ) as exc:  # a row without a checkpoint; the runner's message names the database
                raise NotPaused(
                    f"run {run_id} has no checkpoint; it is not waiting for evidence"
                ) from exc
        self._audit(run_id, by, "surface", {"action": "evidence", "channel": "api"})
        view = self.run_view(run_id)
        self._announce(view)
        return view

    def run_view(self, run_id: str) -> RunView:
        with transaction(self.engine) as session:
            run = session.get(LoopRun, run_id)
            if run is None:
                raise RunNotFound(f"no run {run_id!r}")
        runner = self.runner
        state = runner.state(run_id)
        try:
            pending = runner.pending(run_id)
        except RunNotFound:  # the run's row exists but it failed before its first checkpoint
            pending = None
        return RunView(
            run_id=run.id,
            scope=run.scope,
            status=run.status,
            api_url=run.api_url,
            outcome=state.get("outcome"),
            decision=state.get("decision"),
            plan_id=state.get("plan_id"),
            approval_id=state.get("approval_id"),
            pending=PendingInterrupt.model_validate(pending) if pending else None,
            steps=list(state.get("steps", [])),
            audit_chain=AuditChain.model_validate({**audit_chain(state), "run_id": run.id}),
            created_at=run.created_at,
            updated_at=run.updated_at,
        )

    def audit_events(self, run_id: str) -> list[AuditEventView]:
        with transaction(self.engine) as session:
            if session.get(LoopRun, run_id) is None:
                raise RunNotFound(f"no run {run_id!r}")
            rows = session.exec(
                select(AuditEvent).where(AuditEvent.run_id == run_id).order_by(AuditEvent.id)
            ).all()
            return [AuditEventView.model_validate(row, from_attributes=True) for row in rows]

    # -- approvals -----------------------------------------------------------------------

    def rows(self, approval_id: int) -> tuple[Approval, Plan, LoopRun]:
        """The approval with its plan and run (fresh from the store)."""
        with transaction(self.engine) as session:
            approval = session.get(Approval, approval_id)
            if approval is None:
                raise RunNotFound(f"no approval {approval_id}")
            plan = session.get(Plan, approval.plan_id)
            run = session.get(LoopRun, approval.run_id)
            return approval, plan, run

    def approvals(
        self, status: str | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[ApprovalView]:
        """Approvals, newest first."""
        with transaction(self.engine) as session:
            query = (
                select(Approval, Plan)
                .join(Plan, Plan.id == Approval.plan_id)
                .order_by(Approval.id.desc())
                .limit(limit)
            )
            if status is not None:
                query = query.where(Approval.status == status)
            if run_id is not None:
                query = query.where(Approval.run_id == run_id)
            return [approval_view(a, p) for a, p in session.exec(query).all()]

    def decide(
        self, approval_id: int, decision: str, by: str, comment: str, channel: str
    ) -> Decided:
        """Resume the run waiting on ``approval_id`` once; a decided approval comes back as a replay."""
        approval, _, _ = self.rows(approval_id)
        with self.run_lock(approval.run_id):
            approval, plan, run = self.rows(approval_id)
            if approval.status != "pending":
                return Decided(approval, plan, run, replayed=True)
            runner = self.runner
            try:
                pending = runner.pending(run.id)
            except (
                RunNotFound
            ) as exc:  # a row without a checkpoint; the runner's message names the database
                raise NotPaused(
                    f"run {run.id} has no checkpoint; it is not waiting for approval #{approval_id}"
                ) from exc
            if (
                not pending
                or pending.get("kind") != "approval"
                or pending.get("approval_id") != approval_id
            ):
                waits = (
                    f"{pending.get('kind')} #{pending.get('approval_id')}" if pending else "nothing"
                )
                raise NotPaused(
                    f"run {run.id} is not waiting for approval #{approval_id} (it waits for {waits})"
                )
            state = runner.resume(
                run.id,
                {"decision": decision, "by": by, "comment": comment, "channel": channel},
                expect="approval",
            )
            approval, plan, run = self.rows(approval_id)
            return Decided(approval, plan, run, replayed=False, state=state)

    def ask(self, approval_id: int, by: str, text: str, channel: str) -> None:
        """Store a question or comment on a pending approval for the loop's people (nothing resumes)."""
        approval, _, _ = self.rows(approval_id)
        if approval.status != "pending":
            raise NotPaused(
                f"approval #{approval_id} was already {approval.status}; ask on a pending one"
            )
        self._audit(
            approval.run_id,
            by,
            QUESTION_KIND,
            {"approval_id": approval_id, "text": text[:2000], "channel": channel},
        )

    def questions(self, approval_id: int) -> list[dict[str, Any]]:
        """Questions asked on ``approval_id``, oldest first: ``{by, text, channel, at}``."""
        approval, _, _ = self.rows(approval_id)
        with transaction(self.engine) as session:
            rows = session.exec(
                select(AuditEvent)
                .where(AuditEvent.run_id == approval.run_id, AuditEvent.kind == QUESTION_KIND)
                .order_by(AuditEvent.id)
            ).all()
            return [
                {
                    "by": r.actor,
                    "text": r.payload.get("text", ""),
                    "channel": r.payload.get("channel"),
                    "at": r.created_at,
                }
                for r in rows
                if r.payload.get("approval_id") == approval_id
            ]

    # -- policies ------------------------------------------------------------------------

    def policy(
        self,
        scope: str,
        mode: str | None = None,
        kill_switch: bool | None = None,
        by: str = "api",
        channel: str = "api",
    ) -> PolicyView:
        """The scope's policy, changed (and audited) when ``mode`` or ``kill_switch`` is given."""
        with transaction(self.engine) as session:
            if mode is None and kill_switch is None:
                policy = governance.policy_for(session, scope, self.settings.default_mode)
            else:
                policy = governance.set_policy(
                    session,
                    scope,
                    mode=mode,
                    kill_switch=kill_switch,
                    by=by,
                    channel=channel,
                    default_mode=self.settings.default_mode,
                )
            return policy_view(policy)

    def policies(self) -> list[PolicyView]:
        """Every scope's policy, by scope."""
        with transaction(self.engine) as session:
            return [
                policy_view(p) for p in session.exec(select(Policy).order_by(Policy.scope)).all()
            ]

    def find_policy(self, scope: str) -> PolicyView:
        """The scope's policy; RunNotFound (404) when it was never used."""
        with transaction(self.engine) as session:
            policy = governance.find_policy(session, scope)
            if policy is None:
                raise RunNotFound(f"no policy for scope {scope!r} yet")
            return policy_view(policy)


def approval_view(approval: Approval, plan: Plan) -> ApprovalView:
    return ApprovalView(
        id=approval.id,
        run_id=approval.run_id,
        plan_id=approval.plan_id,
        status=approval.status,
        channel=approval.channel,
        decided_by=approval.decided_by,
        comment=approval.comment,
        requested_at=approval.requested_at,
        decided_at=approval.decided_at,
        scope=plan.scope,
        hypothesis=plan.hypothesis,
        risk_tier=plan.risk_tier,
        plan_status=plan.status,
    )


def policy_view(policy: Policy) -> PolicyView:
    return PolicyView(
        scope=policy.scope,
        mode=policy.mode,
        kill_switch=policy.kill_switch,
        caps=dict(policy.caps),
        updated_at=policy.updated_at,
        updated_by=policy.updated_by,
    )
