"""Staff per pool per shift block of the week, with OR-Tools CP-SAT, checked by simulation.

``optimize_shifts`` plans staff per pool per block of the week against the
hour-of-week demand (:mod:`closedloop.tools.optimize.shift_demand`), under a
cost budget and a waiting/utilisation SLA; ``shift_scenario`` turns a roster
into ``shift_capacity`` changes for the simulator. The CP-SAT problem is in
:mod:`closedloop.tools.optimize.roster`, the plan models and the roster as a
scenario in :mod:`closedloop.tools.optimize.shift_plan`; this module checks the
parameters, repairs blocks the simulation finds over the SLA, and checks the
roster in the twin.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ScenarioError
from closedloop.tools.optimize.roster import Roster
from closedloop.tools.optimize.shift_demand import (
    PoolDemand,
    min_staff_for_sla,
    pool_demand,
    simulate_rosters,
    weighted_wait,
)
from closedloop.tools.optimize.shift_plan import (
    ShiftPlan,
    block_label,
    build_shift_plan,
    shift_scenario,
)
from closedloop.tools.optimize.verdict import Check, check_reduction, interval_text, summarise
from closedloop.tools.twin import (
    HOURS_PER_WEEK,
    Estimate,
    ProcessTwin,
    as_twin,
    estimate,
    resolve_pool,
    simulate,
)

__all__ = ["optimize_shifts"]


@read_tool
def optimize_shifts(
    twin: ProcessTwin,
    frame: pd.DataFrame,
    budget_per_week: float | None = None,
    cost_per_staff_hour: float = 1.0,
    block_hours: int = 4,
    shift_hours: int | None = None,
    max_utilisation: float = 0.85,
    max_wait_hours: float | None = 1.0,
    min_staff: int = 0,
    max_staff: int | dict[str, int] | None = None,
    objective: Literal["cost", "waiting"] = "cost",
    pools: list[str] | None = None,
    validate: bool = True,
    repair_rounds: int = 3,
    weeks: int = 8,
    cases: int = 500,
    replications: int = 5,
    seed: int = 0,
) -> ShiftPlan:
    """Plan how many people each pool needs in each block of the week (a shift roster).

    ``twin`` comes from ``fit_twin(frame)``; ``frame`` is the event log it was
    fitted on (it gives the hour-of-week demand and who was active when). The
    week is cut into ``block_hours`` blocks (UTC, like the simulator); a pool is open in
    the blocks where the twin's calendar has it working, and work reaching it
    while closed waits for the next open block. Today's roster is the number of
    distinct people seen active per open block (weekly mean, at least 1). Demand per block =
    items arriving x the pool's processing hours. People work shifts of
    ``shift_hours`` (a multiple of ``block_hours``, default one block) starting
    at any block; staff on duty per block is an integer between ``min_staff``
    and ``max_staff`` (default: the people seen in the pool). SLA per open
    block: utilisation <= ``max_utilisation`` and predicted queue wait per item
    (M/G/c) <= ``max_wait_hours`` (None = utilisation only). ``objective``
    "cost" minimises staff hours x ``cost_per_staff_hour``; "waiting" minimises
    waiting. Either way cost <= ``budget_per_week`` (None = no cap).

    Returns a ShiftPlan: staff per pool per block (``staff_per_shift``), shift
    starts, cost as observed vs planned (``cost_delta_pct``), predicted waits,
    and ``scenario``: the roster as ``shift_capacity`` changes for ``simulate``.
    With ``validate`` two simulations check it. (1) Per block: each pool's
    queue under the observed and the planned roster (``weeks`` x
    ``replications``, hour-of-week arrivals, the twin's durations, the same
    random work for both); blocks whose simulated wait exceeds the SLA with
    95 % confidence get one more person and the plan is solved again, up to
    ``repair_rounds`` times. (2) The whole process: the twin's simulator runs
    the roster against the twin as fitted (``cases`` x ``replications``):
    cycle time and waiting deltas with 95 % intervals, and each pool's wait
    per visit against the SLA. ``sla_violations`` lists clear breaches (the
    whole interval above the SLA). ``confirmed`` is true only when the
    simulations support the plan: no breach, every block's and pool's 95 %
    wait interval within the SLA, and for ``objective="waiting"`` a simulated
    waiting change wholly below zero; ``confirmation`` says why or why not. An SLA or budget that cannot be
    met gives ``status="infeasible"`` with the reason; bad parameters raise
    ScenarioError.
    """
    twin = as_twin(twin)
    shift_hours = block_hours if shift_hours is None else shift_hours
    _check_shift_params(block_hours, shift_hours, min_staff, cost_per_staff_hour, max_utilisation,
                        max_wait_hours, budget_per_week, weeks, replications)  # fmt: skip
    notes: list[str] = []
    if pools is None:
        chosen = [p for p in sorted(twin.pools)
                  if twin.pools[p].offered_load > 0 and twin.pools[p].resources > 0]  # fmt: skip
    else:
        chosen = sorted({resolve_pool(twin, name) for name in pools})
    demand, weeks_observed = pool_demand(twin, frame, chosen, block_hours)
    if not demand:
        raise ScenarioError("no pool with recorded people and work to plan shifts for")
    caps = {p: _staff_cap(p, max_staff, twin, demand[p], min_staff) for p in sorted(demand)}
    problem = Roster(demand, caps, {}, block_hours, shift_hours, seed)
    nb = problem.blocks
    as_is = {p: np.where(d.open, np.maximum(1, np.floor(d.roster + 0.5)), 0).astype(int)
             for p, d in demand.items()}  # fmt: skip
    as_is_hours = float(sum(r.sum() for r in as_is.values()) * block_hours)
    base = ShiftPlan(
        status="infeasible", message="", block_hours=block_hours,
        shift_hours=shift_hours, cost_per_staff_hour=cost_per_staff_hour,
        budget_per_week=budget_per_week, max_utilisation=max_utilisation,
        max_wait_hours=max_wait_hours, weeks_observed=weeks_observed, pools=problem.pools,
        max_staff=caps, staff_hours_as_is_per_week=as_is_hours,
        cost_as_is_per_week=as_is_hours * cost_per_staff_hour,
        predicted_wait_as_is_hours=problem.mean_wait(as_is), notes=notes,
    )  # fmt: skip
    for p, d in demand.items():
        problem.floors[p] = []
        for b in range(nb):
            need = 0 if not d.open[b] else min_staff_for_sla(
                problem.rate(p, b), d, min_staff, caps[p], max_utilisation, max_wait_hours)
            if need is None:
                load = problem.rate(p, b) * d.mean_service
                sla = f"utilisation <= {max_utilisation:.0%}" + (
                    f", wait <= {max_wait_hours:g} h" if max_wait_hours is not None else "")
                return base.model_copy(update={"message": (
                    f"infeasible: pool {p!r} in {block_label(b, block_hours)} needs more than "
                    f"max_staff={caps[p]} people for the SLA ({sla}; load {load:.2f} busy staff)")})
            problem.floors[p].append(need)
    max_hours = (None if budget_per_week is None
                 else math.floor(budget_per_week / cost_per_staff_hour + 1e-9))  # fmt: skip
    for round_ in range(repair_rounds + 1):
        solved = problem.solve(max_hours, objective)
        if solved is None:
            cheapest = problem.solve(None, "cost")
            need = "more staff hours" if cheapest is None else (
                f"at least {cheapest[3]:g} staff hours per week "
                f"(cost {cheapest[3] * cost_per_staff_hour:g})")
            return base.model_copy(update={"message": (
                f"infeasible: meeting the SLA needs {need}, over budget_per_week="
                f"{budget_per_week:g} (cost {cost_per_staff_hour:g} per staff hour)"
                + (f" after {round_} repair round(s) for simulated SLA breaches" if round_ else "")
            )})  # fmt: skip
        status, staff, begin, hours = solved
        plan = build_shift_plan(base, problem, status, staff, begin, hours, as_is)
        if not validate:
            return plan.model_copy(update={"scenario": shift_scenario(staff, block_hours)})
        plan, breaches = _validate_shifts(plan, problem, as_is, staff, weeks, replications)
        raised = [(p, b) for p, b in breaches if staff[p][b] < caps[p]]
        if not breaches or not raised or round_ == repair_rounds:
            break
        for p, b in raised:
            problem.floors[p][b] = int(staff[p][b]) + 1
    if round_:
        plan.notes.append(f"{round_} repair round(s): blocks the simulation found over the SLA "
                          "got one more person each round")  # fmt: skip
    return _check_shifts_in_twin(plan, twin, staff, block_hours, cases, replications, seed,
                                 objective)


def _check_shift_params(
    block_hours: int, shift_hours: int, min_staff: int, cost_per_staff_hour: float,
    max_utilisation: float, max_wait_hours: float | None, budget_per_week: float | None,
    weeks: int, replications: int,
) -> None:  # fmt: skip
    if block_hours < 1 or 24 % block_hours:
        raise ScenarioError(f"block_hours must divide 24 (1, 2, 3, 4, 6, 8, 12, 24), got {block_hours}")
    if shift_hours < block_hours or shift_hours % block_hours or shift_hours > HOURS_PER_WEEK:
        raise ScenarioError(
            f"shift_hours must be a multiple of block_hours ({block_hours}), got {shift_hours}"
        )
    if min_staff < 0:
        raise ScenarioError(f"min_staff must be >= 0, got {min_staff}")
    if cost_per_staff_hour <= 0:
        raise ScenarioError(f"cost_per_staff_hour must be > 0, got {cost_per_staff_hour}")
    if not 0 < max_utilisation <= 1:
        raise ScenarioError(f"max_utilisation must be in (0, 1], got {max_utilisation}")
    if max_wait_hours is not None and max_wait_hours < 0:
        raise ScenarioError(f"max_wait_hours must be >= 0, got {max_wait_hours}")
    if budget_per_week is not None and budget_per_week < 0:
        raise ScenarioError(f"budget_per_week must be >= 0, got {budget_per_week}")
    if weeks < 1 or replications < 1:
        raise ScenarioError("weeks and replications must be >= 1")


def _staff_cap(
    pool: str, max_staff: int | dict[str, int] | None, twin: ProcessTwin, d: PoolDemand,
    min_staff: int,
) -> int:  # fmt: skip
    if isinstance(max_staff, dict):
        cap = max_staff.get(pool)
    else:
        cap = max_staff
    if cap is None:
        cap = max(twin.pools[pool].resources, int(d.roster.max() + 0.5), 1)
    if cap < 0:
        raise ScenarioError(f"max_staff of pool {pool!r} must be >= 0, got {cap}")
    if cap < min_staff:
        raise ScenarioError(f"max_staff ({cap}) of pool {pool!r} is below min_staff ({min_staff})")
    return int(cap)


def _validate_shifts(
    plan: ShiftPlan, problem: Roster, as_is: dict[str, np.ndarray],
    staff: dict[str, np.ndarray], weeks: int, replications: int,
) -> tuple[ShiftPlan, list[tuple[str, int]]]:  # fmt: skip
    """Simulate the observed and the planned roster; flag blocks over the SLA."""
    bh = problem.block_hours
    sim_as_is, sim_plan = simulate_rosters(problem.demand, [as_is, staff], bh, weeks,
                                            replications, problem.seed)  # fmt: skip
    by_key = {(b.pool, b.block): b for b in plan.blocks}
    limit = plan.max_wait_hours
    breaches: list[tuple[str, int]] = []
    violations, violations_as_is, blocks = [], [], []
    for p in problem.pools:
        for b in range(problem.blocks):
            key = (p, block_label(b, bh))
            if key not in by_key:
                continue
            before = [rep[b] for rep in sim_as_is[p] if b in rep]
            after = [rep[b] for rep in sim_plan[p] if b in rep]
            est_before = estimate(before) if before else None
            est_after = estimate(after) if after else None
            blocks.append(by_key[key].model_copy(update={
                "simulated_wait_as_is_hours": est_before, "simulated_wait_hours": est_after}))
            if limit is None:
                continue
            if est_before is not None and est_before.ci_low > limit and as_is[p][b] > 0:
                violations_as_is.append(f"pool {p!r} {key[1]}")
            if est_after is not None and est_after.ci_low > limit:
                breaches.append((p, b))
                violations.append(
                    f"pool {p!r} {key[1]}: simulated wait {est_after.mean:.2f} h "
                    f"[{est_after.ci_low:.2f}, {est_after.ci_high:.2f}] > SLA {limit:g} h"
                )
    w_before = weighted_wait(sim_as_is, problem.demand)
    w_after = weighted_wait(sim_plan, problem.demand)
    notes = list(plan.notes)
    if violations_as_is:
        notes.append(f"the observed roster itself breaks the SLA in simulation in "
                     f"{len(violations_as_is)} block(s): {', '.join(violations_as_is[:5])}")
    return plan.model_copy(update={
        "blocks": blocks,
        "simulated_wait_as_is_hours": estimate(w_before),
        "simulated_wait_hours": estimate(w_after),
        "simulated_wait_delta_hours": estimate([a - b for a, b in zip(w_after, w_before)]),
        "sla_violations": violations,
        "confirmed": not violations,
        "notes": notes,
    }), breaches  # fmt: skip


def _check_shifts_in_twin(
    plan: ShiftPlan, twin: ProcessTwin, staff: dict[str, np.ndarray], block_hours: int,
    cases: int, replications: int, seed: int, objective: str,
) -> ShiftPlan:  # fmt: skip
    """Run the roster in the twin's simulator against the twin as fitted."""
    scenario = shift_scenario(staff, block_hours)
    cost = {p: plan.cost_per_staff_hour for p in twin.pools}
    sim = simulate(twin, scenario, cases=cases, replications=replications, seed=seed,
                   cost_per_hour=cost)  # fmt: skip
    violations = list(plan.sla_violations)
    pool_wait: dict[str, Estimate] = {}
    for p in staff:
        visits = sum(twin.activities[a].visits_per_case for a in twin.pools[p].activities)
        est = sim.what_if.waiting_by_pool_hours.get(p)
        if est is None or visits <= 0:
            continue
        per_visit = Estimate(mean=est.mean / visits, ci_low=est.ci_low / visits,
                             ci_high=est.ci_high / visits)  # fmt: skip
        pool_wait[p] = per_visit
        if plan.max_wait_hours is not None and per_visit.ci_low > plan.max_wait_hours:
            violations.append(
                f"pool {p!r} in the twin simulation: wait per visit {per_visit.mean:.2f} h "
                f"[{per_visit.ci_low:.2f}, {per_visit.ci_high:.2f}] > SLA {plan.max_wait_hours:g} h"
            )
    plan = plan.model_copy(update={
        "scenario": scenario, "simulation": sim,
        "simulated_cycle_time_delta_pct": sim.predicted_delta_pct,
        "simulated_waiting_per_case_delta_hours": sim.delta.waiting_mean_hours,
        "simulated_pool_wait_hours": pool_wait, "sla_violations": violations,
    })  # fmt: skip
    confirmed, why = summarise(_shift_checks(plan, objective))
    return plan.model_copy(update={
        "confirmed": confirmed, "confirmation": why,
        "message": plan.message + (
            f"; simulated waiting per case {interval_text(sim.delta.waiting_mean_hours)}, cycle "
            f"time {interval_text(sim.predicted_delta_pct, ' %', 2)}; {why}"),
    })  # fmt: skip


