"""The evidence a scope must have on record before it may move up a mode.

shadow -> assisted: people reviewed the plans the loop only recorded (shadow reviews) and
agreed with enough of them. assisted -> supervised: enough human decisions, a high approval
rate, zero corrections (no rollback, no failed or undone rollback), calibrated predictions
(the predicted effect inside the measured interval) and no guardrail breach. Everything is
counted from the store; nothing here is a model's word. Thresholds are conservative defaults
a policy can raise (``caps["promotion"]``), never lower below :data:`FLOOR`.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from closedloop.store.models import Approval, AuditEvent, Plan, Policy, Verdict, utcnow

DEFAULT_THRESHOLDS: dict[str, float] = {
    "min_shadow_reviews": 5,
    "min_agreement": 0.8,
    "min_decisions": 5,
    "min_approval_rate": 0.8,
    "min_verdicts": 3,
    "min_calibrated": 0.6,
}
FLOOR = dict(DEFAULT_THRESHOLDS)
SHADOW_REVIEW = "shadow-review"


def thresholds(session: Session, scope: str) -> dict[str, float]:
    """The scope's promotion thresholds: the defaults, raised (never lowered) by its policy."""
    policy = session.exec(select(Policy).where(Policy.scope == scope)).first()
    custom = (policy.caps.get("promotion") if policy else None) or {}
    return {k: max(v, float(custom.get(k, v))) for k, v in DEFAULT_THRESHOLDS.items()}


class ReviewRefused(ValueError):
    """A shadow review that cannot be recorded (see the subclasses)."""


class PlanNotFound(ReviewRefused, LookupError):
    """No plan with that id."""


class PlanNotShadowed(ReviewRefused):
    """The plan was not only recorded (shadow mode): it gets a decision, not a shadow review."""


class AlreadyReviewed(ReviewRefused):
    """This person has reviewed this plan already: one voice counts once."""


