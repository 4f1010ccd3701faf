"""Governance: how much a scope may do on its own, and every change to that.

One module owns the rules over the store's ``Policy`` rows: the default caps,
a scope's policy (created on first use), changing it (always audited, naming
who and through which channel), the kill switch, the gate's routing of a plan
(a pure function) and how a verdict moves a scope's autonomy. The gate and
learn nodes, the REST API and the CLI all go through here.

It imports only the store and the settings: no graph, agent or surface.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from sqlmodel import Session, select

from closedloop.settings import get_settings
from closedloop.store.models import AuditEvent, Policy, utcnow

Mode = Literal["shadow", "assisted", "supervised"]
Route = Literal["blocked", "shadow", "execute", "approval"]

MODES: tuple[str, ...] = ("shadow", "assisted", "supervised")
RISK_TIERS: tuple[str, ...] = ("low", "medium", "high")
DEFAULT_CAPS: dict[str, Any] = {"max_share_of_cases": 0.25, "max_risk_tier": "low"}
# A rollback takes supervised autonomy away at once; lower modes stay where they are.
DEMOTION: dict[str, str] = {"supervised": "assisted", "assisted": "assisted", "shadow": "shadow"}


class GovernanceError(Exception):
    """Base class of the errors this module raises on purpose."""


class PolicyError(GovernanceError, ValueError):
    """A policy change that is not valid (unknown mode, nothing to change)."""


class KillSwitchOn(GovernanceError):
    """The scope's kill switch is on: nothing of the scope may be written."""


class GateDecision(BaseModel):
    """Where the gate sends a plan, and the plan status that goes with it."""

    route: Route
    plan_status: str
    within_caps: bool


def policy_audit_id(scope: str) -> str:
    """The ``run_id`` under which a scope's policy changes are audited."""
    return f"policy:{scope}"


def find_policy(session: Session, scope: str) -> Policy | None:
    """The scope's policy, or None when it was never used."""
    return session.exec(select(Policy).where(Policy.scope == scope)).first()


def policy_for(session: Session, scope: str, default_mode: str | None = None) -> Policy:
    """The scope's policy, created with ``default_mode`` (default: the settings') on first use."""
    policy = find_policy(session, scope)
    if policy is None:
        mode = default_mode or get_settings().default_mode
        policy = Policy(scope=scope, mode=mode, caps=dict(DEFAULT_CAPS))
        session.add(policy)
        session.flush()
    return policy


def set_policy(session: Session, scope: str, mode: str | None = None,
               kill_switch: bool | None = None, *, by: str, channel: str,
               default_mode: str | None = None, run_id: str | None = None) -> Policy:
    """Change a scope's mode and/or kill switch and write one audit event naming ``by`` and ``channel``.

    The policy is created on first use (``default_mode``). ``run_id`` names the loop run
    that caused the change, if any. Raises PolicyError for an unknown mode or when
    neither ``mode`` nor ``kill_switch`` is given.
    """
    if mode is None and kill_switch is None:
        raise PolicyError(f"policy {scope!r}: give a mode and/or a kill switch to change")
    if mode is not None and mode not in MODES:
        raise PolicyError(f"policy {scope!r}: mode {mode!r} is not one of {', '.join(MODES)}")
    policy = policy_for(session, scope, default_mode)
    before = {"mode": policy.mode, "kill_switch": policy.kill_switch}
    if mode is not None:
        policy.mode = mode
    if kill_switch is not None:
        policy.kill_switch = kill_switch
    policy.updated_at, policy.updated_by = utcnow(), by
    payload: dict[str, Any] = {"policy": scope, "mode": policy.mode, "kill_switch": policy.kill_switch,
                               "channel": channel, "by": by, "before": before}
    if run_id is not None:
        payload["run_id"] = run_id
    session.add(AuditEvent(run_id=policy_audit_id(scope), actor=by, kind="decision", payload=payload))
    session.flush()
    return policy


def kill_switch_on(session: Session, scope: str) -> bool:
    """True when the scope's kill switch is on (a scope without a policy has it off)."""
    policy = find_policy(session, scope)
    return policy is not None and policy.kill_switch


def check_kill_switch(session: Session, scope: str) -> None:
    """Raise KillSwitchOn when the scope's kill switch is on."""
    if kill_switch_on(session, scope):
        raise KillSwitchOn(f"the kill switch of scope {scope!r} is on")


def within_caps(risk_tier: str, share_of_cases: float, caps: dict[str, Any]) -> bool:
    """True when a plan's risk tier and blast radius both stay inside the policy's caps.

    A missing ``max_risk_tier`` means "low"; a missing ``max_share_of_cases`` means 0;
    an unknown risk tier is never within caps.
    """
    if risk_tier not in RISK_TIERS:
        return False
    cap_tier = caps.get("max_risk_tier", "low")
    tier_ok = RISK_TIERS.index(risk_tier) <= RISK_TIERS.index(cap_tier if cap_tier in RISK_TIERS
                                                               else "low")
    return tier_ok and share_of_cases <= caps.get("max_share_of_cases", 0)


def route_plan(mode: str, kill_switch: bool, risk_tier: str, share_of_cases: float,
               caps: dict[str, Any]) -> GateDecision:
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


def autonomy_change(mode: str, verdict: str) -> dict[str, Any] | None:
    """What a verdict does to a scope in ``mode``: a rollback demotes (supervised -> assisted)
    at once; a kept change in assisted mode only recommends promotion, for a human to confirm."""
    if verdict == "rollback" and DEMOTION.get(mode, mode) != mode:
        return {"from": mode, "to": DEMOTION[mode]}
    if verdict == "keep" and mode == "assisted":
        return {"recommend": "supervised", "needs_human_confirmation": True}
    return None


def apply_verdict(session: Session, scope: str, verdict: str, run_id: str | None = None,
                  by: str = "watchdog") -> dict[str, Any] | None:
    """Apply :func:`autonomy_change` to the scope's policy (if it has one) and return the change.

    A demotion goes through :func:`set_policy` (audited, channel "learn"); a
    recommendation changes nothing.
    """
    policy = find_policy(session, scope)
    if policy is None:
        return None
    change = autonomy_change(policy.mode, verdict)
    if change is None:
        return None
    if "to" in change:
        set_policy(session, scope, mode=change["to"], by=by, channel="learn", run_id=run_id)
    return {"scope": scope, **change}
