"""Shadow reviews over REST: the evidence a scope needs to move from shadow to assisted.

- ``POST /reviews`` (approver role): record the caller's review of a shadowed plan ("would I
  have approved it?"); the authenticated caller is recorded, never a name in the body. 201
  with the review and the scope's evidence for assisted; 404 for an unknown plan; 409 when
  the plan is not shadowed or the caller reviewed it already.
- ``GET /reviews`` (any caller): the reviews on record, newest first, optionally by scope.
- ``GET /reviews/pending`` (any caller): the shadowed plans the caller has not reviewed yet.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from closedloop.api.auth import Approver, Caller
from closedloop.api.models import SCOPE_PATTERN, ErrorOut, UtcDatetime
from closedloop.api.service import Service
from closedloop.autonomy import plans_to_review, shadow_reviews
from closedloop.contracts import RunNotFound
from closedloop.governance import ReviewPlanMissing, ShadowReview, review_shadow_plan, review_view
from closedloop.store.db import transaction

ScopeQuery = Annotated[str | None, Query(pattern=SCOPE_PATTERN)]


class ReviewIn(BaseModel):
    """A person's review of a plan the loop only recorded."""

    plan_id: int = Field(ge=1, description="a plan with status shadowed")
    agrees: bool = Field(description="true: I would have approved this plan")
    comment: str = Field(default="", max_length=2000)


class PlanToReview(BaseModel):
    """A shadowed plan waiting for the caller's review."""

    id: int
    run_id: str
    scope: str
    hypothesis: str
    actions: list[Any]
    predicted: dict[str, Any]
    risk_tier: str
    created_at: UtcDatetime


def build_router(service: Service) -> APIRouter:
    """The shadow-review endpoints on ``service``'s store."""
    router = APIRouter(tags=["reviews"])

    @router.post(
        "/reviews",
        response_model=ShadowReview,
        status_code=201,
        responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
        summary="Record your review of a shadowed plan (evidence for shadow -> assisted)",
    )
    def post_review(body: ReviewIn, who: Approver) -> ShadowReview:
        try:
            with transaction(service.engine) as session:
                return review_shadow_plan(
                    session,
                    body.plan_id,
                    body.agrees,
                    by=who.name,
                    channel="api",
                    comment=body.comment,
                )
        except ReviewPlanMissing as exc:
            raise RunNotFound(str(exc)) from exc

    @router.get(
        "/reviews",
        response_model=list[ShadowReview],
        summary="Shadow reviews on record, newest first, optionally of one scope",
    )
    def list_reviews(
        _: Caller,
        scope: ScopeQuery = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[ShadowReview]:
        with transaction(service.engine) as session:
            return [review_view(a, p) for a, p in shadow_reviews(session, scope)[:limit]]

    @router.get(
        "/reviews/pending",
        response_model=list[PlanToReview],
        summary="Shadowed plans you have not reviewed yet, oldest first",
    )
    def pending_reviews(who: Caller, scope: ScopeQuery = None) -> list[PlanToReview]:
        with transaction(service.engine) as session:
            plans = plans_to_review(session, scope, by=who.name)
            return [PlanToReview.model_validate(p, from_attributes=True) for p in plans]

    return router


__all__ = ["PlanToReview", "ReviewIn", "build_router"]
