"""Which resource pool performs which activity, with OR-Tools CP-SAT, checked by simulation.

``optimize_assignment`` moves activities between pools given the skills seen in
the log and the loads (M/G/c queue of each pool's mix of activities).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from ortools.sat.python import cp_model
from pydantic import BaseModel, Field

from closedloop.tools.base import read_tool
from closedloop.tools.errors import InfeasibleError, ScenarioError
from closedloop.tools.log.columns import ACTIVITY, RESOURCE
from closedloop.tools.optimize.solver import SCALE, solve
from closedloop.tools.optimize.verdict import (
    check_at_most,
    check_reduction,
    interval_text,
    summarise,
)
from closedloop.tools.twin import (
    AsIs,
    Estimate,
    ProcessTwin,
    as_twin,
    estimate,
    queue_wait_hours,
    simulate,
)

__all__ = [
    "MAX_CANDIDATES_PER_POOL", "ActivityMove", "AssignmentPlan", "PoolLoad", "optimize_assignment",
]  # fmt: skip

MAX_CANDIDATES_PER_POOL = 6  # 2**6 subsets per pool at most: keeps CP-SAT well inside 10 s


class ActivityMove(BaseModel):
    """An activity moving from one pool to another."""

    activity: str
    from_pool: str
    to_pool: str
    skill_share: float = Field(description="share of the receiving pool's people seen doing it")


class PoolLoad(BaseModel):
    """One pool before and after the reassignment."""

    pool: str
    capacity: int
    activities_before: list[str]
    activities_after: list[str]
    utilisation_before: float
    utilisation_after: float
    waiting_per_case_before_hours: float = Field(description="analytic queue waiting per case")
    waiting_per_case_after_hours: float


class AssignmentPlan(BaseModel):
    """Which pool performs which activity, predicted and (optionally) simulated."""

    status: Literal["optimal", "feasible", "infeasible"]
    message: str
    objective: Literal["waiting", "staff"]
    min_skill_share: float
    max_moves: int | None
    max_utilisation: float
    max_waiting_increase_pct: float
    moves: list[ActivityMove] = Field(default_factory=list)
    assignment: dict[str, str] = Field(
        default_factory=dict, description="activity -> pool, for every activity with work"
    )
    pools: list[PoolLoad] = Field(default_factory=list)
    staff_before: int = Field(description="people in pools that have work")
    staff_after: int | None = None
    predicted_waiting_before_hours: float = Field(description="analytic queue waiting per case")
    predicted_waiting_after_hours: float | None = None
    predicted_waiting_delta_hours: float | None = None
    simulated_waiting_delta_hours: Estimate | None = None
    simulated_cycle_time_delta_pct: Estimate | None = None
    confirmed: bool | None = Field(
        None, description="the simulated 95 % intervals support the claim: objective 'waiting' "
        "needs the waiting change wholly below zero; 'staff' needs waiting and cycle time "
        "changes wholly within the allowance (None: not simulated or no move)"
    )
    confirmation: str | None = Field(None, description="why the plan is confirmed or not, in words")
    notes: list[str] = Field(default_factory=list)


@dataclass
class _Work:
    """Arrival rate and processing moments of one activity."""

    name: str
    home: str
    rate: float  # visits per hour
    mean: float  # processing hours
    second_moment: float


def _work_of(twin: ProcessTwin) -> dict[str, _Work]:
    case_rate = 1.0 / twin.mean_interarrival_hours
    out = {}
    for name, a in twin.activities.items():
        sample = np.asarray(a.processing_hours or [0.0], dtype=float)
        mean = a.mean_processing_hours
        scv = float(sample.var() / sample.mean() ** 2) if sample.mean() > 0 else 0.0
        out[name] = _Work(name, a.pool, a.visits_per_case * case_rate, mean, mean**2 * (1 + scv))
    return out


def _pool_queue(works: list[_Work], servers: int, case_rate: float) -> tuple[float, float, float, float]:
    """(waiting per case hours, utilisation, mean processing, scv) of a pool doing ``works``."""
    rate = sum(w.rate for w in works)
    if rate <= 0:
        return 0.0, 0.0, 0.0, 0.0
    mean = sum(w.rate * w.mean for w in works) / rate
    if mean <= 0:
        return 0.0, 0.0, 0.0, 0.0
    scv = max(0.0, sum(w.rate * w.second_moment for w in works) / rate / mean**2 - 1)
    wait = queue_wait_hours(rate, mean, scv, servers)
    return rate / case_rate * wait, rate * mean / servers, mean, scv


def _skills(frame: pd.DataFrame, twin: ProcessTwin) -> tuple[dict[str, set], dict[str, set]]:
    """People seen per activity and per pool (the union over the pool's activities)."""
    if RESOURCE not in frame:
        return {}, {}
    named = frame[frame[RESOURCE].notna()]
    named = named[named[RESOURCE].astype(str) != ""]
    by_activity = {str(a): set(r.astype(str)) for a, r in named.groupby(ACTIVITY)[RESOURCE]}
    by_pool = {p: set().union(*[by_activity.get(a, set()) for a in m.activities])
               for p, m in twin.pools.items()}  # fmt: skip
    return by_activity, by_pool


@read_tool
def optimize_assignment(
    twin: ProcessTwin,
    frame: pd.DataFrame,
    objective: Literal["waiting", "staff"] = "waiting",
    min_skill_share: float = 0.5,
    max_moves: int | None = None,
    max_utilisation: float = 0.85,
    max_waiting_increase_pct: float = 0.0,
    validate: bool = True,
    seed: int = 0,
    cases: int = 500,
    replications: int = 5,
) -> AssignmentPlan:
    """Choose which resource pool performs each activity, from skills seen in the log and loads.

    ``twin`` comes from ``fit_twin(frame)``; ``frame`` is its event log. An
    activity may move to another pool when at least ``min_skill_share`` of
    that pool's people performed it in the log (its own pool always
    qualifies). Pools keep their capacity; processing times stay those of the
    activity. Each pool's queue is predicted with M/G/c on the mix of its
    activities, and utilisation must stay <= ``max_utilisation``. ``objective``
    "waiting" minimises the total predicted queue waiting per case; "staff"
    frees as many people as possible (pools left without work) while waiting
    grows by at most ``max_waiting_increase_pct`` %. ``max_moves`` caps the
    number of activities that change pool (None = no cap); ties prefer fewer
    moves.

    Returns an AssignmentPlan: ``moves`` (activity, from, to, skill share),
    the pool loads before and after, staff in pools with work, predicted
    waiting per case before/after. With ``validate`` the reassigned process
    is simulated against the current one (``cases`` x ``replications``, same
    random cases): ``simulated_waiting_delta_hours``,
    ``simulated_cycle_time_delta_pct`` and ``confirmed``. When no assignment
    satisfies the limits the plan has ``status="infeasible"`` and the reason.
    """
    twin = as_twin(twin)
    if not 0 <= min_skill_share <= 1:
        raise ScenarioError(f"min_skill_share must be in [0, 1], got {min_skill_share}")
    if max_moves is not None and max_moves < 0:
        raise ScenarioError(f"max_moves must be >= 0, got {max_moves}")
    if not 0 < max_utilisation <= 1:
        raise ScenarioError(f"max_utilisation must be in (0, 1], got {max_utilisation}")
    if max_waiting_increase_pct < 0:
        raise ScenarioError(f"max_waiting_increase_pct must be >= 0, got {max_waiting_increase_pct}")
    case_rate = 1.0 / twin.mean_interarrival_hours
    work = {a: w for a, w in _work_of(twin).items() if w.rate * w.mean > 0}
    people_of_activity, people_of_pool = _skills(frame, twin)
    notes: list[str] = []
    if not people_of_pool:
        notes.append("the log names no resources: activities can only stay in their pools")

    def share(activity: str, pool: str) -> float:
        team = people_of_pool.get(pool, set())
        return len(team & people_of_activity.get(activity, set())) / len(team) if team else 0.0

    candidates: dict[str, list[str]] = {}
    for p in sorted(twin.pools):
        own = sorted(a for a, w in work.items() if w.home == p)
        foreign = sorted((a for a, w in work.items() if w.home != p and share(a, p) >= min_skill_share),
                         key=lambda a: (-share(a, p), a))  # fmt: skip
        if len(own) > MAX_CANDIDATES_PER_POOL:
            notes.append(f"pool {p!r} has {len(own)} activities with work: they stay together")
            candidates[p] = own
        elif own or foreign:
            candidates[p] = own + foreign[: MAX_CANDIDATES_PER_POOL - len(own)]
    before = {p: _pool_queue([work[a] for a in acts if work[a].home == p], twin.pools[p].capacity,
                             case_rate) for p, acts in candidates.items()}  # fmt: skip
    waiting_before = sum(b[0] for b in before.values())
    staff_before = sum(twin.pools[p].capacity for p in candidates if any(
        work[a].home == p for a in candidates[p]))  # fmt: skip
    base = AssignmentPlan(
        status="infeasible", message="", objective=objective, min_skill_share=min_skill_share,
        max_moves=max_moves, max_utilisation=max_utilisation, staff_before=staff_before,
        max_waiting_increase_pct=max_waiting_increase_pct,
        predicted_waiting_before_hours=waiting_before, notes=notes,
    )  # fmt: skip

    model = cp_model.CpModel()
    options: dict[str, list[tuple[tuple[str, ...], cp_model.IntVar, int]]] = {}
    for p, acts in candidates.items():
        fixed = len(acts) > MAX_CANDIDATES_PER_POOL
        subsets = [tuple(acts)] if fixed else [
            tuple(a for i, a in enumerate(acts) if mask >> i & 1) for mask in range(1 << len(acts))
        ]  # fmt: skip
        options[p] = []
        for subset in subsets:
            wait, util, _, _ = _pool_queue([work[a] for a in subset], twin.pools[p].capacity, case_rate)
            if util <= max_utilisation and math.isfinite(wait):
                options[p].append((subset, model.new_bool_var(f"{p}{subset}"), round(wait * SCALE)))
        model.add_exactly_one(x for _, x, _ in options[p])
    # activity -> pool literals, channelled to the subsets: much stronger propagation
    for a, w in work.items():
        places = []
        for p, opts in options.items():
            holding = [x for s, x, _ in opts if a in s]
            if not holding:
                continue
            here = model.new_bool_var(f"{a}@{p}")
            model.add(here == sum(holding))
            model.add_hint(here, p == w.home)
            places.append(here)
        model.add_exactly_one(places)
    for p, opts in options.items():  # start the search from today's assignment
        today = tuple(a for a in candidates[p] if work[a].home == p)
        for s, x, _ in opts:
            model.add_hint(x, s == today)
    stays = {a: sum(x for s, x, _ in options.get(w.home, []) if a in s) for a, w in work.items()}
    moved = sum(1 - stay for stay in stays.values())
    if max_moves is not None:
        model.add(moved <= max_moves)
    waiting = sum(cost * x for opts in options.values() for _, x, cost in opts)
    n = len(work) + 1
    if objective == "waiting":
        model.minimize(waiting * n + moved)
    else:
        model.add(waiting <= math.floor(waiting_before * SCALE * (1 + max_waiting_increase_pct / 100)
                                        + len(options)))  # rounding slack  # fmt: skip
        kept = sum(twin.pools[p].capacity * x for p, opts in options.items()
                   for s, x, _ in opts if s)  # fmt: skip
        worst = sum(max((c for _, _, c in opts), default=0) for opts in options.values()) * n + n
        model.minimize(kept * worst + waiting * n + moved)
    solver, status = solve(model, seed)
    if status == cp_model.INFEASIBLE:
        limits = [f"utilisation <= {max_utilisation:.0%} in every pool"]
        if max_moves is not None:
            limits.append(f"at most {max_moves} move(s)")
        if objective == "staff":
            limits.append(f"waiting at most {max_waiting_increase_pct:g} % above today's")
        return base.model_copy(update={"message": (
            "infeasible: no assignment of activities to skilled pools keeps " + " and ".join(limits)
        )})  # fmt: skip
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise InfeasibleError(f"CP-SAT found no assignment (status {solver.status_name(status)})")

    assignment = {a: p for p, opts in options.items() for s, x, _ in opts
                  if solver.boolean_value(x) for a in s}  # fmt: skip
    return _assignment_plan(base, twin, work, assignment, candidates, share, case_rate,
                            "optimal" if status == cp_model.OPTIMAL else "feasible",
                            validate, seed, cases, replications)  # fmt: skip


def _assignment_plan(
    base: AssignmentPlan, twin: ProcessTwin, work: dict[str, _Work], assignment: dict[str, str],
    candidates: dict[str, list[str]], share: Any, case_rate: float, label: str, validate: bool,
    seed: int, cases: int, replications: int,
) -> AssignmentPlan:  # fmt: skip
    loads, waiting_after, staff_after = [], 0.0, 0
    for p in sorted(candidates):
        cap = twin.pools[p].capacity
        now = sorted(a for a, w in work.items() if w.home == p)
        then = sorted(a for a, q in assignment.items() if q == p)
        wb, ub, _, _ = _pool_queue([work[a] for a in now], cap, case_rate)
        wa, ua, _, _ = _pool_queue([work[a] for a in then], cap, case_rate)
        waiting_after += wa
        staff_after += cap if then else 0
        loads.append(PoolLoad(pool=p, capacity=cap, activities_before=now, activities_after=then,
                              utilisation_before=ub, utilisation_after=ua,
                              waiting_per_case_before_hours=wb, waiting_per_case_after_hours=wa))  # fmt: skip
    moves = [ActivityMove(activity=a, from_pool=work[a].home, to_pool=p, skill_share=share(a, p))
             for a, p in sorted(assignment.items()) if p != work[a].home]  # fmt: skip
    delta = waiting_after - base.predicted_waiting_before_hours
    shown = "; ".join(f"{m.activity} -> {m.to_pool}" for m in moves) or "keep today's assignment"
    plan = base.model_copy(update={
        "status": label,
        "message": (f"{label}: {shown}; predicted queue waiting per case "
                    f"{base.predicted_waiting_before_hours:.3g} h -> {waiting_after:.3g} h, staff in "
                    f"pools with work {base.staff_before} -> {staff_after}"),
        "moves": moves, "assignment": assignment, "pools": loads, "staff_after": staff_after,
        "predicted_waiting_after_hours": waiting_after, "predicted_waiting_delta_hours": delta,
    })  # fmt: skip
    if not validate:
        return plan
    changed = _reassigned_twin(twin, work, assignment, case_rate)
    wait_delta, cycle_delta, pct = _paired_simulation(twin, changed, cases, replications, seed)
    allowance = base.predicted_waiting_before_hours * base.max_waiting_increase_pct / 100
    if not moves:
        confirmed, why = None, "nothing to confirm: no activity moves"
    elif base.objective == "waiting":
        confirmed, why = summarise([check_reduction(wait_delta, "waiting per case")])
    else:
        confirmed, why = summarise([check_at_most(wait_delta, allowance, "waiting per case"),
                                    check_at_most(cycle_delta, allowance, "cycle time per case")])  # fmt: skip
    return plan.model_copy(update={
        "simulated_waiting_delta_hours": wait_delta, "simulated_cycle_time_delta_pct": pct,
        "confirmed": confirmed, "confirmation": why,
        "message": plan.message + (
            f"; simulated waiting per case {interval_text(wait_delta)}, cycle time "
            f"{interval_text(pct, ' %', 2)}; {why}"),
    })  # fmt: skip


def _reassigned_twin(
    twin: ProcessTwin, work: dict[str, _Work], assignment: dict[str, str], case_rate: float
) -> ProcessTwin:
    """The twin with activities moved between pools; pools left without activities are dropped."""
    activities = {
        name: m.model_copy(update={"pool": assignment[name]})
        if assignment.get(name, m.pool) != m.pool else m
        for name, m in twin.activities.items()
    }  # fmt: skip
    members: dict[str, list[str]] = {}
    for name, m in activities.items():
        members.setdefault(m.pool, []).append(name)
    every = _work_of(twin)
    pools = {}
    for p, pm in twin.pools.items():
        acts = sorted(members.get(p, []))
        if not acts:
            continue
        wait, util, mean, scv = _pool_queue([every[a] for a in acts], pm.capacity, case_rate)
        rate = sum(every[a].rate for a in acts)
        pools[p] = pm.model_copy(update={
            "activities": acts, "arrivals_per_hour": rate, "mean_processing_hours": mean,
            "processing_scv": scv, "offered_load": rate * mean, "utilisation": util,
            "queue_wait_hours": wait / (rate / case_rate) if rate > 0 else 0.0,
        })  # fmt: skip
    return twin.model_copy(update={"activities": activities, "pools": pools})


def _paired_simulation(
    base: ProcessTwin, changed: ProcessTwin, cases: int, replications: int, seed: int
) -> tuple[Estimate, Estimate, Estimate]:
    """Deltas of two twins on the same random cases: waiting and cycle time (hours per case), %."""
    waits, cycles, pcts = [], [], []
    for r in range(replications):
        before = simulate(base, AsIs(), cases=cases, replications=1, seed=seed + r).as_is
        after = simulate(changed, AsIs(), cases=cases, replications=1, seed=seed + r).as_is
        waits.append(after.waiting_mean_hours.mean - before.waiting_mean_hours.mean)
        b = before.cycle_time_mean_hours.mean
        cycles.append(after.cycle_time_mean_hours.mean - b)
        pcts.append(100.0 * cycles[-1] / b if b > 0 else 0.0)
    return estimate(waits), estimate(cycles), estimate(pcts)
