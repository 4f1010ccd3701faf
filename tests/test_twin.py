"""Fitting a process twin from canonical event frames (real bundled logs and tiny frames)."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from closedloop.tools.errors import EventLogError, ScenarioError
from closedloop.tools.eventlog import load_event_log
from closedloop.tools.simulate import AsIs, simulate
from closedloop.tools.twin import END, SAMPLE_CAP, ProcessTwin, fit_twin, queue_wait_hours


@cache
def _twin(path: str) -> ProcessTwin:
    return fit_twin(load_event_log(path))


def _frame(events: list[tuple], **case_attrs: dict) -> pd.DataFrame:
    """Tiny canonical frame from (case, activity, start, end, resource) tuples; times in hours."""
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    rows = [
        {
            "case:concept:name": c,
            "concept:name": a,
            "start_timestamp": t0 + pd.Timedelta(hours=s),
            "time:timestamp": t0 + pd.Timedelta(hours=e),
            "org:resource": r,
        }
        for c, a, s, e, r in events
    ]
    df = pd.DataFrame(rows)
    for name, by_case in case_attrs.items():
        df[f"case:{name}"] = df["case:concept:name"].map(by_case)
    return df


def test_fit_helpdesk(bundled_data: Path) -> None:
    twin = _twin(str(bundled_data / "helpdesk.xes.gz"))
    assert twin.n_cases == 4580 and not twin.has_start_times
    assert any("no start times" in w for w in twin.warnings)
    assert math.isclose(sum(twin.start_probabilities.values()), 1.0)
    for row in twin.transitions.values():
        assert math.isclose(sum(row.values()), 1.0)
    assert twin.transitions["Closed"].get(END, 0) > 0.9
    assert 900 < twin.observed.mean_cycle_time_hours < 1100
    assert set(twin.pools) == set(twin.activities)  # no org:group: one pool per activity
    assert all(p.capacity >= 1 and p.utilisation <= 0.85 + 1e-9 for p in twin.pools.values())
    assert twin.pools["Take in charge ticket"].capacity == 6  # median weekly distinct resources
    for act in twin.activities.values():
        assert 1 <= len(act.processing_hours) <= SAMPLE_CAP and len(act.delay_hours) <= SAMPLE_CAP
        assert min(act.processing_hours) >= 0 and min(act.delay_hours) >= 0
    assert len(twin.interarrival_hours) <= SAMPLE_CAP and len(twin.arrival_profile) == 168
    assert math.isclose(sum(twin.arrival_profile), 1.0, abs_tol=1e-3)
    # event attributes constant within every case become case attributes
    assert "support_section" in twin.case_attributes
    assert ProcessTwin.model_validate_json(twin.model_dump_json()) == twin


def test_fit_repair_uses_start_times(bundled_data: Path) -> None:
    twin = _twin(str(bundled_data / "03_repairExample.xes.gz"))
    assert twin.has_start_times
    acts = twin.activities
    assert (
        acts["Repair (Complex)"].mean_processing_hours
        > acts["Repair (Simple)"].mean_processing_hours
    )
    assert twin.pools["Test Repair"].capacity == 6
    assert {"phoneType", "defectType"} <= set(twin.case_attributes)
    assert all(
        isinstance(r["defectType"], int) for r in twin.case_attribute_samples if r["defectType"]
    )
    assert 0.9 < twin.observed.mean_cycle_time_hours < 1.3


def test_fit_is_deterministic(bundled_data: Path) -> None:
    frame = load_event_log(bundled_data / "03_repairExample.xes.gz")
    assert fit_twin(frame, seed=3) == fit_twin(frame, seed=3)


def test_tiny_frame_routing_and_attributes() -> None:
    frame = _frame(
        [
            ("1", "a", 0, 1, "x"), ("1", "b", 2, 4, "y"),
            ("2", "a", 3, 4, "x"), ("2", "c", 5, 6, "y"),
            ("3", "a", 6, 7, "x"), ("3", "b", 7, 9, "y"),
        ],
        category={"1": "password", "2": "hardware", "3": "password"},
    )  # fmt: skip
    twin = fit_twin(frame)
    assert twin.start_probabilities == {"a": 1.0}
    assert twin.transitions["a"] == pytest.approx({"b": 2 / 3, "c": 1 / 3})
    assert twin.transitions["b"] == {END: 1.0}
    assert twin.activities["b"].mean_processing_hours == pytest.approx(2.0)
    assert twin.activities["b"].mean_waiting_hours == pytest.approx(0.5)
    assert twin.case_attributes == ["category"]
    assert sorted(r["category"] for r in twin.case_attribute_samples) == [
        "hardware",
        "password",
        "password",
    ]
    assert twin.observed.mean_cycle_time_hours == pytest.approx(10 / 3)


def test_org_group_defines_pools() -> None:
    frame = _frame(
        [
            ("1", "a", 0, 1, "x"), ("1", "b", 1, 2, "y"),
            ("2", "a", 1, 2, "y"), ("2", "b", 2, 3, "x"),
            ("3", "a", 2, 3, "z"), ("3", "c", 3, 5, "w"),
        ]
    )  # fmt: skip
    frame["org:group"] = frame["concept:name"].map({"a": "desk", "b": "desk", "c": ""})
    twin = fit_twin(frame)
    assert set(twin.pools) == {"desk", "c"}
    assert twin.pools["desk"].activities == ["a", "b"] and twin.pool_of("b") == "desk"
    assert twin.pools["desk"].estimated_capacity == 3  # x, y, z in the same week
    assert twin.pools["desk"].resources == 3


def test_degenerate_single_case_single_activity() -> None:
    twin = fit_twin(_frame([("only", "a", 0, 0, "")]))
    assert any("only one case" in w for w in twin.warnings)
    assert any("single activity" in w for w in twin.warnings)
    assert any("durations are zero" in w for w in twin.warnings)
    assert any("without recorded resources" in w for w in twin.warnings)
    result = simulate(twin, AsIs(), cases=20, replications=2)
    assert result.as_is.cycle_time_mean_hours.mean == 0.0
    assert result.predicted_delta_pct.mean == 0.0


def test_empty_or_malformed_frames_raise() -> None:
    with pytest.raises(ScenarioError, match="empty"):
        fit_twin(
            _frame([]).reindex(columns=["case:concept:name", "concept:name", "time:timestamp"])
        )
    with pytest.raises(EventLogError, match="concept:name"):
        fit_twin(
            pd.DataFrame(
                {
                    "case:concept:name": ["1"],
                    "time:timestamp": [pd.Timestamp("2024-01-01", tz="UTC")],
                }
            )
        )


def test_queue_wait_formula() -> None:
    # M/M/1 with rho = 0.5 and mean service 1 h waits rho / (mu - lambda) = 1 h in queue
    assert queue_wait_hours(0.5, 1.0, 1.0, 1) == pytest.approx(1.0)
    # deterministic service halves it (Pollaczek-Khinchine), more servers cut it
    assert queue_wait_hours(0.5, 1.0, 0.0, 1) == pytest.approx(0.5)
    assert queue_wait_hours(0.5, 1.0, 1.0, 2) < 0.1
    assert queue_wait_hours(1.0, 1.0, 1.0, 1) == math.inf
    assert queue_wait_hours(0.0, 1.0, 1.0, 1) == 0.0