def record_shadow_review(
    session: Session, plan_id: int, agrees: bool, by: str, comment: str = ""
) -> Approval:
    """A person's review of a plan the loop only recorded (shadow): would they have approved it?

    PlanNotFound for an unknown plan, PlanNotShadowed when the plan is not a shadowed plan,
    AlreadyReviewed when ``by`` reviewed it before (both ValueError).
    """
    plan = session.get(Plan, plan_id)
    if plan is None:
        raise PlanNotFound(f"plan {plan_id} does not exist; only shadowed plans get shadow reviews")
    if plan.status != "shadowed":
        raise PlanNotShadowed(
            f"plan {plan_id} is {plan.status}, not a shadowed plan; only those get shadow reviews"
        )
    before = session.exec(
        select(Approval).where(
            Approval.plan_id == plan_id,
            Approval.channel == SHADOW_REVIEW,
            Approval.decided_by == by,
        )
    ).first()
    if before is not None:
        raise AlreadyReviewed(
            f"plan {plan_id} was reviewed by {by} already ({before.status} at "
            f"{before.decided_at:%Y-%m-%d %H:%M} UTC); one review per person and plan"
        )
    row = Approval(
        plan_id=plan_id,
        run_id=plan.run_id,
        channel=SHADOW_REVIEW,
        status="approved" if agrees else "rejected",
        decided_by=by,
        comment=comment[:2000],
        decided_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def shadow_reviews(session: Session, scope: str | None = None) -> list[tuple[Approval, Plan]]:
    """The shadow reviews on record (of ``scope``, or every scope), newest first."""
    query = (
        select(Approval, Plan)
        .join(Plan, Plan.id == Approval.plan_id)
        .where(Approval.channel == SHADOW_REVIEW)
    )
    if scope is not None:
        query = query.where(Plan.scope == scope)
    return list(session.exec(query.order_by(Approval.id.desc())).all())


def plans_to_review(
    session: Session, scope: str | None = None, by: str | None = None
) -> list[Plan]:
    """The shadowed plans (of ``scope``) that ``by`` (or, without ``by``, nobody) has reviewed
    yet, oldest first."""
    reviewed = select(Approval.plan_id).where(Approval.channel == SHADOW_REVIEW)
    if by is not None:
        reviewed = reviewed.where(Approval.decided_by == by)
    query = select(Plan).where(Plan.status == "shadowed", Plan.id.not_in(reviewed))
    if scope is not None:
        query = query.where(Plan.scope == scope)
    return list(session.exec(query.order_by(Plan.id)).all())


def promotion_evidence(session: Session, scope: str, target: str) -> dict[str, Any]:
    """The recorded evidence for moving ``scope`` up to ``target``: the numbers, whether they
    clear the thresholds (``ok``) and what is missing."""
    limits = thresholds(session, scope)
    decided = session.exec(
        select(Approval, Plan)
        .join(Plan, Plan.id == Approval.plan_id)
        .where(Plan.scope == scope, Approval.status != "pending")
    ).all()
    missing: list[str] = []
    if target == "assisted":
        reviews = [a for a, _ in decided if a.channel == SHADOW_REVIEW]
        agreed = sum(a.status == "approved" for a in reviews)
        agreement = agreed / len(reviews) if reviews else 0.0
        if len(reviews) < limits["min_shadow_reviews"]:
            missing.append(
                f"{len(reviews)} shadow reviews, need {int(limits['min_shadow_reviews'])}"
            )
        if agreement < limits["min_agreement"]:
            missing.append(
                f"agreement with people {agreement:.0%}, need {limits['min_agreement']:.0%}"
            )
        return {
            "target": target,
            "ok": not missing,
            "missing": missing,
            "shadow_reviews": len(reviews),
            "agreement": round(agreement, 3),
        }
    if target != "supervised":
        return {"target": target, "ok": True, "missing": []}
    human = [
        (a, p) for a, p in decided if a.channel not in (SHADOW_REVIEW, "policy") and a.decided_by
    ]
    approved = sum(a.status == "approved" for a, _ in human)
    rate = approved / len(human) if human else 0.0
    plan_ids = [p.id for _, p in human]
    verdicts = (
        session.exec(select(Verdict).where(Verdict.plan_id.in_(plan_ids))).all() if plan_ids else []
    )
    corrections = sum(v.decision == "rollback" for v in verdicts) + sum(
        p.status in ("rolled_back", "rollback_failed") for _, p in human
    )
    judged = [v for v in verdicts if v.predicted_delta is not None and v.decision != "escalate"]
    calibrated = sum(v.ci_low <= v.predicted_delta <= v.ci_high for v in judged)
    calibration = calibrated / len(judged) if judged else 0.0
    breaches = session.exec(
        select(AuditEvent).where(
            AuditEvent.kind == "guardrail_breach", AuditEvent.payload["scope"].as_string() == scope
        )
    ).all()
    if len(human) < limits["min_decisions"]:
        missing.append(f"{len(human)} human decisions, need {int(limits['min_decisions'])}")
    if rate < limits["min_approval_rate"]:
        missing.append(f"approval rate {rate:.0%}, need {limits['min_approval_rate']:.0%}")
    if corrections:
        missing.append(f"{corrections} corrections (rollbacks), need none")
    if len(judged) < limits["min_verdicts"]:
        missing.append(f"{len(judged)} measured verdicts, need {int(limits['min_verdicts'])}")
    if calibration < limits["min_calibrated"]:
        missing.append(
            f"{calibration:.0%} of predictions inside the measured interval, need "
            f"{limits['min_calibrated']:.0%}"
        )
    if breaches:
        missing.append(f"{len(breaches)} guardrail breaches, need none")
    return {
        "target": target,
        "ok": not missing,
        "missing": missing,
        "decisions": len(human),
        "approval_rate": round(rate, 3),
        "corrections": corrections,
        "verdicts": len(judged),
        "calibrated": round(calibration, 3),
        "guardrail_breaches": len(breaches),
    }


__all__ = [
    "DEFAULT_THRESHOLDS",
    "SHADOW_REVIEW",
    "AlreadyReviewed",
    "PlanNotFound",
    "PlanNotShadowed",
    "ReviewRefused",
    "plans_to_review",
    "promotion_evidence",
    "record_shadow_review",
    "shadow_reviews",
    "thresholds",
]
