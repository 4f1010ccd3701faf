"""Deterministic parts of the Planner: predictions it reads from simulations, boundaries of a case."""

from __future__ import annotations

import pytest

from closedloop.tools.act.planning import boundary_activities
from closedloop.tools.measure.prediction import prediction_summary


def _estimate(mean: float, low: float, high: float) -> dict:
    return {"mean": mean, "ci_low": low, "ci_high": high}


def test_prediction_is_scaled_to_the_treated_cases():
    result = {"as_is": {"cycle_time_mean_hours": _estimate(14.0, 13.0, 15.0)},
              "delta": {"cycle_time_mean_hours": _estimate(-1.6, -2.0, -1.2)},
              "treated_share": _estimate(0.16, 0.15, 0.17)}
    p = prediction_summary(result)
    assert p.delta_pct == pytest.approx(-11.43, abs=0.01)
    assert p.delta_per_treated_case_hours == pytest.approx(-10.0)
    assert p.ci_high_pct < 0
    # The interval per treated case is the overall interval over the treated share.
    assert (p.ci_low_per_treated_case_hours, p.ci_high_per_treated_case_hours) == pytest.approx((-12.5, -7.5))


def test_a_change_for_everyone_is_not_rescaled():
    result = {"as_is": {"cycle_time_mean_hours": _estimate(10.0, 9.0, 11.0)},
              "delta": {"cycle_time_mean_hours": _estimate(-1.0, -1.5, -0.5)},
              "treated_share": _estimate(0.0, 0.0, 0.0)}
    p = prediction_summary(result)
    assert p.delta_per_treated_case_hours == pytest.approx(-1.0)
    assert (p.ci_low_per_treated_case_hours, p.ci_high_per_treated_case_hours) == pytest.approx((-1.5, -0.5))


def test_cases_cut_off_by_the_log_end_do_not_make_end_activities():
    report = {"activities": [{"name": "Register", "count": 100}, {"name": "Resolve", "count": 100},
                             {"name": "Close", "count": 95}],
              "dfg": [{"source": "Register", "target": "Resolve", "count": 100},
                      {"source": "Resolve", "target": "Close", "count": 95}],
              "start_activities": {"Register": 100}, "end_activities": {"Close": 95, "Resolve": 5}}
    assert boundary_activities(report) == {"end_activities": ["Close"], "start_activities": ["Register"]}
