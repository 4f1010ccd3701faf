"""Optimisation with OR-Tools CP-SAT; every optimum is checked by simulation before it is proposed.

- ``optimize_staffing``: how many extra staff each pool gets (a budget of people).
- ``optimize_shifts``: staff per pool per shift block of the week against the
  hour-of-week demand, under a cost budget and a waiting/utilisation SLA.
- ``optimize_assignment``: which pool performs which activity, given the skills
  seen in the log and the loads.
- ``optimize_threshold``: an auto-decision threshold on a case attribute under a
  risk cap measured on history (e.g. BPI 2012: ``AMOUNT_REQ < t`` -> decide).

Queue waiting is predicted analytically with an M/G/c approximation
(Allen-Cunneen: Erlang-C waiting of M/M/c scaled by ``(1 + scv) / 2`` of the
processing times), turned into integer tables for CP-SAT. The solver runs with
one worker, a seed and a deterministic time limit (wall clock capped at 10 s),
so the same inputs give the same plan. An infeasible problem returns a plan
with ``status="infeasible"`` and the reason; bad input raises ScenarioError.

For staffing, extra staff per pool: for every pool the expected queue waiting
per case is precomputed for ``capacity + 0 .. capacity + max_per_pool``
servers; one level per pool is chosen, total extra staff <= budget, minimising
the sum of waiting (ties broken towards fewer staff), then simulated.

This module holds ``optimize_staffing``; the other optimisers live in
:mod:`~closedloop.tools.optimize.shifts` (with ``shift_demand``, ``roster``,
``shift_plan``), :mod:`~closedloop.tools.optimize.assignment` and
:mod:`~closedloop.tools.optimize.threshold`; shared solver set-up in
:mod:`~closedloop.tools.optimize.solver`. Import them from
:mod:`closedloop.tools.optimize`.
"""

from __future__ import annotations

from typing import Literal

from ortools.sat.python import cp_model
from pydantic import BaseModel, Field

from closedloop.tools.base import read_tool
from closedloop.tools.errors import InfeasibleError, ScenarioError
from closedloop.tools.optimize.assignment import optimize_assignment
from closedloop.tools.optimize.shifts import optimize_shifts
from closedloop.tools.optimize.solver import SCALE, capped_wait, solve
from closedloop.tools.optimize.threshold import optimize_threshold
from closedloop.tools.optimize.verdict import check_reduction, interval_text, summarise
from closedloop.tools.twin import (
    AddCapacity,
    AsIs,
    Combined,
    Estimate,
    ProcessTwin,
    SimulationResult,
    as_twin,
    queue_wait_hours,
    resolve_pool,
    simulate,
)

__all__ = ["PoolAllocation", "StaffingPlan", "optimize_staffing"]

# Kept importable from here for callers written before the facade (twin_cli imports
# this module as a namespace of every optimiser); new code imports closedloop.tools.optimize.
__all__ += ["optimize_assignment", "optimize_shifts", "optimize_threshold"]


class PoolAllocation(BaseModel):
    """Extra staff of one pool and its predicted effect."""

    pool: str
    current_capacity: int
    extra: int
    new_capacity: int
    utilisation_before: float
    utilisation_after: float
    waiting_per_case_before_hours: float = Field(description="analytic queue waiting per case")
    waiting_per_case_after_hours: float


class StaffingPlan(BaseModel):
    """Extra staff per pool within a budget, predicted and (optionally) simulated."""

    status: Literal["optimal", "feasible", "infeasible"]
    message: str
    budget_extra_staff: int
    max_per_pool: int
    extra_staff: dict[str, int] = Field(description="pools that get staff -> how many")
    total_extra_staff: int
    allocations: list[PoolAllocation]
    predicted_waiting_before_hours: float = Field(description="analytic queue waiting per case")
    predicted_waiting_after_hours: float
    predicted_waiting_delta_hours: float
    scenario: Combined | AsIs | None = None
    simulation: SimulationResult | None = None
    simulated_waiting_delta_hours: Estimate | None = None
    simulated_cycle_time_delta_pct: Estimate | None = None
    confirmed: bool | None = Field(
        None, description="the simulated waiting change has its whole 95 % interval below zero "
        "(None: not simulated, or the plan changes nothing)"
    )
    confirmation: str | None = Field(None, description="why the plan is confirmed or not, in words")


def _waiting_table(twin: ProcessTwin, pool: str, max_per_pool: int) -> list[float]:
    p = twin.pools[pool]
    visits = sum(twin.activities[a].visits_per_case for a in p.activities)
    return [
        visits * queue_wait_hours(p.arrivals_per_hour, p.mean_processing_hours, p.processing_scv, c)
        for c in range(p.capacity, p.capacity + max_per_pool + 1)
    ]


