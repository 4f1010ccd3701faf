"""``POST /simulate`` (a what-if on a mined dataset's twin) and ``POST /optimize`` (staffing or
activity assignment), both on a dataset in the store (from ``POST /mine``, an upload, or a run).

Nothing is written: both read the dataset's snapshot, fit a twin and answer. A bad scenario
or an infeasible problem is 422 naming what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from closedloop.api.ingest import BadBody
from closedloop.api.service import Service
from closedloop.contracts import RunNotFound
from closedloop.store.db import transaction
from closedloop.store.models import Dataset
from closedloop.tools.errors import ScenarioError
from closedloop.tools.log.snapshot import configured_key, read_snapshot


class SimulateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset_id: int = Field(ge=1, description="a mined dataset (its snapshot is the twin's data)")
    scenario: dict[str, Any] = Field(
        description='a twin scenario, e.g. {"kind": "add_capacity", '
        '"activity_or_pool": "Triage", "extra": 1}'
    )
    cases: int = Field(default=500, ge=50, le=5000)
    replications: int = Field(default=5, ge=2, le=30)
    seed: int = 0
    sla_hours: float | None = Field(default=None, gt=0)


class OptimizeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset_id: int = Field(ge=1)
    kind: Literal["staffing", "assignment"]
    budget: int | None = Field(
        default=None,
        ge=0,
        le=200,
        description="staffing: extra people to add (required); assignment: most moves",
    )
    max_per_pool: int = Field(
        default=5, ge=1, le=100, description="staffing: most extra people per pool"
    )
    pools: list[str] | None = Field(
        default=None, max_length=100, description="staffing: pools allowed to grow"
    )
    objective: Literal["waiting", "staff"] = Field(
        default="waiting", description="assignment objective"
    )
    validate_by_simulation: bool = Field(
        default=True, description="check the optimum with the simulator"
    )
    cases: int = Field(default=500, ge=50, le=5000)
    replications: int = Field(default=5, ge=2, le=30)
    seed: int = 0


def dataset_frame(service: Service, dataset_id: int) -> pd.DataFrame:
    """The event frame of a stored dataset (404 unknown id, 422 when it has no snapshot)."""
    with transaction(service.engine) as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None:
            raise RunNotFound(f"no dataset {dataset_id}")
        artifact = dataset.artifact
    if not artifact or not Path(artifact).is_file():
        raise BadBody(f"dataset {dataset_id} has no snapshot on this server to fit a twin from")
    return read_snapshot(artifact, configured_key(service.settings))


def _scenario_error(exc: Exception) -> BadBody:
    first = (str(exc).splitlines() or [""])[0]
    return BadBody(f"{type(exc).__name__}: {first}")


def build_router(service: Service) -> APIRouter:
    """The analysis endpoints on ``service``'s store."""
    router = APIRouter(tags=["analysis"])

    @router.post(
        "/simulate",
        responses={404: {"description": "unknown dataset"}, 422: {"description": "bad scenario"}},
        summary="What-if: simulate a scenario against the as-is process of a dataset",
    )
    def post_simulate(body: SimulateIn) -> dict[str, Any]:
        from closedloop.tools.twin import as_scenario, fit_twin, simulate

        try:
            scenario = as_scenario(body.scenario)
        except (ScenarioError, ValueError) as exc:
            raise _scenario_error(exc) from None
        twin = fit_twin(dataset_frame(service, body.dataset_id), seed=body.seed)
        try:
            result = simulate(
                twin,
                scenario,
                cases=body.cases,
                replications=body.replications,
                seed=body.seed,
                sla_hours=body.sla_hours,
            )
        except ScenarioError as exc:
            raise _scenario_error(exc) from None
        return result.model_dump(mode="json")

    @router.post(
        "/optimize",
        responses={
            404: {"description": "unknown dataset"},
            422: {"description": "bad options or infeasible"},
        },
        summary="Optimise staffing or activity assignment on a dataset's twin (CP-SAT, checked by simulation)",
    )
    def post_optimize(body: OptimizeIn) -> dict[str, Any]:
        from closedloop.tools import optimize as opt
        from closedloop.tools.twin import fit_twin

        if body.kind == "staffing" and body.budget is None:
            raise BadBody("kind staffing needs budget: the number of extra people to add")
        frame = dataset_frame(service, body.dataset_id)
        twin = fit_twin(frame, seed=body.seed)
        common = {
            "seed": body.seed,
            "validate": body.validate_by_simulation,
            "cases": body.cases,
            "replications": body.replications,
        }
        try:
            if body.kind == "staffing":
                plan = opt.optimize_staffing(
                    twin,
                    budget_extra_staff=int(body.budget or 0),
                    max_per_pool=body.max_per_pool,
                    pools=body.pools,
                    **common,
                )
            else:
                plan = opt.optimize_assignment(
                    twin, frame, objective=body.objective, max_moves=body.budget, **common
                )
        except ScenarioError as exc:
            raise _scenario_error(exc) from None
        return plan.model_dump(mode="json")

    return router
