"""Staffing optimisation with CP-SAT, confirmed by simulation."""

from __future__ import annotations

import itertools
from functools import cache
from pathlib import Path

import pytest

from closedloop.tools.base import ToolKind
from closedloop.tools.errors import ScenarioError
from closedloop.tools.eventlog import load_event_log
from closedloop.tools.optimize import SCALE, optimize_staffing
from closedloop.tools.simulate import AddCapacity, Combined
from closedloop.tools.twin import ProcessTwin, fit_twin, queue_wait_hours


@cache
def _twin(path: str) -> ProcessTwin:
    return fit_twin(load_event_log(path))


@pytest.fixture
def helpdesk(bundled_data: Path) -> ProcessTwin:
    return _twin(str(bundled_data / "helpdesk.xes.gz"))


def _predicted(twin: ProcessTwin, allocation: dict[str, int]) -> float:
    total = 0.0
    for name, pool in twin.pools.items():
        if pool.offered_load <= 0:
            continue
        visits = sum(twin.activities[a].visits_per_case for a in pool.activities)
        c = pool.capacity + allocation.get(name, 0)
        total += visits * queue_wait_hours(
            pool.arrivals_per_hour, pool.mean_processing_hours, pool.processing_scv, c
        )
    return total


def test_plan_within_budget_and_confirmed_by_simulation(helpdesk: ProcessTwin) -> None:
    plan = optimize_staffing(helpdesk, budget_extra_staff=3, max_per_pool=2)
    assert plan.status == "optimal"
    assert 0 < plan.total_extra_staff <= 3
    assert all(0 < x <= 2 for x in plan.extra_staff.values())
    assert sum(a.extra for a in plan.allocations) == plan.total_extra_staff
    assert plan.predicted_waiting_delta_hours < 0
    # the simulation ran the chosen allocation as one combined scenario and agrees
    assert isinstance(plan.scenario, Combined)
    added = {
        c.activity_or_pool: c.extra for c in plan.scenario.changes if isinstance(c, AddCapacity)
    }
    assert added == plan.extra_staff
    assert plan.simulation is not None and plan.confirmed is True
    sim = plan.simulated_waiting_delta_hours
    assert sim is not None and sim.ci_low <= sim.mean <= sim.ci_high and sim.mean < 0
    assert plan.simulated_cycle_time_delta_pct is not None
    for pool, extra in plan.extra_staff.items():
        assert plan.simulation.capacity_what_if[pool] == helpdesk.pools[pool].capacity + extra
    print(
        f"plan {plan.extra_staff}: analytic waiting delta {plan.predicted_waiting_delta_hours:.2f} h/case, "
        f"simulated {sim.mean:.2f} [{sim.ci_low:.2f}, {sim.ci_high:.2f}] h/case"
    )


def test_plan_is_the_true_optimum_of_the_analytic_model(helpdesk: ProcessTwin) -> None:
    plan = optimize_staffing(helpdesk, budget_extra_staff=2, max_per_pool=2, validate=False)
    assert plan.simulation is None and plan.confirmed is None
    pools = [p for p, m in helpdesk.pools.items() if m.offered_load > 0]
    best = min(
        _predicted(helpdesk, {p: x for p, x in zip(pools, xs, strict=True) if x})
        for xs in itertools.product(range(3), repeat=len(pools))
        if sum(xs) <= 2
    )
    assert plan.predicted_waiting_after_hours == pytest.approx(best, abs=len(pools) / SCALE)
    assert plan.predicted_waiting_after_hours == pytest.approx(
        _predicted(helpdesk, plan.extra_staff)
    )


def test_zero_budget_changes_nothing(helpdesk: ProcessTwin) -> None:
    plan = optimize_staffing(helpdesk, budget_extra_staff=0, replications=2, cases=100)
    assert plan.status == "optimal" and plan.extra_staff == {} and plan.total_extra_staff == 0
    assert plan.simulated_waiting_delta_hours is not None
    assert plan.simulated_waiting_delta_hours.mean == 0


def test_restricted_pools_and_per_pool_cap(helpdesk: ProcessTwin) -> None:
    plan = optimize_staffing(
        helpdesk, 4, max_per_pool=1, pools=["Resolve ticket", "Wait"], validate=False
    )
    assert set(plan.extra_staff) <= {"Resolve ticket", "Wait"}
    assert all(x <= 1 for x in plan.extra_staff.values())
    assert {a.pool for a in plan.allocations} == {"Resolve ticket", "Wait"}


def test_negative_budget_is_infeasible_with_a_clear_message(helpdesk: ProcessTwin) -> None:
    plan = optimize_staffing(helpdesk, budget_extra_staff=-1)
    assert plan.status == "infeasible"
    assert "budget_extra_staff=-1" in plan.message and ">= 0" in plan.message
    assert plan.extra_staff == {} and plan.simulation is None


def test_unknown_pool_and_bad_cap_raise(helpdesk: ProcessTwin) -> None:
    with pytest.raises(ScenarioError, match="Night shift"):
        optimize_staffing(helpdesk, 2, pools=["Night shift"])
    with pytest.raises(ScenarioError, match="max_per_pool"):
        optimize_staffing(helpdesk, 2, max_per_pool=-1)


def test_same_seed_same_plan(helpdesk: ProcessTwin) -> None:
    first = optimize_staffing(helpdesk, 2, cases=200, replications=2, seed=4)
    again = optimize_staffing(helpdesk, 2, cases=200, replications=2, seed=4)
    assert first.model_dump() == again.model_dump()


def test_optimize_is_a_read_tool() -> None:
    assert optimize_staffing.tool_kind is ToolKind.READ
