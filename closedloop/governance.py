"""Governance: how much a scope may do on its own, and every change to that.

One module owns the rules over the store's ``Policy`` rows: the default caps,
a scope's policy (created on first use), changing it (always audited, naming
who and through which channel, every version kept), the kill switches (per
scope and global), the gate's routing of a plan (a pure function), the caps
enforced at execution, and how a verdict moves a scope's autonomy. Autonomy
is earned: a promotion needs recorded evidence (:mod:`closedloop.autonomy`)
and a named human. The gate and learn nodes, the executor, the REST API and
the CLI all go through here.

It imports only the store and the settings: no graph, agent or surface.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from closedloop.autonomy import promotion_evidence
from closedloop.settings import get_settings
from closedloop.store.models import AuditEvent, Execution, Plan, Policy, PolicyVersion, utcnow

Mode = Literal["shadow", "assisted", "supervised"]
Route = Literal["blocked", "shadow", "execute", "approval"]

MODES: tuple[str, ...] = ("shadow", "assisted", "supervised")
RISK_TIERS: tuple[str, ...] = ("low", "medium", "high")
DEFAULT_CAPS: dict[str, Any] = {
    "max_share_of_cases": 0.25,
    "max_risk_tier": "low",
    "max_writes_per_day": 20,
    "max_writes_per_plan": 5,
    "business_hours": None,
}
# A rollback takes supervised autonomy away at once; lower modes stay where they are.
DEMOTION: dict[str, str] = {"supervised": "assisted", "assisted": "assisted", "shadow": "shadow"}
#: The scope whose kill switch stops every scope at once.
GLOBAL_SCOPE = "*"
#: Names that are not a person: a promotion needs a human who confirms it.
NOT_A_PERSON = {
    "",
    "nobody",
    "unknown",
    "anonymous",
    "system",
    "api",
    "cli",
    "watchdog",
    "gate",
    "learn",
    "policy",
    "root",
    "admin",
}
# Writes that may be live count against the daily cap (a failed one never reached the system).
COUNTED_STATUSES = (
    "pending",
    "unknown",
    "succeeded",
    "unverified",
    "compensated",
    "compensation_failed",
)


class GovernanceError(Exception):
    """Base class of the errors this module raises on purpose."""


class PolicyError(GovernanceError, ValueError):
    """A policy change that is not valid (unknown mode, nothing to change)."""


class KillSwitchOn(GovernanceError):
    """The scope's kill switch is on: nothing of the scope may be written."""


class PromotionRefused(PolicyError):
    """A scope may not move up a mode: the evidence is missing or nobody confirmed it."""


class CapExceeded(GovernanceError):
    """A write would exceed the scope's caps (per day, per plan, risk tier, blast radius, hours)."""


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
    """The scope's policy, created with ``default_mode`` (default: the settings') on first use.

    A new scope never starts supervised (autonomy is earned): such a default starts it
    assisted. Concurrent first use from several processes creates one policy.
    """
    policy = find_policy(session, scope)
    if policy is None:
        mode = default_mode or get_settings().default_mode
        mode = "assisted" if mode == "supervised" else mode
        # INSERT ... ON CONFLICT DO NOTHING: another process may create it at the same instant.
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        now = utcnow()
        created = session.exec(
            insert(Policy)
            .values(
                scope=scope,
                mode=mode,
                kill_switch=False,
                caps=dict(DEFAULT_CAPS),
                updated_at=now,
                updated_by="system",
            )
            .on_conflict_do_nothing(index_elements=["scope"])
        ).rowcount
        policy = find_policy(session, scope)
        if created:
            _keep_version(session, policy, by="system", channel="first-use", evidence={})
    return policy


def _keep_version(
    session: Session, policy: Policy, *, by: str, channel: str, evidence: dict[str, Any]
) -> PolicyVersion:
    latest = session.exec(
        select(func.max(PolicyVersion.version)).where(PolicyVersion.scope == policy.scope)
    ).one()
    row = PolicyVersion(
        scope=policy.scope,
        version=(latest or 0) + 1,
        mode=policy.mode,
        kill_switch=policy.kill_switch,
        caps=dict(policy.caps),
        by=by,
        channel=channel,
        evidence=evidence,
    )
    session.add(row)
    session.flush()
    return row


def policy_versions(session: Session, scope: str) -> list[PolicyVersion]:
    """Every version of a scope's policy, oldest first."""
    return list(
        session.exec(
            select(PolicyVersion)
            .where(PolicyVersion.scope == scope)
            .order_by(PolicyVersion.version)
        ).all()
    )


def is_person(by: str) -> bool:
    """True when ``by`` names a person (not empty, not a service, not a policy)."""
    name = (by or "").strip().lower()
    return bool(name) and name not in NOT_A_PERSON and not name.startswith("policy:")


