"""A scope's policy row: created on first use, changed only with an audit event naming who and
through which channel, every version kept; promotions checked against recorded evidence;
the kill switches (per scope and global)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from closedloop.autonomy import promotion_evidence
from closedloop.governance.rules import (
    DEFAULT_CAPS,
    GLOBAL_SCOPE,
    MODES,
    NOT_A_PERSON,
    RISK_TIERS,
    KillSwitchOn,
    PolicyError,
    PromotionRefused,
)
from closedloop.settings import get_settings
from closedloop.store.models import AuditEvent, Policy, PolicyVersion, utcnow


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
