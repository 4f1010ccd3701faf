"""Mining you can trust on real logs: root causes that do not restate the outcome,
bottlenecks that are queues, models that keep every activity and export reproducibly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from closedloop import cli
from closedloop.tools.log import load_event_log
from closedloop.tools.log.columns import ACTIVITY, CASE, RESOURCE, START, TIMESTAMP
from closedloop.tools.mining import mine
from closedloop.tools.mining import performance as perf
from closedloop.tools.mining.discovery import discover_from_frame
from closedloop.tools.mining.export import bpmn_xml
from closedloop.tools.mining.queues import rank_bottlenecks
from closedloop.tools.mining.rootcause import root_causes


@pytest.fixture(scope="module")
def helpdesk(bundled_data_path: Path) -> pd.DataFrame:
    return load_event_log(bundled_data_path / "helpdesk.xes.gz")


@pytest.fixture(scope="module")
def bundled_data_path() -> Path:
    return Path(__file__).resolve().parents[1] / "closedloop" / "data"


# ----------------------------------------------------------------------------- root causes
def test_an_attribute_that_defines_slow_is_excluded(helpdesk: pd.DataFrame) -> None:
    """Teleclaims-style: a case attribute holding the case's own duration in seconds."""
    cycle = perf.case_table(helpdesk)["cycle"]
    leaky = helpdesk.assign(**{"case:duration": helpdesk[CASE].map(cycle * 3600).round()})
    report = root_causes(leaky, "slow")
    assert "duration" in report.features_excluded
    assert "restates the outcome" in report.features_excluded["duration"]
    assert "duration" not in report.features_considered
    assert not any("duration" in r.text for r in report.rules)
    assert "activity instances" in report.features_excluded
    # the same attribute, allowed in, is exactly the tautology the exclusion prevents
    from closedloop.tools.mining.casefeatures import case_features
    from closedloop.tools.mining.rootcause import _explain

    features = case_features(leaky)[["duration"]]
    y = features["duration"].to_numpy() > np.percentile(features["duration"], 75)
    leaked = _explain(features, y, "slow", "slow", 3, 0.05, 1.1, 10, 0)
    assert leaked.rules and leaked.rules[0].confidence == 1.0


def test_an_attribute_recorded_late_in_the_case_is_excluded(shared_data: Path) -> None:
    """reviewing.xes: the reviewers' results arrive weeks into a case."""
    frame = load_event_log(shared_data / "logs" / "roadtraffic100traces.csv")
    report = root_causes(frame, "slow")
    assert "expense" in report.features_excluded
    assert "recorded late" in report.features_excluded["expense"]


# ----------------------------------------------------------------------------- bottlenecks
def test_helpdesk_bottlenecks_need_support_and_a_relative_threshold(
    helpdesk: pd.DataFrame,
) -> None:
    times = perf.instance_times(helpdesk)
    old = perf.bottlenecks(times, 2.0)  # the fixed 2-hour rule
    assert len(old) >= 10
    ranking = rank_bottlenecks(helpdesk, times)
    assert 1 <= len(ranking.bottlenecks) < len(old)
    counts = times[times["prev"].notna()].groupby("activity")["case"].nunique()
    assert all(counts[b.activity] >= 46 for b in ranking.bottlenecks)  # 1 % of 4,580 cases
    assert all(b.share_of_waiting >= 0.05 for b in ranking.bottlenecks)
    rare = [a for a in counts.index if counts[a] < 46 and a in {b.activity for b in old}]
    assert rare and not {b.activity for b in ranking.bottlenecks} & set(rare)
    absolute = rank_bottlenecks(helpdesk, times, 2.0)
    assert {b.activity for b in absolute.bottlenecks} <= {b.activity for b in old}
    assert any(e.reason.startswith("too few cases") for e in absolute.excluded)


def test_a_planned_date_is_not_a_bottleneck(helpdesk: pd.DataFrame) -> None:
    """'Closed' moved to midnight ten days after the case's previous step, as a date field
    ("Start trip" on its planned day) would hold it: long waits, but no queue."""
    frame = helpdesk.copy()
    closed = frame[ACTIVITY] == "Closed"
    prev_end = frame.groupby(CASE)[TIMESTAMP].shift(1)
    planned = (prev_end[closed] + pd.Timedelta(days=10)).dt.normalize()
    frame.loc[closed, TIMESTAMP] = planned.fillna(frame.loc[closed, TIMESTAMP])
    frame.loc[closed, START] = frame.loc[closed, TIMESTAMP]
    frame = frame.sort_values([CASE, TIMESTAMP], kind="stable").reset_index(drop=True)
    times = perf.instance_times(frame)
    assert "Closed" in {b.activity for b in perf.bottlenecks(times, 2.0)}
    ranking = rank_bottlenecks(frame, times)
    assert "Closed" not in {b.activity for b in ranking.bottlenecks}
    reason = next(e.reason for e in ranking.excluded if e.activity == "Closed")
    assert "planned date" in reason


