"""Learn: close the run and adjust the scope's autonomy from the verdict."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from closedloop.agents.context import LoopContext
from closedloop.store.db import transaction
from closedloop.store.models import AuditEvent, LoopRun, Plan, Policy, Verdict, utcnow

DEMOTION = {"supervised": "assisted", "assisted": "assisted", "shadow": "shadow"}


def learn(ctx: LoopContext, run_id: str, plan_id: int | None, outcome: str | None, decision: str | None) -> dict[str, Any]:
    """Finish the run. A rollback demotes the scope (supervised -> assisted) at once;
    a kept change only recommends promotion, which a human must confirm."""
    policy_change = None
    with transaction(ctx.engine) as session:
        verdict = None
        if plan_id is not None:
            verdict = session.exec(select(Verdict).where(Verdict.plan_id == plan_id)).first()
        final = outcome or (verdict.decision if verdict else "completed")
        if verdict is not None:
            final = {"keep": "kept", "rollback": "rolled_back", "escalate": "escalated"}[verdict.decision]
            plan = session.get(Plan, plan_id)
            policy = session.exec(select(Policy).where(Policy.scope == plan.scope)).first()
            if verdict.decision == "rollback" and policy is not None and policy.mode != DEMOTION[policy.mode]:
                policy_change = {"scope": policy.scope, "from": policy.mode, "to": DEMOTION[policy.mode]}
                policy.mode, policy.updated_by, policy.updated_at = DEMOTION[policy.mode], "watchdog", utcnow()
            elif verdict.decision == "keep" and policy is not None and policy.mode == "assisted":
                policy_change = {"scope": policy.scope, "recommend": "supervised", "needs_human_confirmation": True}
        run = session.get(LoopRun, run_id)
        run.status, run.updated_at = final, utcnow()
        session.add(AuditEvent(run_id=run_id, actor="learn", kind="decision",
                               payload={"outcome": final, "policy_change": policy_change}))
    return {"outcome": final, "steps": [{"step": "learn", "outcome": final, "policy_change": policy_change}]}
