"""The caps a write must stay within: writes per day and per plan, and for an autonomous write
the mode, risk tier, blast radius and business hours."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from closedloop.governance.policy import policy_for
from closedloop.governance.rules import COUNTED_STATUSES, DEFAULT_CAPS, RISK_TIERS, CapExceeded
from closedloop.store.models import Execution, Plan, utcnow


def check_execution_caps(
    session: Session, plan: Plan, *, autonomous: bool, now: datetime | None = None
) -> None:
    """Raise CapExceeded when one more write of ``plan`` would break its scope's caps.

    Every write: at most ``max_writes_per_day`` writes of the scope in 24 h (those that may be
    live) and ``max_writes_per_plan`` per plan. An autonomous write (no human approved it)
    also needs the scope still supervised, the plan's risk tier and blast radius within the
    caps, and ``business_hours`` (UTC) when set.
    """
    now = now or utcnow()
    policy = policy_for(session, plan.scope)
    caps = {**DEFAULT_CAPS, **policy.caps}
    in_scope = (
        select(func.count())
        .select_from(Execution)
        .join(Plan, Plan.id == Execution.plan_id)
        .where(Execution.status.in_(COUNTED_STATUSES))
    )
    today = session.exec(
        in_scope.where(Plan.scope == plan.scope, Execution.created_at >= now - timedelta(days=1))
    ).one()
    if today + 1 > caps["max_writes_per_day"]:
        raise CapExceeded(
            f"scope {plan.scope!r}: {today} writes in the last 24 h; the cap is "
            f"{caps['max_writes_per_day']} per day"
        )
    of_plan = session.exec(in_scope.where(Execution.plan_id == plan.id)).one()
    if of_plan + 1 > caps["max_writes_per_plan"]:
        raise CapExceeded(
            f"plan {plan.id}: {of_plan} writes done; the cap is "
            f"{caps['max_writes_per_plan']} per plan"
        )
    if not autonomous:
        return
    if policy.mode != "supervised":
        raise CapExceeded(f"scope {plan.scope!r} is {policy.mode} now: no autonomous write")
    share = plan.blast_radius.get("share_of_cases", 1.0)
    if not within_caps(plan.risk_tier, share, caps):
        raise CapExceeded(
            f"plan {plan.id} (risk {plan.risk_tier}, {share:.0%} of cases) is outside "
            f"the caps of scope {plan.scope!r}"
        )
    hours = caps.get("business_hours")
    if hours:
        days = hours.get("days", [0, 1, 2, 3, 4])
        if now.weekday() not in days or not hours["start"] <= now.hour < hours["end"]:
            raise CapExceeded(
                f"scope {plan.scope!r}: autonomous writes only {hours['start']}:00-"
                f"{hours['end']}:00 UTC on days {days}"
            )


def within_caps(risk_tier: str, share_of_cases: float, caps: dict[str, Any]) -> bool:
    """True when a plan's risk tier and blast radius both stay inside the policy's caps.

    A missing ``max_risk_tier`` means "low"; a missing ``max_share_of_cases`` means 0;
    an unknown risk tier is never within caps.
    """
    if risk_tier not in RISK_TIERS:
        return False
    cap_tier = caps.get("max_risk_tier", "low")
    tier_ok = RISK_TIERS.index(risk_tier) <= RISK_TIERS.index(
        cap_tier if cap_tier in RISK_TIERS else "low"
    )
    return tier_ok and share_of_cases <= caps.get("max_share_of_cases", 0)
