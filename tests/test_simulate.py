"""The discrete-event simulator, its scenarios and the safe condition language."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from closedloop.tools.base import ToolKind
from closedloop.tools.errors import ScenarioError
from closedloop.tools.log.ingest import load_event_log
from closedloop.tools.rules import ConditionError, compile_condition, evaluate_condition
from closedloop.tools.twin import (
    AddCapacity,
    AsIs,
    AutoApprove,
    AutomateActivity,
    BatchActivity,
    ChangeCalendar,
    ChangeRouting,
    Combined,
    Prioritise,
    ProcessTwin,
    SetShiftCapacity,
    SimulationResult,
    fit_twin,
    simulate,
    simulate_log,
)
from closedloop.tools.twin.engine import run
from closedloop.tools.twin.model import compile_twin
from closedloop.tools.twin.scenarios import DAYS, compile_scenario
from closedloop.tools.twin.steps import draw_cases

HELPDESK = "helpdesk.xes.gz"
REPAIR = "03_repairExample.xes.gz"


@cache
def _twin(path: str) -> ProcessTwin:
    return fit_twin(load_event_log(path))


@cache
def _as_is(path: str) -> SimulationResult:
    return simulate(_twin(path), AsIs())


@pytest.fixture
def helpdesk(bundled_data: Path) -> str:
    return str(bundled_data / HELPDESK)


@pytest.fixture
def repair(bundled_data: Path) -> str:
    return str(bundled_data / REPAIR)


@pytest.mark.parametrize("log", [HELPDESK, REPAIR])
def test_as_is_matches_observed_cycle_time(bundled_data: Path, log: str) -> None:
    path = str(bundled_data / log)
    twin, result = _twin(path), _as_is(path)
    observed = twin.observed.mean_cycle_time_hours
    simulated = result.as_is.cycle_time_mean_hours.mean
    print(f"{log}: observed {observed:.3f} h, simulated {simulated:.3f} h")
    assert 0.8 * observed <= simulated <= 1.2 * observed
    assert result.delta.cycle_time_mean_hours.mean == 0.0  # as-is vs as-is
    est = result.as_is.cycle_time_mean_hours
    assert est.ci_low <= est.mean <= est.ci_high
    assert result.as_is.cycle_time_p90_hours.mean >= est.mean
    assert result.as_is.throughput_per_day.mean > 0
    assert set(result.as_is.utilisation) == set(twin.pools)
    assert all(0 <= u.mean <= 1 for u in result.as_is.utilisation.values())
    assert result.warmup_cases == 50


def test_adding_capacity_to_most_waited_pool_does_not_increase_waiting(helpdesk: str) -> None:
    base = _as_is(helpdesk)
    by_pool = base.as_is.waiting_by_pool_hours
    pool = max(by_pool, key=lambda p: by_pool[p].mean)
    assert by_pool[pool].mean > 0
    result = simulate(_twin(helpdesk), AddCapacity(activity_or_pool=pool, extra=2))
    assert result.capacity_what_if[pool] == result.capacity_as_is[pool] + 2
    assert result.what_if.waiting_mean_hours.mean <= result.as_is.waiting_mean_hours.mean
    assert result.delta.waiting_by_pool_hours[pool].mean < 0
    assert result.what_if.utilisation[pool].mean < result.as_is.utilisation[pool].mean
    # as-is side equals the plain as-is run: common random numbers
    assert result.as_is == base.as_is


def test_removing_capacity_increases_waiting(helpdesk: str) -> None:
    result = simulate(_twin(helpdesk), AddCapacity(activity_or_pool="Resolve ticket", extra=-3))
    assert result.delta.waiting_mean_hours.mean > 0


@pytest.mark.parametrize(
    ("log", "activity"), [(HELPDESK, "Take in charge ticket"), (REPAIR, "Repair (Complex)")]
)
def test_automating_an_activity_reduces_cycle_time(
    bundled_data: Path, log: str, activity: str
) -> None:
    result = simulate(_twin(str(bundled_data / log)), AutomateActivity(activity=activity))
    assert result.delta.cycle_time_mean_hours.ci_high < 0
    assert result.predicted_delta_pct.mean < 0
    assert result.treated_share.mean > 0.4


def test_failed_automation_falls_back_to_the_human_activity(repair: str) -> None:
    twin = _twin(repair)
    result = simulate(twin, AutomateActivity(activity="Repair (Complex)", failure_rate=1.0))
    assert result.treated_share.mean > 0.4
    assert result.delta.cycle_time_mean_hours.mean > 0  # the failed attempt only adds time
    none = simulate(twin, AutomateActivity(activity="Repair (Complex)", share=0.0))
    assert none.treated_share.mean == 0 and none.delta.cycle_time_mean_hours.mean == 0


def test_same_seed_same_result_other_seed_differs(repair: str) -> None:
    twin = _twin(repair)
    scenario = AutomateActivity(activity="Test Repair", share=0.5, failure_rate=0.2)
    first = simulate(twin, scenario, cases=300, replications=3, seed=7)
    again = simulate(twin, scenario, cases=300, replications=3, seed=7)
    other = simulate(twin, scenario, cases=300, replications=3, seed=8)
    assert first.model_dump() == again.model_dump()
    assert first.as_is.cycle_time_mean_hours != other.as_is.cycle_time_mean_hours


def test_segment_condition_filters_cases(repair: str) -> None:
    twin = _twin(repair)
    everyone = simulate(twin, AutomateActivity(activity="Repair (Complex)"))
    t1 = simulate(twin, AutomateActivity(activity="Repair (Complex)", segment="phoneType == 'T1'"))
    big = simulate(twin, AutomateActivity(activity="Repair (Complex)", segment="defectType >= 8"))
    nobody = simulate(
        twin, AutomateActivity(activity="Repair (Complex)", segment="phoneType == 'T9'")
    )
    assert 0 < t1.treated_share.mean < 0.6 * everyone.treated_share.mean
    assert 0 < big.treated_share.mean < everyone.treated_share.mean
    assert everyone.delta.cycle_time_mean_hours.mean < t1.delta.cycle_time_mean_hours.mean < 0
    assert nobody.treated_share.mean == 0 and nobody.delta.cycle_time_mean_hours.mean == 0
    assert any("matches no case" in n for n in nobody.notes)


def test_combined_scenario_and_dict_input(helpdesk: str) -> None:
    twin = _twin(helpdesk)
    scenario = {
        "kind": "combined",
        "changes": [
            {"kind": "add_capacity", "activity_or_pool": "Closed", "extra": 1},
            {"kind": "add_capacity", "activity_or_pool": "Resolve ticket", "extra": 1},
            {"kind": "automate_activity", "activity": "Assign seriousness"},
        ],
    }
    result = simulate(twin, scenario, cases=200, replications=2)
    assert isinstance(result.scenario, Combined)
    assert result.capacity_what_if["Closed"] == twin.pools["Closed"].capacity + 1
    assert result.capacity_what_if["Resolve ticket"] == twin.pools["Resolve ticket"].capacity + 1
    assert result.delta.cycle_time_mean_hours.mean < 0
    SimulationResult.model_validate_json(result.model_dump_json())


def test_scenario_errors_name_the_problem(helpdesk: str) -> None:
    twin = _twin(helpdesk)
    with pytest.raises(ScenarioError, match="Nope") as err:
        simulate(twin, AutomateActivity(activity="Nope"))
    assert "Take in charge ticket" in str(err.value)  # lists the valid ones
    with pytest.raises(ScenarioError, match="Ghost pool"):
        simulate(twin, AddCapacity(activity_or_pool="Ghost pool", extra=1))
    left = twin.pools["Closed"].capacity - 9
    with pytest.raises(ScenarioError, match=f"'Closed'.*capacity {left}"):
        simulate(twin, AddCapacity(activity_or_pool="Closed", extra=-9))
    with pytest.raises(ScenarioError, match="twice"):
        simulate(twin, Combined(changes=[AutomateActivity(activity="Closed")] * 2))
    with pytest.raises(ScenarioError, match="unknown attribute.*category"):
        simulate(twin, AutomateActivity(activity="Closed", segment="category == 'password'"))
    with pytest.raises(ConditionError, match="function calls"):
        simulate(twin, AutomateActivity(activity="Closed", segment="__import__('os')"))
    with pytest.raises(ScenarioError, match="invalid scenario.*share"):
        simulate(twin, {"kind": "automate_activity", "activity": "Closed", "share": 2})
    with pytest.raises(ScenarioError, match="invalid scenario"):
        simulate(twin, {"kind": "hire_a_robot"})
    with pytest.raises(ScenarioError, match="cases"):
        simulate(twin, AsIs(), cases=0)
    with pytest.raises(ScenarioError, match="replications"):
        simulate(twin, AsIs(), replications=0)


# --- KPIs, new scenarios, simulated logs -----------------------------------------------------


def test_kpis_sla_rework_and_cost(repair: str) -> None:
    twin = _twin(repair)
    pool = twin.pool_of("Test Repair")
    base = simulate(twin, AsIs(), cases=300, replications=3, sla_hours=1.0)
    k = base.as_is
    assert k.cycle_time_p50_hours.mean <= k.cycle_time_p90_hours.mean
    assert 0 < k.sla_attainment.mean < 1 and base.sla_hours == 1.0
    assert 0 < k.rework_rate.mean < 1  # Restart Repair sends cases round again
    assert k.cost_per_case.mean == pytest.approx(
        sum(a.visits_per_case * a.mean_processing_hours for a in twin.activities.values()), rel=0.3
    )  # one unit per worked hour by default
    dear = simulate(twin, AsIs(), cases=300, replications=3, cost_per_hour={pool: 11.0})
    assert dear.as_is.cost_per_case.mean > k.cost_per_case.mean
    assert dear.cost_per_hour[pool] == 11.0
    more = simulate(twin, AddCapacity(activity_or_pool=pool, extra=1), cases=300, replications=2)
    hours = len(twin.pools[pool].working_hours)
    assert more.delta.staff_cost_per_week.mean == pytest.approx(hours)
    with pytest.raises(ScenarioError, match="cost_per_hour.*Nowhere"):
        simulate(twin, AsIs(), cost_per_hour={"Nowhere": 1.0})


def test_shift_capacity_and_calendar_changes(helpdesk: str) -> None:
    twin = _twin(helpdesk)
    pool = "Resolve ticket"
    closed = simulate(
        twin,
        SetShiftCapacity(activity_or_pool=pool, days=["mon", "tue", "wed"], from_hour=0,
                         to_hour=24, capacity=0),
        cases=300, replications=3,
    )  # fmt: skip
    assert closed.delta.waiting_by_pool_hours[pool].mean > 0
    weekend = simulate(
        twin,
        ChangeCalendar(activity_or_pool=pool, days=["sat", "sun"], from_hour=8, to_hour=18),
        cases=300, replications=3,
    )  # fmt: skip
    assert weekend.delta.waiting_by_pool_hours[pool].mean <= 0
    assert weekend.delta.staff_cost_per_week.mean > 0
    with pytest.raises(ScenarioError, match="never work"):
        simulate(twin, SetShiftCapacity(activity_or_pool=pool, days=list(DAYS), from_hour=0,
                                        to_hour=24, capacity=0))  # fmt: skip
    with pytest.raises(ScenarioError, match="to_hour"):
        simulate(twin, {"kind": "change_calendar", "activity_or_pool": pool, "from_hour": 9,
                        "to_hour": 9})  # fmt: skip
    with pytest.raises(ScenarioError, match="capacity"):
        simulate(twin, {"kind": "shift_capacity", "activity_or_pool": pool, "from_hour": 9,
                        "to_hour": 12, "capacity": -1})  # fmt: skip


def test_change_routing_and_auto_approve(repair: str) -> None:
    twin = _twin(repair)
    no_restart = simulate(
        twin, ChangeRouting(from_activity="Test Repair", to_activity="Restart Repair",
                            probability=0.0), cases=300, replications=3,
    )  # fmt: skip
    assert no_restart.what_if.rework_rate.mean < 0.75 * no_restart.as_is.rework_rate.mean
    assert no_restart.delta.cycle_time_mean_hours.mean < 0
    approve = simulate(
        twin, AutoApprove(activity="Repair (Complex)", attribute="defectType", below=5),
        cases=300, replications=3,
    )  # fmt: skip
    assert approve.delta.cycle_time_mean_hours.ci_high < 0
    ended = simulate(
        twin, AutoApprove(activity="Analyze Defect", attribute="defectType", below=100,
                          then_activity="END"), cases=100, replications=1,
    )  # fmt: skip
    assert ended.what_if.cycle_time_mean_hours.mean < 0.5 * ended.as_is.cycle_time_mean_hours.mean
    with pytest.raises(ScenarioError, match="not numeric"):
        simulate(twin, AutoApprove(activity="Repair (Complex)", attribute="phoneType", below=1))
    with pytest.raises(ScenarioError, match="unknown case attribute 'colour'"):
        simulate(twin, AutoApprove(activity="Repair (Complex)", attribute="colour", below=1))
    with pytest.raises(ScenarioError, match="unknown activity 'Nope'"):
        simulate(twin, ChangeRouting(from_activity="Test Repair", to_activity="Nope",
                                     probability=0.5))  # fmt: skip


def test_priority_segment_waits_less(repair: str) -> None:
    twin = _twin(repair)
    m = compile_twin(twin)
    pool = twin.pool_of("Test Repair")
    squeeze = AddCapacity(activity_or_pool=pool, extra=1 - twin.pools[pool].capacity)
    plain = compile_scenario(twin, m, squeeze)
    first = compile_scenario(
        twin, m, Combined(changes=[squeeze, Prioritise(segment="defectType >= 5")])
    )
    cases = draw_cases(m, 400, 0.0, (5, 0))
    vip = np.asarray(first.priority_mask)[cases.rows]
    assert 0.2 < vip.mean() < 0.8
    before, after = run(m, plain, cases, 0).wait, run(m, first, cases, 0).wait
    assert before.mean() > 0.01  # one tester: a queue
    assert after[vip].mean() < before[vip].mean()
    assert after[~vip].mean() > before[~vip].mean()


def test_batching_makes_cases_wait_for_the_batch(repair: str) -> None:
    twin = _twin(repair)
    batched = simulate(twin, BatchActivity(activity="Test Repair", size=10), cases=300,
                       replications=3)  # fmt: skip
    assert batched.delta.waiting_mean_hours.ci_low > 0
    daily = simulate(twin, BatchActivity(activity="Test Repair", at_hours=[16]), cases=300,
                     replications=2)  # fmt: skip
    assert daily.delta.cycle_time_mean_hours.mean > batched.delta.cycle_time_mean_hours.mean
    with pytest.raises(ScenarioError, match="size or release hours"):
        simulate(twin, {"kind": "batch", "activity": "Test Repair"})


def test_simulate_log_is_a_seeded_event_log_on_the_calendar(helpdesk: str) -> None:
    twin = _twin(helpdesk)
    start = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
    log = simulate_log(twin, 200, start, seed=4)
    assert list(log.columns) == ["case_id", "activity", "start_time", "end_time", "resource"]
    assert str(log["start_time"].dt.tz) == "UTC" and (log["end_time"] >= log["start_time"]).all()
    assert log["case_id"].nunique() == 200 and log["start_time"].min() == pd.Timestamp(start)
    assert log.equals(simulate_log(twin, 200, start, seed=4))
    assert not log.equals(simulate_log(twin, 200, start, seed=5))
    take = log[log["activity"] == "Take in charge ticket"]
    hours = take["start_time"].dt.day_of_week * 24 + take["start_time"].dt.hour
    assert hours.isin(twin.pools["Take in charge ticket"].working_hours).all()
    assert set(take["resource"]) <= set(twin.pools["Take in charge ticket"].resource_names)
    automated = simulate_log(twin, 100, start, seed=4,
                             scenario=AutomateActivity(activity="Take in charge ticket"))  # fmt: skip
    assert (automated.loc[automated["activity"] == "Take in charge ticket", "resource"]
            == "automation").all()  # fmt: skip
    with pytest.raises(ScenarioError, match="cases"):
        simulate_log(twin, 0, start)


def test_twin_round_trips_through_json_and_simulates_the_same(repair: str) -> None:
    twin = _twin(repair)
    again = ProcessTwin.model_validate_json(twin.model_dump_json())
    assert again == twin
    scenario = {"kind": "combined", "changes": [
        {"kind": "priority", "segment": "defectType >= 5"},
        {"kind": "change_routing", "from_activity": "Test Repair", "to_activity": "END",
         "probability": 0.9},
    ]}  # fmt: skip
    first = simulate(twin, scenario, cases=100, replications=2, seed=1)
    assert simulate(again, scenario, cases=100, replications=2, seed=1) == first
    SimulationResult.model_validate_json(first.model_dump_json())


def test_simulate_is_a_read_tool() -> None:
    assert simulate.tool_kind is ToolKind.READ


# --- conditions -----------------------------------------------------------------------------


def test_conditions_evaluate_comparisons_and_membership() -> None:
    cond = compile_condition(
        "category == 'password' and priority in ('low', 'medium')", ["category", "priority"]
    )
    assert cond({"category": "password", "priority": "low"})
    assert not cond({"category": "password", "priority": "high"})
    assert not cond({})  # missing attributes are None
    assert evaluate_condition("amount >= 1000 or not vip", {"amount": 5, "vip": False})
    assert not evaluate_condition("amount > 3", {"amount": None})  # incomparable -> false
    assert evaluate_condition("product_type == 'x'", {"product type": "x"})


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os')", "function calls"),
        ("__import__('os').system('true')", "not allowed"),
        ("category.__class__", "attribute access"),
        ("category[0] == 'p'", "subscripts"),
        ("2 ** 100000000", "power operator"),
        ("(lambda: 1)()", "not allowed"),
        ("[x for x in (1, 2)]", "comprehensions"),
        ("__builtins__", "names starting with '_'"),
        ("category ==", "not valid syntax"),
        ("", "non-empty"),
    ],
)
def test_conditions_reject_unsafe_expressions(expression: str, reason: str) -> None:
    with pytest.raises(ConditionError, match=reason):
        compile_condition(expression)


def test_conditions_reject_unknown_names() -> None:
    with pytest.raises(
        ConditionError, match="unknown attribute.*colour.*valid case attributes: category"
    ):
        compile_condition("colour == 'red'", names=["case:category"])
