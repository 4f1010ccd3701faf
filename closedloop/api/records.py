"""Read-only views of what the loop decided and did: ``GET /plans``, ``/plans/{id}``,
``/executions`` and ``/policies`` (every scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel
from sqlmodel import select

from closedloop.api.auth import Caller
from closedloop.api.models import SCOPE_PATTERN, PolicyView, UtcDatetime
from closedloop.api.service import Service
from closedloop.contracts import RunNotFound
from closedloop.store.db import transaction
from closedloop.store.models import Execution, Plan


class PlanView(BaseModel):
    id: int
    run_id: str
    scope: str
    hypothesis: str
    actions: list[Any]
    predicted: dict[str, Any]
    blast_radius: dict[str, Any]
    risk_tier: str
    cohort: dict[str, Any]
    guardrails: dict[str, Any]
    compensations: list[Any]
    status: str
    created_at: UtcDatetime


class ExecutionView(BaseModel):
    id: int
    plan_id: int
    approval_id: int | None
    action: str
    idempotency_key: str
    status: str
    attempts: int
    verified: bool | None
    created_at: UtcDatetime
    finished_at: UtcDatetime | None


def build_router(service: Service) -> APIRouter:
    """The read-only record endpoints on ``service``'s store."""
    router = APIRouter(tags=["records"])

    @router.get(
        "/plans",
        response_model=list[PlanView],
        summary="Plans, newest first, by scope, run or status",
    )
    def list_plans(
        _: Caller,
        scope: Annotated[str | None, Query(pattern=SCOPE_PATTERN)] = None,
        run_id: Annotated[str | None, Query(max_length=128)] = None,
        status: Annotated[str | None, Query(max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[PlanView]:
        query = select(Plan).order_by(Plan.id.desc()).limit(limit)
        for column, value in ((Plan.scope, scope), (Plan.run_id, run_id), (Plan.status, status)):
            if value is not None:
                query = query.where(column == value)
        with transaction(service.engine) as session:
            return [
                PlanView.model_validate(p, from_attributes=True) for p in session.exec(query).all()
            ]

    @router.get(
        "/plans/{plan_id}",
        response_model=PlanView,
        responses={404: {"description": "unknown plan"}},
    )
    def get_plan(plan_id: Annotated[int, Path(ge=1)], _: Caller) -> PlanView:
        with transaction(service.engine) as session:
            plan = session.get(Plan, plan_id)
            if plan is None:
                raise RunNotFound(f"no plan {plan_id}")
            return PlanView.model_validate(plan, from_attributes=True)

    @router.get(
        "/executions",
        response_model=list[ExecutionView],
        summary="Writes to the enterprise system, newest first, optionally of one plan",
    )
    def list_executions(
        _: Caller,
        plan_id: Annotated[int | None, Query(ge=1)] = None,
        status: Annotated[str | None, Query(max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[ExecutionView]:
        query = select(Execution).order_by(Execution.id.desc()).limit(limit)
        if plan_id is not None:
            query = query.where(Execution.plan_id == plan_id)
        if status is not None:
            query = query.where(Execution.status == status)
        with transaction(service.engine) as session:
            return [
                ExecutionView.model_validate(e, from_attributes=True)
                for e in session.exec(query).all()
            ]

    @router.get(
        "/policies",
        response_model=list[PolicyView],
        summary="Every scope's autonomy and kill switch",
    )
    def list_policies(_: Caller) -> list[PolicyView]:
        return service.policies()

    return router
