"""Learn: close the run and let governance adjust the scope's autonomy from the verdict."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from closedloop.agents.context import LoopContext
from closedloop.governance import apply_verdict
from closedloop.store.db import transaction
from closedloop.store.models import AuditEvent, LoopRun, Plan, Verdict, utcnow

OUTCOMES = {"keep": "kept", "rollback": "rolled_back", "escalate": "escalated"}


def learn(
    ctx: LoopContext, run_id: str, plan_id: int | None, outcome: str | None, decision: str | None
) -> dict[str, Any]:
    """Finish the run. A rollback demotes the scope (supervised -> assisted) at once;
    a kept change only recommends promotion, which a human must confirm
    (:func:`closedloop.governance.autonomy_change`)."""
    policy_change = None
    with transaction(ctx.engine) as session:
        verdict = None
        if plan_id is not None:
            verdict = session.exec(select(Verdict).where(Verdict.plan_id == plan_id)).first()
        final = outcome or (verdict.decision if verdict else "completed")
        if verdict is not None:
            final = OUTCOMES[verdict.decision]
            plan = session.get(Plan, plan_id)
            if plan.status == "rollback_failed":  # "rolled back" only when the system says so
                final = "rollback_failed"
            policy_change = apply_verdict(
                session,
                plan.scope,
                verdict.decision,
                run_id=run_id,
                drift=prediction_drift(verdict),
            )
        if verdict is None and plan_id is not None and outcome == "execution_failed":
            plan = session.get(Plan, plan_id)
            if plan.status == "rollback_failed":
                final = "rollback_failed"
        run = session.get(LoopRun, run_id)
        run.status, run.updated_at = final, utcnow()
        session.add(
            AuditEvent(
                run_id=run_id,
                actor="learn",
                kind="decision",
                payload={"outcome": final, "policy_change": policy_change},
            )
        )
    return {
        "outcome": final,
        "steps": [{"step": "learn", "outcome": final, "policy_change": policy_change}],
    }


def prediction_drift(verdict: Verdict) -> bool:
    """True when the measured change contradicts the prediction: the predicted delta lies
    outside the measured interval on the wrong side of zero (freezes a supervised scope)."""
    predicted = verdict.predicted_delta
    if predicted is None or verdict.decision == "rollback":
        return False
    outside = not verdict.ci_low <= predicted <= verdict.ci_high
    return outside and (predicted < 0 < verdict.ci_low or predicted > 0 > verdict.ci_high)
