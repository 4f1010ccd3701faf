"""Measuring a live change (closedloop.tools.measure) from event records like the enterprise API's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from closedloop.contracts import Guardrails, KpiMeasurement
from closedloop.tools.measure import measure_cohorts, prediction_summary
from closedloop.tools.twin import AddCapacity, fit_twin, simulate

T0 = datetime(2024, 3, 1, tzinfo=UTC)
GUARD = Guardrails(max_relative_worsening=0.1, min_cases_per_cohort=5, max_writes=1,
                   end_activities=["Close"], start_activities=["Register"])


def case(i: int, experiment: str, hours: float, finished: bool = True, first: str = "Register") -> list[dict]:
    start = T0 + timedelta(hours=i)
    steps = [(first, 0.0), ("Resolve", hours / 2)] + ([("Close", hours)] if finished else [])
    return [{"case_id": f"c{i}", "activity": a, "lifecycle": "complete", "resource": "r",
             "timestamp": (start + timedelta(hours=at)).isoformat(), "attributes": {"experiment": experiment}}
            for a, at in steps]


def records(treatment_hours: list[float], control_hours: list[float]) -> list[dict]:
    out, i = [], 0
    for label, values in (("r1:treatment", treatment_hours), ("r1:control", control_hours)):
        for h in values:
            out += case(i, label, h)
            i += 1
    # Never counted: unfinished, started before the change, another rule's cohort.
    out += case(100, "r1:treatment", 0.5, finished=False) + case(101, "r1:control", 99.0, first="Resolve")
    out += case(102, "r2:treatment", 0.1)
    return out


def test_treatment_faster_than_control() -> None:
    m = measure_cohorts(records([2.0, 2.5, 3.0, 2.2, 2.8], [6.0, 6.5, 7.0, 6.2, 6.8]), GUARD, ["r1"], source="t")
    assert isinstance(m, KpiMeasurement)
    assert (m.treatment_n, m.control_n, m.enough_cases) == (5, 5, True)
    assert m.treatment.mean == pytest.approx(2.5) and m.control.mean == pytest.approx(6.5)
    assert m.delta == pytest.approx(-4.0) and m.ci_high < 0
    assert m.guardrail_breached is False


def test_significantly_slower_treatment_breaches_the_guardrail() -> None:
    m = measure_cohorts(records([8.0, 8.5, 9.0, 8.2, 8.8], [6.0, 6.5, 7.0, 6.2, 6.8]), GUARD, ["r1"], source="t")
    assert m.ci_low > 0 and m.relative_pct > 10 and m.guardrail_breached is True


def test_too_few_cases_leave_out_the_delta() -> None:
    m = measure_cohorts(records([2.0, 2.5, 3.0], [6.0, 6.5, 7.0]), GUARD, ["r1"], source="t")
    assert (m.enough_cases, m.treatment_n, m.control_n) == (False, 3, 3)
    assert m.delta is not None  # 2+ per cohort: measured, though not yet enough to decide
    lone = measure_cohorts(records([2.0], [6.0]), GUARD, ["r1"], source="t")
    assert lone.delta is None and "delta" not in lone.model_dump()  # the step JSON keeps its old shape
    empty = measure_cohorts([], GUARD, ["r1"], source="t")
    assert empty.model_dump() == {"kpi": "cycle_time_hours", "source": "t", "events": 0,
                                  "min_cases_per_cohort": 5, "enough_cases": False, "treatment_n": 0,
                                  "control_n": 0}


@pytest.mark.parametrize("share", [0.25, 1.0])
def test_prediction_from_a_real_simulation(bundled_data, share) -> None:
    from closedloop.tools.log import load_event_log

    frame = load_event_log(bundled_data / "running-example.csv")
    twin = fit_twin(frame, seed=3)
    result = simulate(twin, AddCapacity(activity_or_pool=twin.pool_of("examine casually"), extra=1),
                      cases=30, replications=3, seed=3)
    result = result.model_copy(update={"treated_share": result.treated_share.model_copy(update={"mean": share})})
    p = prediction_summary(result)
    d = result.delta.cycle_time_mean_hours
    assert p.ci_low_hours == pytest.approx(d.ci_low, abs=1e-3)
    scale = 1 / share
    assert p.delta_per_treated_case_hours == pytest.approx(d.mean * scale, abs=2e-3)
    assert p.ci_low_per_treated_case_hours == pytest.approx(d.ci_low * scale, abs=2e-3)
    assert p.ci_high_per_treated_case_hours == pytest.approx(d.ci_high * scale, abs=2e-3)
    assert p == prediction_summary(result.model_dump(mode="json"))