def test_a_readmission_is_not_a_bottleneck(helpdesk: pd.DataFrame) -> None:
    """'Return' (a readmission) 20-80 days after the last step of a fifth of the cases,
    whatever the load: it dominates the waiting but is no queue."""
    rng = np.random.default_rng(0)
    last = helpdesk.groupby(CASE, sort=False).tail(1)
    back = last.sample(frac=0.2, random_state=0)
    delay = pd.to_timedelta(rng.uniform(20, 80, len(back)), unit="D")
    returns = back.assign(
        **{ACTIVITY: "Return", TIMESTAMP: back[TIMESTAMP] + delay, START: back[TIMESTAMP] + delay}
    )
    frame = pd.concat([helpdesk, returns], ignore_index=True)
    frame = frame.sort_values([CASE, TIMESTAMP], kind="stable").reset_index(drop=True)
    times = perf.instance_times(frame)
    assert "Return" in {b.activity for b in perf.bottlenecks(times, 2.0)}  # the old rule
    ranking = rank_bottlenecks(frame, times)
    assert "Return" not in {b.activity for b in ranking.bottlenecks}
    reason = next(e.reason for e in ranking.excluded if e.activity == "Return")
    assert "independent of workload" in reason
    assert "Closed" in {b.activity for b in ranking.bottlenecks}  # the real queue stays


def test_an_activity_without_a_resource_is_not_work(helpdesk: pd.DataFrame) -> None:
    frame = helpdesk.copy()
    frame.loc[frame[ACTIVITY] == "Closed", RESOURCE] = ""
    ranking = rank_bottlenecks(frame, perf.instance_times(frame))
    reason = next(e.reason for e in ranking.excluded if e.activity == "Closed")
    assert reason.startswith("no resource")


# ----------------------------------------------------------------------------- models
def _tasks(xml: bytes) -> set[str]:
    return {m.decode() for m in re.findall(rb'<bpmn:task id="[^"]+" name="([^"]*)"', xml)}


def test_bpmn_export_keeps_every_activity_and_is_reproducible(shared_data: Path) -> None:
    frame = load_event_log(shared_data / "logs" / "bpic2012.xes.gz")
    model = discover_from_frame(frame)
    activities = set(frame[ACTIVITY])
    assert "O_DECLINED" in model.activities and model.missing_activities == []
    assert any("O_DECLINED" in note for note in model.notes)  # the noise filter dropped it
    xml = bpmn_xml(model)
    assert _tasks(xml) == activities
    assert bpmn_xml(discover_from_frame(frame)) == xml  # byte-identical
    assert b'id="id' not in xml  # no random uuid ids left


def test_bpmn_gateways_are_merged_and_drawn_with_their_marker(bundled_data: Path) -> None:
    frame = load_event_log(bundled_data / "helpdesk.xes.gz")
    xml = bpmn_xml(discover_from_frame(frame))
    tasks = len(_tasks(xml))
    gateways = re.findall(rb'<bpmn:(exclusiveGateway|parallelGateway) id="([^"]+)"', xml)
    assert tasks == 14 and len(gateways) < 34  # pm4py's chained conversion gave 36
    exclusive = [g for kind, g in gateways if kind == b"exclusiveGateway"]
    for ident in exclusive:
        assert re.search(rb'bpmnElement="' + ident + rb'" isMarkerVisible="true"', xml)
    for kind, ident in gateways:  # no pass-through gateway: one in and one out
        flows_in = len(re.findall(rb'targetRef="' + ident + rb'"', xml))
        flows_out = len(re.findall(rb'sourceRef="' + ident + rb'"', xml))
        assert flows_in + flows_out > 2, (kind, ident)


def test_heuristics_miner_is_reachable_from_the_cli(
    bundled_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = str(bundled_data / "running-example.xes")
    out = tmp_path / "h"
    assert cli.main(["mine", log, "--json", "--miner", "heuristics", "--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"]["variant"] == "heuristics"
    assert (out / "model.bpmn").is_file() and (out / "model.pnml").is_file()
    assert cli.main(["mine", log, "--json", "--miner", "imd", "--noise", "0.0"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["parameters"] == {"noise_threshold": 0.0}


def test_mine_reports_the_bottleneck_rule_and_what_it_set_aside(helpdesk: pd.DataFrame) -> None:
    report = mine(helpdesk, compute_fitness=False)
    assert "mean per activity instance" in report.bottleneck_rule
    assert report.bottleneck_threshold_hours > 2.0