def set_policy(
    session: Session,
    scope: str,
    mode: str | None = None,
    kill_switch: bool | None = None,
    *,
    by: str,
    channel: str,
    default_mode: str | None = None,
    run_id: str | None = None,
) -> Policy:
    """Change a scope's mode and/or kill switch and write one audit event naming ``by`` and ``channel``.

    The policy is created on first use (``default_mode``). ``run_id`` names the loop run
    that caused the change, if any. Raises PolicyError for an unknown mode or when
    neither ``mode`` nor ``kill_switch`` is given, and PromotionRefused when ``mode`` is a
    step up that the recorded evidence does not support or that no person (``by``) confirms.
    Moving down, or the kill switch, is always allowed. Every change keeps a policy version.
    """
    if mode is None and kill_switch is None:
        raise PolicyError(f"policy {scope!r}: give a mode and/or a kill switch to change")
    if mode is not None and mode not in MODES:
        raise PolicyError(f"policy {scope!r}: mode {mode!r} is not one of {', '.join(MODES)}")
    policy = policy_for(session, scope, default_mode)
    before = {"mode": policy.mode, "kill_switch": policy.kill_switch}
    evidence: dict[str, Any] = {}
    if mode is not None and MODES.index(mode) > MODES.index(policy.mode):
        evidence = check_promotion(session, scope, policy.mode, mode, by)
    if mode is not None:
        policy.mode = mode
    if kill_switch is not None:
        policy.kill_switch = kill_switch
    policy.updated_at, policy.updated_by = utcnow(), by
    payload: dict[str, Any] = {
        "policy": scope,
        "mode": policy.mode,
        "kill_switch": policy.kill_switch,
        "channel": channel,
        "by": by,
        "before": before,
    }
    if run_id is not None:
        payload["run_id"] = run_id
    if evidence:
        payload["evidence"] = evidence
    session.add(
        AuditEvent(run_id=policy_audit_id(scope), actor=by, kind="decision", payload=payload)
    )
    session.flush()
    _keep_version(session, policy, by=by, channel=channel, evidence=evidence)
    return policy


def check_promotion(
    session: Session, scope: str, current: str, target: str, by: str
) -> dict[str, Any]:
    """The evidence for moving ``scope`` from ``current`` up to ``target``; PromotionRefused when
    it is missing, when the move skips a mode, or when ``by`` is not a person."""
    if MODES.index(target) - MODES.index(current) > 1:
        raise PromotionRefused(
            f"policy {scope!r}: {current} -> {target} skips a mode; autonomy "
            f"is earned one step at a time"
        )
    if not is_person(by):
        raise PromotionRefused(
            f"policy {scope!r}: moving to {target} needs a named person to "
            f"confirm it (--by), not {by!r}"
        )
    evidence = promotion_evidence(session, scope, target)
    if not evidence["ok"]:
        raise PromotionRefused(
            f"policy {scope!r}: not enough evidence for {target}: " + "; ".join(evidence["missing"])
        )
    return evidence


def set_caps(
    session: Session, scope: str, caps: dict[str, Any], *, by: str, channel: str
) -> Policy:
    """Change some of a scope's caps (validated, audited, versioned); PolicyError for a bad one."""
    unknown = set(caps) - set(DEFAULT_CAPS)
    if unknown:
        raise PolicyError(
            f"policy {scope!r}: unknown caps {sorted(unknown)}; known: {sorted(DEFAULT_CAPS)}"
        )
    if "max_risk_tier" in caps and caps["max_risk_tier"] not in RISK_TIERS:
        raise PolicyError(f"policy {scope!r}: max_risk_tier must be one of {', '.join(RISK_TIERS)}")
    for name in ("max_writes_per_day", "max_writes_per_plan"):
        if name in caps and (not isinstance(caps[name], int) or caps[name] < 0):
            raise PolicyError(f"policy {scope!r}: {name} must be a whole number >= 0")
    if "business_hours" in caps and caps["business_hours"] is not None:
        hours = caps["business_hours"]
        if not (
            isinstance(hours, dict) and 0 <= hours.get("start", -1) < hours.get("end", -1) <= 24
        ):
            raise PolicyError(
                f"policy {scope!r}: business_hours must be {{'start': h, 'end': h, "
                f"'days': [0-6]}} with 0 <= start < end <= 24 (UTC)"
            )
    policy = policy_for(session, scope)
    before = dict(policy.caps)
    policy.caps = {**policy.caps, **caps}
    policy.updated_at, policy.updated_by = utcnow(), by
    session.add(
        AuditEvent(
            run_id=policy_audit_id(scope),
            actor=by,
            kind="decision",
            payload={
                "policy": scope,
                "caps": policy.caps,
                "before_caps": before,
                "channel": channel,
                "by": by,
            },
        )
    )
    session.flush()
    _keep_version(session, policy, by=by, channel=channel, evidence={})
    return policy


def kill_switch_on(session: Session, scope: str) -> bool:
    """True when the scope's kill switch or the global one (scope ``*``) is on (a scope without
    a policy has it off)."""
    for name in (scope, GLOBAL_SCOPE):
        policy = find_policy(session, name)
        if policy is not None and policy.kill_switch:
            return True
    return False


def check_kill_switch(session: Session, scope: str) -> None:
    """Raise KillSwitchOn when the scope's (or the global) kill switch is on."""
    if kill_switch_on(session, scope):
        raise KillSwitchOn(f"the kill switch of scope {scope!r} is on")


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
