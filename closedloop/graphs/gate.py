"""The gate node: the scope's policy decides shadow, approval or supervised action.

The decision itself is :func:`closedloop.governance.route_plan`; this node
loads the plan and policy, records the route, and opens the approval.
"""

from __future__ import annotations

from typing import Any

from closedloop.agents.context import LoopContext
from closedloop.governance import policy_for, route_plan
from closedloop.store.db import transaction
from closedloop.store.models import Approval, AuditEvent, LoopRun, Plan, utcnow


def gate(ctx: LoopContext, run_id: str, plan_id: int) -> dict[str, Any]:
    """Route a plan: blocked (kill switch), shadow (record only), approval, or execute
    (supervised, within caps)."""
    with transaction(ctx.engine) as session:
        plan = session.get(Plan, plan_id)
        policy = policy_for(session, plan.scope, ctx.settings.default_mode)
        decision = route_plan(policy.mode, policy.kill_switch, plan.risk_tier,
                              plan.blast_radius.get("share_of_cases", 1.0), policy.caps)
        route, plan.status = decision.route, decision.plan_status
        approval_id = None
        if route == "execute":
            approval = Approval(plan_id=plan_id, run_id=run_id, status="approved", channel="policy",
                                decided_by=f"policy:{policy.scope}:supervised", decided_at=utcnow(),
                                comment="within supervised caps")
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
        session.add(AuditEvent(run_id=run_id, actor="gate", kind="gate",
                               payload={"plan_id": plan_id, "mode": policy.mode,
                                        "kill_switch": policy.kill_switch,
                                        "within_caps": decision.within_caps, "route": route}))
    step = {"step": "gate", "mode": policy.mode, "kill_switch": policy.kill_switch, "route": route,
            "risk_tier": plan.risk_tier, "approval_id": approval_id}
    update: dict[str, Any] = {"gate": route, "approval_id": approval_id, "steps": [step]}
    if route in ("blocked", "shadow"):
        update["outcome"] = "blocked" if route == "blocked" else "shadowed"
    return update


def record_decision(ctx: LoopContext, run_id: str, approval_id: int, resume: Any) -> dict[str, Any]:
    """Apply an approver's answer (after the interrupt). Only approve/reject count; text is kept
    as a comment."""
    decision = resume.get("decision") if isinstance(resume, dict) else resume
    if decision not in ("approve", "reject"):
        raise ValueError(f"an approval answer must be 'approve' or 'reject', got {decision!r}")
    by = str(resume.get("by", "unknown"))[:200] if isinstance(resume, dict) else "unknown"
    comment = str(resume.get("comment", ""))[:2000] if isinstance(resume, dict) else ""
    channel = str(resume.get("channel", "cli"))[:40] if isinstance(resume, dict) else "cli"
    with transaction(ctx.engine) as session:
        approval = session.get(Approval, approval_id)
        plan = session.get(Plan, approval.plan_id)
        policy = policy_for(session, plan.scope, ctx.settings.default_mode)
        if approval.status == "pending":
            approval.status = "approved" if decision == "approve" else "rejected"
            approval.decided_by, approval.comment, approval.channel = by, comment, channel
            approval.decided_at = utcnow()
        if approval.status == "approved" and policy.kill_switch:
            approval.comment += " [kill switch on: not executed]"
            plan.status = "blocked"
        else:
            plan.status = approval.status
        run = session.get(LoopRun, run_id)
        run.status, run.updated_at = "running", utcnow()
        session.add(AuditEvent(run_id=run_id, actor="approver", kind="decision",
                               payload={"approval_id": approval_id, "decision": approval.status,
                                        "by": by}))
        final = plan.status
    step = {"step": "approval", "approval_id": approval_id, "decision": approval.status, "by": by}
    update: dict[str, Any] = {"decision": final, "steps": [step]}
    if final != "approved":
        update["outcome"] = "rejected" if final == "rejected" else "blocked"
    return update