def _shift_checks(plan: ShiftPlan, objective: str) -> list[Check]:
    """What the simulations must show: the SLA held by whole intervals; less waiting if claimed."""
    limit = plan.max_wait_hours
    checks: list[Check] = []
    if plan.sla_violations:
        checks.append((False, f"{len(plan.sla_violations)} SLA breach(es) in simulation"))
    if limit is not None:
        blocks = [b for b in plan.blocks if b.simulated_wait_hours is not None]
        unsure = [b for b in blocks if b.simulated_wait_hours.ci_high > limit + 1e-9]
        checks.append((not unsure, (
            f"every one of {len(blocks)} simulated blocks has its 95 % wait interval within the "
            f"SLA {limit:g} h" if not unsure else
            f"{len(unsure)} of {len(blocks)} simulated blocks have a 95 % wait interval reaching "
            f"above the SLA {limit:g} h (e.g. pool {unsure[0].pool!r} {unsure[0].block}: "
            f"{interval_text(unsure[0].simulated_wait_hours)})")))  # fmt: skip
        pools = {p: e for p, e in plan.simulated_pool_wait_hours.items() if e.ci_high > limit + 1e-9}
        checks.append((not pools, (
            "in the twin every pool's 95 % wait interval per visit is within the SLA" if not pools
            else "in the twin the 95 % wait interval per visit reaches above the SLA for "
            + ", ".join(f"{p!r} {interval_text(e)}" for p, e in sorted(pools.items())))))  # fmt: skip
    if objective == "waiting" and plan.simulated_waiting_per_case_delta_hours is not None:
        checks.append(check_reduction(plan.simulated_waiting_per_case_delta_hours,
                                      "queue waiting per case"))  # fmt: skip
    if not checks:
        checks.append((not plan.sla_violations, "no SLA to check: utilisation only"))
    return checks
