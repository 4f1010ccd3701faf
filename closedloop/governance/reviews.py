"""Shadow reviews: the evidence a scope needs to move from shadow to assisted.

In shadow mode the loop only records its plans. A person reviews each recorded plan ("would
you have approved it?"); :func:`closedloop.autonomy.promotion_evidence` counts the reviews and
the agreement. Every surface (CLI ``closedloop review``, REST ``/reviews``) records a review
through :func:`review_shadow_plan`: a named person only, one review per person and plan, an
audit event on the plan's run naming who and through which channel.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session

from closedloop.autonomy import (
    AlreadyReviewed,
    PlanNotFound,
    PlanNotShadowed,
    promotion_evidence,
    record_shadow_review,
)
from closedloop.governance.policy import is_person
from closedloop.governance.rules import GovernanceError
from closedloop.store.models import Approval, AuditEvent, Plan


class ReviewRefused(GovernanceError):
    """A shadow review that is not recorded: no person named, the plan is not shadowed, or the
    person reviewed it already."""


class ReviewPlanMissing(ReviewRefused, LookupError):
    """The plan to review does not exist."""


class ShadowReview(BaseModel):
    """One recorded shadow review, and the scope's evidence for assisted after it."""

    id: int
    plan_id: int
    scope: str
    agrees: bool
    by: str
    comment: str
    decided_at: datetime | None
    evidence: dict[str, Any] | None = None


def review_view(
    review: Approval, plan: Plan, evidence: dict[str, Any] | None = None
) -> ShadowReview:
    """The view of a shadow review row (``evidence``: the scope's, when asked)."""
    return ShadowReview(
        id=review.id,
        plan_id=plan.id,
        scope=plan.scope,
        agrees=review.status == "approved",
        by=review.decided_by or "",
        comment=review.comment,
        decided_at=review.decided_at,
        evidence=evidence,
    )


def review_shadow_plan(
    session: Session,
    plan_id: int,
    agrees: bool,
    *,
    by: str,
    channel: str,
    comment: str = "",
) -> ShadowReview:
    """Record ``by``'s review of the shadowed plan ``plan_id`` and audit it (channel named).

    Raises ReviewPlanMissing for an unknown plan and ReviewRefused when ``by`` is not a
    person, the plan is not shadowed or ``by`` reviewed it already. Returns the review with
    the scope's evidence for assisted (:func:`closedloop.autonomy.promotion_evidence`).
    """
    if not is_person(by):
        raise ReviewRefused(
            f"plan {plan_id}: a shadow review needs a named person (--by), not {by!r}"
        )
    try:
        review = record_shadow_review(session, plan_id, agrees, by=by, comment=comment)
    except PlanNotFound as exc:
        raise ReviewPlanMissing(str(exc)) from exc
    except (PlanNotShadowed, AlreadyReviewed) as exc:
        raise ReviewRefused(str(exc)) from exc
    plan = session.get(Plan, plan_id)
    session.add(
        AuditEvent(
            run_id=plan.run_id,
            actor=by,
            kind="decision",
            payload={
                "shadow_review": review.id,
                "plan_id": plan_id,
                "scope": plan.scope,
                "agrees": agrees,
                "by": by,
                "channel": channel,
            },
        )
    )
    session.flush()
    return review_view(review, plan, promotion_evidence(session, plan.scope, "assisted"))


__all__ = [
    "ReviewPlanMissing",
    "ReviewRefused",
    "ShadowReview",
    "review_shadow_plan",
    "review_view",
]
