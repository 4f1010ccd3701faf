"""What the chat reads and changes in closedloop's store: pending approvals, rollout status,
the kill switch. Blocking (database) calls: run them in a worker thread.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel import select

from closedloop.chat.render import Md, md_table, md_text, pct
from closedloop.governance import find_policy, set_policy
from closedloop.settings import Settings
from closedloop.store.db import open_store, transaction
from closedloop.store.models import Approval, Execution, LoopRun, Plan


class PendingApproval(BaseModel):
    """A plan waiting for a decision, as an approver needs to see it."""

    approval_id: int
    run_id: str
    plan_id: int
    scope: str
    hypothesis: str
    action: str
    predicted_pct: float | None
    ci_low_pct: float | None
    ci_high_pct: float | None
    risk_tier: str
    share_of_cases: float
    requested_at: datetime


def _engine(settings: Settings) -> Any:
    return open_store(settings.resolved_database_url())


def pending_approvals(settings: Settings, limit: int = 20) -> list[PendingApproval]:
    """Approvals still pending, oldest first."""
    with transaction(_engine(settings)) as session:
        rows = session.exec(
            select(Approval, Plan)
            .where(Approval.plan_id == Plan.id)
            .where(Approval.status == "pending")
            .order_by(Approval.requested_at)
            .limit(limit)
        ).all()
        out = []
        for approval, plan in rows:
            predicted = plan.predicted or {}
            action = (plan.actions or [{}])[0]
            out.append(
                PendingApproval(
                    approval_id=approval.id,
                    run_id=approval.run_id,
                    plan_id=plan.id,
                    scope=plan.scope,
                    hypothesis=plan.hypothesis,
                    action=str(action.get("action") or action.get("name") or "change"),
                    predicted_pct=predicted.get("delta_pct"),
                    ci_low_pct=predicted.get("ci_low_pct"),
                    ci_high_pct=predicted.get("ci_high_pct"),
                    risk_tier=plan.risk_tier,
                    share_of_cases=float((plan.blast_radius or {}).get("share_of_cases", 0.0)),
                    requested_at=approval.requested_at,
                )
            )
        return out


def pending_md(pending: list[PendingApproval], can_decide: bool) -> Md:
    """The pending approvals as a table, with who may decide them."""
    if not pending:
        return Md("### Pending approvals\n\nNothing waits for an approval.")

    def effect(p: PendingApproval) -> Md:
        if p.predicted_pct is None:
            return Md("-")
        interval = (
            f" [{p.ci_low_pct:+.1f}%, {p.ci_high_pct:+.1f}%]"
            if p.ci_low_pct is not None and p.ci_high_pct is not None
            else ""
        )
        return Md(f"{p.predicted_pct:+.1f}%{interval}")

    table = md_table(
        [
            "Approval",
            "Run",
            "Scope",
            "Change",
            "Predicted cycle time (95% interval)",
            "Risk",
            "Share of cases",
        ],
        [
            (
                p.approval_id,
                p.run_id,
                p.scope,
                p.hypothesis,
                effect(p),
                p.risk_tier,
                pct(p.share_of_cases),
            )
            for p in pending
        ],
        align="rlllrlr",
    )
    who = (
        "You can decide the plan of this chat's run with its buttons; others with "
        "`closedloop approve ID` or in Teams."
        if can_decide
        else "You do not hold the approver role: an approver decides these."
    )
    return Md(f"### Pending approvals ({len(pending)})\n\n{table}\n\n{who}")


def scope_status(settings: Settings, scope: str, run_id: str | None) -> dict[str, Any]:
    """The scope's autonomy and kill switch, and the run's status, plan and executions."""
    with transaction(_engine(settings)) as session:
        policy = find_policy(session, scope)
        out: dict[str, Any] = {
            "scope": scope,
            "mode": policy.mode if policy else settings.default_mode,
            "kill_switch": bool(policy and policy.kill_switch),
            "run": None,
        }
        if run_id:
            run = session.get(LoopRun, run_id)
            plans = session.exec(select(Plan).where(Plan.run_id == run_id)).all()
            plan_ids = [p.id for p in plans]
            executions = (
                session.exec(select(Execution).where(Execution.plan_id.in_(plan_ids))).all()
                if plan_ids
                else []
            )
            out["run"] = {
                "id": run_id,
                "status": run.status if run else "unknown",
                "plans": [
                    {"id": p.id, "status": p.status, "hypothesis": p.hypothesis, "cohort": p.cohort}
                    for p in plans
                ],
                "executions": [{"id": e.id, "status": e.status} for e in executions],
            }
        return out


def status_md(status: dict[str, Any]) -> Md:
    """The rollout status in words."""
    switch = "ON: every write of this scope is stopped" if status["kill_switch"] else "off"
    lines = [
        f"### Rollout status of scope {md_text(status['scope'], 60)}",
        "",
        f"- Autonomy: **{md_text(status['mode'], 30)}**; kill switch **{switch}**",
    ]
    run = status.get("run")
    if not run:
        lines.append("- No closed-loop run in this chat yet: start one to see its rollout.")
        return Md("\n".join(lines))
    lines.append(f"- Run {md_text(run['id'], 60)}: {md_text(run['status'], 30)}")
    for p in run["plans"]:
        share = (p.get("cohort") or {}).get("treatment_share")
        cohort = f", treatment share {pct(float(share))}" if isinstance(share, (int, float)) else ""
        lines.append(
            f"- Plan #{int(p['id'])} ({md_text(p['status'], 30)}{cohort}): {md_text(p['hypothesis'], 200)}"
        )
    done = sum(1 for e in run["executions"] if e["status"] == "succeeded")
    if run["executions"]:
        lines.append(f"- Executions: {done} of {len(run['executions'])} succeeded")
    return Md("\n".join(lines))


def set_kill_switch(settings: Settings, scope: str, on: bool, by: str) -> bool:
    """Turn the scope's kill switch on or off (audited with ``by`` and channel ``chat``)."""
    with transaction(_engine(settings)) as session:
        policy = set_policy(session, scope, kill_switch=on, by=by, channel="chat")
        return policy.kill_switch
