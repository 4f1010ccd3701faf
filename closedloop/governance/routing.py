"""Where the gate sends a plan (a pure function) and what a verdict does to a scope's autonomy."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlmodel import Session

from closedloop.governance.caps import within_caps
from closedloop.governance.policy import find_policy, set_policy
from closedloop.governance.rules import DEMOTION, Route


class GateDecision(BaseModel):
    """Where the gate sends a plan, and the plan status that goes with it."""

    route: Route
    plan_status: str
    within_caps: bool


def route_plan(
    mode: str, kill_switch: bool, risk_tier: str, share_of_cases: float, caps: dict[str, Any]
) -> GateDecision:
    """The gate's decision: blocked (kill switch), shadow (record only), execute (supervised
    and within caps) or approval (a human decides)."""
    inside = within_caps(risk_tier, share_of_cases, caps)
    if kill_switch:
        return GateDecision(route="blocked", plan_status="blocked", within_caps=inside)
    if mode == "shadow":
        return GateDecision(route="shadow", plan_status="shadowed", within_caps=inside)
    if mode == "supervised" and inside:
        return GateDecision(route="execute", plan_status="approved", within_caps=inside)
    return GateDecision(route="approval", plan_status="awaiting_approval", within_caps=inside)


def autonomy_change(mode: str, verdict: str, drift: bool = False) -> dict[str, Any] | None:
    """What a verdict does to a scope in ``mode``: a rollback demotes (supervised -> assisted)
    at once, and so does drift (an escalation, or a prediction error outside the measured
    interval) while supervised; a kept change in assisted mode only recommends promotion,
    for a human to confirm."""
    if (verdict == "rollback" or (drift and mode == "supervised")) and DEMOTION.get(
        mode, mode
    ) != mode:
        return {"from": mode, "to": DEMOTION[mode]}
    if verdict == "keep" and mode == "assisted":
        return {"recommend": "supervised", "needs_human_confirmation": True}
    return None


def apply_verdict(
    session: Session,
    scope: str,
    verdict: str,
    run_id: str | None = None,
    by: str = "watchdog",
    drift: bool = False,
) -> dict[str, Any] | None:
    """Apply :func:`autonomy_change` to the scope's policy (if it has one) and return the change.

    A demotion goes through :func:`set_policy` (audited, channel "learn"); a
    recommendation changes nothing. ``drift`` freezes a supervised scope back to assisted.
    """
    policy = find_policy(session, scope)
    if policy is None:
        return None
    change = autonomy_change(policy.mode, verdict, drift or verdict == "escalate")
    if change is None:
        return None
    if "to" in change:
        set_policy(session, scope, mode=change["to"], by=by, channel="learn", run_id=run_id)
    return {"scope": scope, **change}
