"""The full diagnosis and the performance extras (hand-offs, workload, SLA) on real logs."""

from __future__ import annotations

import csv
import itertools
import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from closedloop.tools.base import ToolKind
from closedloop.tools.errors import ToolError
from closedloop.tools.log.ingest import load_event_log
from closedloop.tools.mining.conformance import check_conformance
from closedloop.tools.mining.diagnose import DiagnosisReport, diagnose, diagnose_file
from closedloop.tools.mining.mine import MiningReport, mine


def running_cases(path: Path) -> dict[str, list[tuple[datetime, str, str]]]:
    """(completion, activity, resource) per case from the CSV, in plain Python."""
    cases: dict[str, list[tuple[datetime, str, str]]] = defaultdict(list)
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            cases[row["case:concept:name"]].append(
                (
                    datetime.fromisoformat(row["time:timestamp"]),
                    row["concept:name"],
                    row["org:resource"],
                )
            )
    for events in cases.values():
        events.sort(key=lambda e: e[0])
    return cases


@pytest.fixture(scope="module")
def running() -> DiagnosisReport:
    data = Path(__file__).resolve().parents[1] / "closedloop" / "data"
    return diagnose_file(
        data / "running-example.csv",
        reference_model=data / "running-example.pnml",
        sla_hours=200.0,
    )


def test_running_example_diagnosis(running: DiagnosisReport) -> None:
    assert isinstance(running, MiningReport)
    json.dumps(running.model_dump(mode="json"))
    assert (running.cases, running.activity_instances) == (6, 42)
    assert running.reworked_cases == 2 and running.reworked_cases_share == pytest.approx(
        1 / 3, 1e-3
    )
    assert running.conformance.model == "reference model running-example.pnml"
    assert running.conformance.fitness == 1.0 and running.conformance.exact
    own = running.discovered_model_conformance
    assert own is not None and own.model.startswith("discovered model")
    assert running.model.fitness == own.fitness and running.model.transitions > 0
    assert [r.target.split(":")[0] for r in running.root_causes] == [
        "slow",
        "reworked",
        "breach the SLA",
    ]
    assert {"read", "mine", "discover", "conformance_discovered", "root_causes", "total"} <= set(
        running.timings_s
    )
    assert running.duration_s <= running.timings_s["total"]
    assert diagnose.tool_kind is ToolKind.READ  # type: ignore[attr-defined]


def test_handoffs_workload_and_sla_against_plain_python(
    running: DiagnosisReport, bundled_data: Path
) -> None:
    cases = running_cases(bundled_data / "running-example.csv")
    pairs: dict[tuple[str, str], list[float]] = defaultdict(list)
    transitions = 0
    for events in cases.values():
        for (t0, _, r0), (t1, _, r1) in itertools.pairwise(events):
            transitions += 1
            if r0 != r1:
                pairs[(r0, r1)].append((t1 - t0).total_seconds() / 3600)
    handoffs = running.handoffs
    assert handoffs is not None
    assert handoffs.handoffs == sum(len(w) for w in pairs.values())
    assert handoffs.share_of_transitions == pytest.approx(handoffs.handoffs / transitions, 1e-3)
    for pair in handoffs.top_pairs:
        waits = pairs[(pair.source_resource, pair.target_resource)]
        assert pair.count == len(waits)
        assert pair.mean_wait_hours == pytest.approx(sum(waits) / len(waits), abs=1e-3)

    workload = {w.resource: w for w in running.resource_workload or []}
    for resource in {r for events in cases.values() for _, _, r in events}:
        rows = [(c, a) for c, events in cases.items() for _, a, r in events if r == resource]
        assert workload[resource].activity_instances == len(rows)
        assert workload[resource].cases == len({c for c, _ in rows})
        assert workload[resource].busy_hours == 0.0  # no start times in this log

    cycle = {c: (e[-1][0] - e[0][0]).total_seconds() / 3600 for c, e in cases.items()}
    sla = running.sla
    assert sla is not None and sla.sla_hours == 200.0
    assert sla.breached_cases == sum(h > 200 for h in cycle.values())
    assert sla.breach_rate == pytest.approx(sla.breached_cases / 6, abs=1e-4)
    totals = [w.total_waiting_hours_breached for w in sla.longest_waits]
    assert totals == sorted(totals, reverse=True)
    assert sum(w.share_of_breach_waiting for w in sla.longest_waits) == pytest.approx(1, abs=1e-3)


def test_diagnosis_keeps_mine_fields_and_matches_conformance(bundled_data: Path) -> None:
    frame = load_event_log(bundled_data / "03_repairExample.xes.gz")
    report = diagnose(frame, seed=0)
    mined = mine(frame, compute_fitness=False)
    for field in ("activities", "bottlenecks", "rework", "variants", "dfg", "cycle_time_hours"):
        assert getattr(report, field) == getattr(mined, field), field
    assert report.handoffs == mined.handoffs and report.sla is None
    assert report.discovered_model_conformance is None
    alone = check_conformance(frame, seed=0)
    assert report.conformance.model_dump(exclude={"duration_s"}) == alone.model_dump(
        exclude={"duration_s"}
    )
    assert report.model.fitness == report.conformance.fitness
    rework = next(r for r in report.root_causes if r.target.startswith("reworked"))
    assert rework.rules and rework.rules[0].lift > 1


def test_parquet_cache_gives_the_same_report(bundled_data: Path, tmp_path: Path) -> None:
    path = bundled_data / "helpdesk.xes.gz"
    cold = diagnose_file(path, cache_dir=tmp_path)
    warm = diagnose_file(path, cache_dir=tmp_path)
    assert "read" in cold.timings_s and "read_cached" in warm.timings_s
    assert len(list(tmp_path.glob("helpdesk.xes.gz.*.parquet"))) == 1
    skip = {"duration_s", "timings_s"}
    a, b = cold.model_dump(exclude=skip), warm.model_dump(exclude=skip)
    for report in (a, b):
        report["conformance"].pop("duration_s")
    assert a == b


def test_bad_inputs(bundled_data: Path, tmp_path: Path) -> None:
    frame = load_event_log(bundled_data / "running-example.csv")
    with pytest.raises(ToolError, match="sla_hours"):
        diagnose(frame, sla_hours=0)
    with pytest.raises(ToolError, match="not found"):
        diagnose(frame, reference_model=tmp_path / "nope.bpmn")


def test_diagnosis_prints_nothing(bundled_data: Path, capfd: pytest.CaptureFixture[str]) -> None:
    diagnose_file(bundled_data / "running-example.xes")
    out, err = capfd.readouterr()
    assert out == ""
    assert "it/s" not in err and "%|" not in err
