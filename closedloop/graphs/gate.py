"""The gate node: the scope's policy decides shadow, approval or supervised action.

The decision itself is :func:`closedloop.governance.route_plan`; this node
loads the plan and policy, records the route, and opens the approval.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import select

from closedloop.agents.context import LoopContext
from closedloop.contracts import NotPaused
from closedloop.governance import kill_switch_on, policy_for, route_plan
from closedloop.store.db import transaction
from closedloop.store.models import Approval, AuditEvent, LoopRun, Plan, utcnow


class AlreadyDecided(NotPaused):
    """Someone else decided this approval first (another surface, process or click)."""

    def __init__(self, approval: Approval) -> None:
        self.approval = approval
        when = approval.decided_at.isoformat() if approval.decided_at else "earlier"
        super().__init__(
            f"run {approval.run_id} is not waiting for approval #{approval.id}: it "
            f"was already {approval.status} by {approval.decided_by} "
            f"({approval.channel}, {when})"
        )


def decide_approval(
    engine: Engine,
    approval_id: int,
    decision: str,
    by: str,
    comment: str = "",
    channel: str = "cli",
) -> tuple[bool, Approval]:
    """Decide a pending approval with one atomic compare-and-set in the store
    (``UPDATE approval ... WHERE id = ? AND status = 'pending'``).

    Returns (True, the approval) for the one caller that decided it, (False, the approval as
    decided) for everyone else, whichever process or surface they came from.
    """
    if decision not in ("approve", "reject"):
        raise ValueError(f"an approval answer must be 'approve' or 'reject', got {decision!r}")
    status = "approved" if decision == "approve" else "rejected"
    with transaction(engine) as session:
        won = (
            session.exec(
                update(Approval)
                .where(Approval.id == approval_id, Approval.status == "pending")
                .values(
                    status=status,
                    decided_by=by[:200],
                    comment=comment[:2000],
                    channel=channel[:40],
                    decided_at=utcnow(),
                )
            ).rowcount
            == 1
        )
    with transaction(engine) as session:
        approval = session.get(Approval, approval_id)
    if approval is None:
        raise NotPaused(f"no approval #{approval_id}")
    return won, approval


def gate(ctx: LoopContext, run_id: str, plan_id: int) -> dict[str, Any]:
    """Route a plan: blocked (kill switch), shadow (record only), approval, or execute
    (supervised, within caps)."""
    with transaction(ctx.engine) as session:
        plan = session.get(Plan, plan_id)
        policy = policy_for(session, plan.scope, ctx.settings.default_mode)
        killed = kill_switch_on(session, plan.scope)  # the scope's or the global one
        decision = route_plan(
            policy.mode,
            killed,
            plan.risk_tier,
            plan.blast_radius.get("share_of_cases", 1.0),
            policy.caps,
        )
        route, plan.status = decision.route, decision.plan_status
        approval_id = None
        # A gate re-run after a crash reuses the approval it opened: one approval per plan.
        existing = session.exec(
            select(Approval).where(Approval.plan_id == plan_id, Approval.channel != "shadow-review")
        ).first()
        if existing is not None and route in ("execute", "approval"):
            approval_id = existing.id
            if existing.status == "pending" and route == "approval":
                run = session.get(LoopRun, run_id)
                run.status, run.updated_at = "paused", utcnow()
            route = (
                "approval"
                if existing.status == "pending" or existing.channel != "policy"
                else route
            )
            if existing.status != "pending":
                plan.status = existing.status
        elif route == "execute":
            approval = Approval(
                plan_id=plan_id,
                run_id=run_id,
                status="approved",
                channel="policy",
                decided_by=f"policy:{policy.scope}:supervised",
                decided_at=utcnow(),
                comment="within supervised caps",
            )
            session.add(approval)
            session.flush()
            approval_id = approval.id
        elif route == "approval":
            approval = Approval(plan_id=plan_id, run_id=run_id)
            session.add(approval)
            session.flush()
            approval_id = approval.id
            run = session.get(LoopRun, run_id)
            run.status, run.updated_at = "paused", utcnow()
        session.add(
            AuditEvent(
                run_id=run_id,
                actor="gate",
                kind="gate",
                payload={
                    "plan_id": plan_id,
                    "mode": policy.mode,
                    "kill_switch": killed,
                    "within_caps": decision.within_caps,
                    "route": route,
                },
            )
        )
    step = {
        "step": "gate",
        "mode": policy.mode,
        "kill_switch": killed,
        "route": route,
        "risk_tier": plan.risk_tier,
        "approval_id": approval_id,
    }
    update: dict[str, Any] = {"gate": route, "approval_id": approval_id, "steps": [step]}
    if route in ("blocked", "shadow"):
        update["outcome"] = "blocked" if route == "blocked" else "shadowed"
    return update


def record_decision(ctx: LoopContext, run_id: str, approval_id: int, resume: Any) -> dict[str, Any]:
    """Apply an approver's answer (after the interrupt). Only approve/reject count; text is kept
    as a comment.

    The approval is decided by :func:`decide_approval` (a no-op when the runner already did,
    or when someone else decided first): what counts is the decision stored, never the
    answer that happened to resume the graph.
    """
    decision = resume.get("decision") if isinstance(resume, dict) else resume
    by = str(resume.get("by", "unknown"))[:200] if isinstance(resume, dict) else "unknown"
    comment = str(resume.get("comment", ""))[:2000] if isinstance(resume, dict) else ""
    channel = str(resume.get("channel", "cli"))[:40] if isinstance(resume, dict) else "cli"
    _, approval = decide_approval(ctx.engine, approval_id, decision, by, comment, channel)
    with transaction(ctx.engine) as session:
        approval = session.get(Approval, approval_id)
        plan = session.get(Plan, approval.plan_id)
        if approval.status == "approved" and kill_switch_on(session, plan.scope):
            approval.comment += " [kill switch on: not executed]"
            plan.status = "blocked"
        elif plan.status in ("awaiting_approval", "proposed"):
            plan.status = approval.status
        run = session.get(LoopRun, run_id)
        run.status, run.updated_at = "running", utcnow()
        session.add(
            AuditEvent(
                run_id=run_id,
                actor="approver",
                kind="decision",
                payload={
                    "approval_id": approval_id,
                    "decision": approval.status,
                    "by": approval.decided_by,
                },
            )
        )
        final = plan.status
    step = {
        "step": "approval",
        "approval_id": approval_id,
        "decision": approval.status,
        "by": approval.decided_by,
    }
    update: dict[str, Any] = {"decision": final, "steps": [step]}
    if final != "approved":
        update["outcome"] = "rejected" if final == "rejected" else "blocked"
    return update
