"""The mine tool on real logs, checked against facts computed independently."""

from __future__ import annotations

import csv
import itertools
import json
import statistics
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from closedloop.tools.base import ToolKind
from closedloop.tools.errors import EventLogError, ToolError
from closedloop.tools.log.ingest import frame_from_records, load_event_log
from closedloop.tools.mining.mine import MiningReport, mine, mine_file

SHARED_LOGS = [
    "running-example.csv",
    "running-example.xes",
    "03_repairExample.xes.gz",
    "helpdesk.xes.gz",
    "receipt.csv",
    "reviewing.xes",
    "roadtraffic100traces.csv",
    pytest.param("bpic2012.xes.gz", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def running() -> MiningReport:
    root = Path(__file__).resolve().parents[1] / "closedloop" / "data"
    return mine_file(root / "running-example.csv")


def assert_consistent(report: MiningReport) -> None:
    """Invariants that hold for every log."""
    data = report.model_dump(mode="json")
    json.dumps(data)  # JSON-serialisable, no NaN objects
    assert sum(a.count for a in report.activities) == report.activity_instances
    assert sum(report.start_activities.values()) == report.cases
    assert sum(report.end_activities.values()) == report.cases
    assert sum(e.count for e in report.dfg) == report.activity_instances - report.cases
    assert sum(v.count for v in report.variants) <= report.cases
    assert report.variant_count >= len(report.variants)
    totals = [b.total_delay_hours for b in report.bottlenecks]
    assert totals == sorted(totals, reverse=True)
    assert all(b.waiting_hours >= report.bottleneck_threshold_hours for b in report.bottlenecks)
    assert all(0 < b.cases_affected <= report.cases for b in report.bottlenecks)
    assert all(
        r.cases_with_rework > 0 and r.extra_executions >= r.cases_with_rework for r in report.rework
    )
    ct = report.cycle_time_hours
    assert 0 <= ct.median <= ct.p90 <= ct.max and ct.mean <= ct.max
    assert report.model.transitions > 0 and report.model.places > 0
    assert report.model.fitness is None or 0 <= report.model.fitness <= 1
    assert report.time_range.first <= report.time_range.last


# ----------------------------------------------------------------------------- running example
def _oracle(path: Path) -> dict[str, list[float]]:
    """Waiting hours per activity from the CSV with plain Python (no pandas)."""
    cases: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            cases[row["case:concept:name"]].append(
                (datetime.fromisoformat(row["time:timestamp"]), row["concept:name"])
            )
    waits: dict[str, list[float]] = defaultdict(list)
    for events in cases.values():
        events.sort(key=lambda e: e[0])
        for (t0, _), (t1, act) in itertools.pairwise(events):
            waits[act].append((t1 - t0).total_seconds() / 3600)
    return waits


def test_running_example_known_facts(running: MiningReport, bundled_data: Path) -> None:
    assert_consistent(running)
    assert (running.events, running.activity_instances, running.cases) == (42, 42, 6)
    assert running.has_start_times is False
    names = {a.name for a in running.activities}
    assert names == {
        "register request",
        "examine casually",
        "examine thoroughly",
        "check ticket",
        "decide",
        "reinitiate request",
        "pay compensation",
        "reject request",
    }
    assert running.start_activities == {"register request": 6}
    assert running.end_activities == {"pay compensation": 3, "reject request": 3}
    assert running.variant_count == 6 and all(v.count == 1 for v in running.variants)
    assert max(len(v.activities) for v in running.variants) == 13  # case 5 loops twice
    rework = {r.activity: r for r in running.rework}
    assert rework["reinitiate request"].cases_with_rework == 1  # twice in case 5
    assert rework["reinitiate request"].extra_executions == 1
    assert (rework["check ticket"].cases_with_rework, rework["check ticket"].extra_executions) == (
        2,
        3,
    )
    assert (rework["decide"].cases_with_rework, rework["decide"].extra_executions) == (2, 3)
    assert "register request" not in rework
    assert running.case_attributes == ["case:creator"]
    assert running.model.fitness == pytest.approx(1.0)

    waits = _oracle(bundled_data / "running-example.csv")
    for act in running.activities:
        expected = waits.get(act.name, [0.0])
        assert act.mean_waiting_hours == pytest.approx(statistics.mean(expected), abs=1e-3), (
            act.name
        )
        assert act.median_waiting_hours == pytest.approx(statistics.median(expected), abs=1e-3)
        assert act.total_waiting_hours == pytest.approx(sum(expected), abs=1e-3)
        assert act.mean_processing_hours == 0.0
    # Default rule, relative to the log: mean waiting >= the log's mean per instance and
    # >= 5 % of all waiting, in >= 3 cases (too few waits here for the load test).
    every = [w for ws in waits.values() for w in ws]
    assert running.bottleneck_threshold_hours == pytest.approx(statistics.mean(every), abs=1e-3)
    bottlenecks = {b.activity for b in running.bottlenecks}
    assert bottlenecks == {
        a
        for a, w in waits.items()
        if statistics.mean(w) >= statistics.mean(every)
        and sum(w) >= 0.05 * sum(every)
        and len(w) >= 3
    }
    assert running.bottlenecks[0].activity == max(waits, key=lambda a: sum(waits[a]))


def test_running_example_dfg_edges(running: MiningReport) -> None:
    edges = {(e.source, e.target): e.count for e in running.dfg}
    assert edges[("decide", "reinitiate request")] == 3
    assert edges[("decide", "pay compensation")] == 3
    assert edges[("decide", "reject request")] == 3
    assert ("register request", "decide") not in edges


def test_csv_and_xes_give_the_same_report(bundled_data: Path) -> None:
    a = mine_file(bundled_data / "running-example.csv").model_dump(mode="json")
    b = mine_file(bundled_data / "running-example.xes").model_dump(mode="json")
    for key in ("source", "duration_s", "event_attributes"):
        a.pop(key), b.pop(key)
    assert a == b


def test_threshold_and_top_variants_parameters(bundled_data: Path) -> None:
    frame = load_event_log(bundled_data / "running-example.csv")
    strict = mine(frame, bottleneck_threshold_hours=100.0, top_variants=2, compute_fitness=False)
    assert [b.activity for b in strict.bottlenecks] == ["pay compensation"]
    assert len(strict.variants) == 2 and strict.variant_count == 6
    assert strict.model.fitness is None
    assert mine.tool_kind is ToolKind.READ  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- other real logs
def test_repair_example_processing_and_rework(bundled_data: Path) -> None:
    report = mine_file(bundled_data / "03_repairExample.xes.gz")
    assert_consistent(report)
    assert (report.events, report.activity_instances, report.cases) == (11854, 7733, 1104)
    assert report.events_read == 11855  # one start never completes: dropped and counted
    assert report.events_dropped == {"start without complete": 1}
    assert report.has_start_times
    acts = {a.name: a for a in report.activities}
    for name in ("Analyze Defect", "Repair (Simple)", "Repair (Complex)", "Test Repair"):
        assert acts[name].mean_processing_hours > 0, name
    assert acts["Register"].mean_processing_hours == 0  # complete-only activity
    rework = {r.activity: r for r in report.rework}
    assert rework["Restart Repair"].cases_with_rework > 100
    assert (
        rework["Test Repair"].extra_executions
        == acts["Test Repair"].count - acts["Test Repair"].cases
    )
    two_hours = mine(
        load_event_log(bundled_data / "03_repairExample.xes.gz"),
        bottleneck_threshold_hours=2.0,
        compute_fitness=False,
    )
    assert two_hours.bottlenecks == []  # nothing waits 2 h on average in this simulated log
    assert report.bottlenecks  # relative to the log: its longest queue
    # 0.05 h: the repairs queue for the solvers (Inform User / Archive wait longer but
    # whatever the load: not a queue, see queues.py)
    assert mine(
        load_event_log(bundled_data / "03_repairExample.xes.gz"), bottleneck_threshold_hours=0.05
    ).bottlenecks


def test_helpdesk_bottlenecks_ranked_by_total_delay(bundled_data: Path) -> None:
    report = mine_file(bundled_data / "helpdesk.xes.gz", bottleneck_threshold_hours=2.0)
    assert_consistent(report)
    # 127 rows are written twice (identical in every column): dropped and counted
    assert (report.events_read, report.events, report.cases) == (21348, 21221, 4580)
    assert len(report.bottlenecks) >= 3
    totals = [b.total_delay_hours for b in report.bottlenecks]
    assert totals == sorted(totals, reverse=True)
    acts = {a.name: a for a in report.activities}
    for b in report.bottlenecks:
        assert b.total_delay_hours == pytest.approx(acts[b.activity].total_waiting_hours)
        assert b.waiting_hours == pytest.approx(acts[b.activity].mean_waiting_hours)
    assert sum(b.share_of_waiting for b in report.bottlenecks) <= 1.0001
    assert {"Wait", "Require upgrade"} <= set(acts)


@pytest.mark.parametrize("name", SHARED_LOGS)
def test_every_shared_log_mines(shared_data: Path, name: str) -> None:
    report = mine_file(shared_data / "logs" / name)
    assert_consistent(report)
    assert report.source.endswith(name)


# ----------------------------------------------------------------------------- inputs
def test_mine_records_frame_and_raw_frames(bundled_data: Path) -> None:
    def event(activity: str, lifecycle: str, hhmm: str, resource: str) -> dict[str, object]:
        return {
            "case_id": "T-1",
            "activity": activity,
            "lifecycle": lifecycle,
            "timestamp": f"2024-01-01T{hhmm}:00Z",
            "resource": resource,
            "attributes": {"priority": "high"},
        }

    records = [
        event("triage", "start", "09:00", "ann"),
        event("triage", "complete", "09:30", "ann"),
        event("fix", "start", "13:00", "bo"),
        event("fix", "complete", "15:00", "bo"),
    ]
    report = mine(frame_from_records(records))
    assert (report.events, report.activity_instances, report.cases) == (4, 2, 1)
    fix = next(a for a in report.activities if a.name == "fix")
    assert (fix.mean_waiting_hours, fix.mean_processing_hours) == (3.5, 2.0)
    assert [b.activity for b in report.bottlenecks] == ["fix"]
    assert report.case_attributes == ["case:priority"]
    assert report.cycle_time_hours.mean == 6.0

    raw = pd.read_csv(bundled_data / "running-example.csv", index_col=0)  # not canonical yet
    assert mine(raw, compute_fitness=False).cases == 6


def test_filtered_frame_counts_its_own_rows(bundled_data: Path) -> None:
    frame = load_event_log(bundled_data / "03_repairExample.xes.gz")
    assert mine(frame, compute_fitness=False).events == 11854
    subset = frame[frame["case:concept:name"].isin(["1", "2", "3"])]
    report = mine(subset, compute_fitness=False)
    assert report.cases == 3 and report.events == report.activity_instances == len(subset)


def test_mine_rejects_bad_parameters(running: MiningReport, bundled_data: Path) -> None:
    frame = load_event_log(bundled_data / "running-example.csv")
    with pytest.raises(ToolError, match=">= 0"):
        mine(frame, bottleneck_threshold_hours=-1)


def test_mine_rejects_empty_and_non_frames() -> None:
    with pytest.raises(EventLogError, match="no events"):
        mine(pd.DataFrame())
    with pytest.raises(EventLogError, match="DataFrame"):
        mine([{"case_id": "a"}])  # type: ignore[arg-type]


def test_mine_prints_nothing(bundled_data: Path, capfd: pytest.CaptureFixture[str]) -> None:
    mine_file(bundled_data / "running-example.xes")
    out, err = capfd.readouterr()
    assert out == ""
    assert "it/s" not in err and "%|" not in err  # no progress bars