@read_tool
def optimize_staffing(
    twin: ProcessTwin,
    budget_extra_staff: int,
    max_per_pool: int = 5,
    validate: bool = True,
    seed: int = 0,
    pools: list[str] | None = None,
    cases: int = 500,
    replications: int = 5,
) -> StaffingPlan:
    """Choose how many extra staff to add to each resource pool to minimise waiting.

    ``twin`` comes from ``fit_twin``. ``budget_extra_staff`` is the total
    number of people that may be added (>= 0); ``max_per_pool`` caps the
    extra staff of any one pool; ``pools`` optionally restricts the pools (or
    activities, meaning their pools) that may receive staff (default: every
    pool with work). Queue waiting per case is predicted analytically
    (M/G/c) and the allocation minimising total predicted waiting is found
    with CP-SAT.

    Returns a StaffingPlan: ``status`` ("optimal", "feasible" or "infeasible"
    with a ``message`` saying why), ``extra_staff`` (pool -> extra people),
    per-pool allocations with utilisation and predicted waiting before/after,
    and the analytic waiting delta per case (hours). With ``validate`` the
    allocation is simulated (``cases`` x ``replications``, ``seed``) against
    the as-is process and the simulated effect is the one reported (also in
    ``message``): ``simulated_waiting_delta_hours`` and
    ``simulated_cycle_time_delta_pct`` with 95 % intervals. ``confirmed`` is
    true only when the simulated waiting change lies wholly below zero;
    ``confirmation`` says why or why not. A plan that adds nobody has nothing
    to confirm (``confirmed`` None). Unknown pools raise ScenarioError.
    """
    twin = as_twin(twin)
    if max_per_pool < 0:
        raise ScenarioError(f"max_per_pool must be >= 0, got {max_per_pool}")
    if pools is None:
        chosen = [p for p in sorted(twin.pools) if twin.pools[p].offered_load > 0]
    else:
        chosen = sorted({resolve_pool(twin, name) for name in pools})
    tables = {p: _waiting_table(twin, p, max_per_pool) for p in chosen}

    model = cp_model.CpModel()
    levels = range(max_per_pool + 1)
    pick = {p: [model.new_bool_var(f"{p}+{x}") for x in levels] for p in chosen}
    for p in chosen:
        model.add_exactly_one(pick[p])
    extra = {p: sum(x * pick[p][x] for x in levels) for p in chosen}
    model.add(sum(extra.values()) <= budget_extra_staff)
    tie_break = len(chosen) * max_per_pool + 1
    model.minimize(
        sum(
            round(capped_wait(tables[p][x]) * SCALE) * tie_break * pick[p][x]
            for p in chosen
            for x in levels
        )
        + sum(extra.values())
    )
    solver, status = solve(model, seed)

    before_total = sum(capped_wait(tables[p][0]) for p in chosen)
    if status == cp_model.INFEASIBLE:
        return StaffingPlan(
            status="infeasible",
            message=(
                f"no allocation fits: budget_extra_staff={budget_extra_staff} must be >= 0 "
                f"(extra staff per pool is 0..{max_per_pool})"
            ),
            budget_extra_staff=budget_extra_staff,
            max_per_pool=max_per_pool,
            extra_staff={},
            total_extra_staff=0,
            allocations=[],
            predicted_waiting_before_hours=before_total,
            predicted_waiting_after_hours=before_total,
            predicted_waiting_delta_hours=0.0,
        )
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise InfeasibleError(
            f"CP-SAT found no staffing plan (status {solver.status_name(status)})"
        )

    allocations = []
    for p in chosen:
        x = next(x for x in levels if solver.boolean_value(pick[p][x]))
        pm = twin.pools[p]
        allocations.append(
            PoolAllocation(
                pool=p,
                current_capacity=pm.capacity,
                extra=x,
                new_capacity=pm.capacity + x,
                utilisation_before=pm.offered_load / pm.capacity,
                utilisation_after=pm.offered_load / (pm.capacity + x),
                waiting_per_case_before_hours=capped_wait(tables[p][0]),
                waiting_per_case_after_hours=capped_wait(tables[p][x]),
            )
        )
    extra_staff = {a.pool: a.extra for a in allocations if a.extra > 0}
    after_total = sum(a.waiting_per_case_after_hours for a in allocations)
    label = "optimal" if status == cp_model.OPTIMAL else "feasible"
    plan = StaffingPlan(
        status=label,
        message=(
            f"{label}: add {sum(extra_staff.values())} of {budget_extra_staff} staff "
            f"({', '.join(f'{p} +{x}' for p, x in extra_staff.items()) or 'no change helps'}); "
            f"predicted queue waiting per case {before_total:.3g} h -> {after_total:.3g} h"
        ),
        budget_extra_staff=budget_extra_staff,
        max_per_pool=max_per_pool,
        extra_staff=extra_staff,
        total_extra_staff=sum(extra_staff.values()),
        allocations=allocations,
        predicted_waiting_before_hours=before_total,
        predicted_waiting_after_hours=after_total,
        predicted_waiting_delta_hours=after_total - before_total,
    )
    if not validate:
        return plan
    scenario = (
        Combined(changes=[AddCapacity(activity_or_pool=p, extra=x) for p, x in extra_staff.items()])
        if extra_staff
        else AsIs()
    )
    sim = simulate(twin, scenario, cases=cases, replications=replications, seed=seed)
    wait, pct = sim.delta.waiting_mean_hours, sim.predicted_delta_pct
    if extra_staff:
        confirmed, why = summarise([check_reduction(wait, "queue waiting per case")])
    else:
        confirmed, why = None, "nothing to confirm: the plan adds no staff"
    shown = ", ".join(f"{p} +{x}" for p, x in extra_staff.items()) or "no change helps"
    return plan.model_copy(
        update={
            "scenario": scenario,
            "simulation": sim,
            "simulated_waiting_delta_hours": wait,
            "simulated_cycle_time_delta_pct": pct,
            "confirmed": confirmed,
            "confirmation": why,
            "message": (
                f"{label}: add {sum(extra_staff.values())} of {budget_extra_staff} staff "
                f"({shown}); simulated queue waiting per case {interval_text(wait)}, cycle time "
                f"{interval_text(pct, ' %', 2)} (analytic M/G/c: {before_total:.3g} h -> "
                f"{after_total:.3g} h); {why}"
            ),
        }
    )
