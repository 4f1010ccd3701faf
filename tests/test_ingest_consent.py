"""Nothing dropped without consent: duplicates, lifecycle and the words for counting events.

Real logs: helpdesk (127 rows written twice), the repair example (start/complete),
BPI Challenge 2012 (schedule/start/complete). Same-time repeats that are real work
are built from helpdesk rows as a log without a resource column would hold them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from closedloop import cli
from closedloop.tools.errors import EventLogError
from closedloop.tools.log import event_counts, frame_from_records, load_event_log, to_canonical
from closedloop.tools.log.columns import ACTIVITY, CASE, RESOURCE, TIMESTAMP
from closedloop.tools.mining import mine
from closedloop.tools.mining.performance import rework


def _raw_helpdesk(bundled_data: Path) -> pd.DataFrame:
    import pm4py

    return pm4py.read_xes(str(bundled_data / "helpdesk.xes.gz"), variant="rustxes")


def test_rows_identical_in_every_column_are_dropped_and_counted(bundled_data: Path) -> None:
    frame = load_event_log(bundled_data / "helpdesk.xes.gz")
    counts = event_counts(frame)
    assert counts.events_read == 21348
    assert counts.dropped == {"duplicate": 127}
    assert counts.events == 21348 - 127 == len(frame)  # what is analysed, no lifecycle here
    kept = load_event_log(bundled_data / "helpdesk.xes.gz", duplicates="keep")
    assert len(kept) == 21348 and event_counts(kept).dropped == {}
    assert any("identical in every column" in w for w in frame.attrs["warnings"])


def test_same_time_repeats_without_a_resource_column_are_kept(bundled_data: Path) -> None:
    """A log without resources, timestamps to the minute: the same activity twice in one
    minute of a case, with a different attribute, is repeated work and stays by default."""
    raw = _raw_helpdesk(bundled_data).drop(columns=[RESOURCE])
    raw[TIMESTAMP] = pd.to_datetime(raw[TIMESTAMP], utc=True).dt.floor("min")
    raw = raw.drop_duplicates(ignore_index=True)  # rows written twice (see above)
    first = raw.groupby(CASE).head(1).head(300)
    repeat = first.assign(product=first["product"].astype("str") + "-2")
    log = pd.concat([raw, repeat], ignore_index=True)
    frame = to_canonical(log)
    assert len(frame) == len(log) and event_counts(frame).dropped == {}
    opted = to_canonical(log, duplicates="same-time")
    assert event_counts(opted).dropped["duplicate"] >= 300
    assert len(opted) == len(log) - event_counts(opted).dropped["duplicate"]
    with pytest.raises(EventLogError, match="duplicates must be one of"):
        to_canonical(log, duplicates="fuzzy")  # type: ignore[arg-type]


def test_lifecycle_transitions_are_counted_not_silently_dropped(shared_data: Path) -> None:
    frame = load_event_log(shared_data / "logs" / "bpic2012.xes.gz")
    counts = event_counts(frame)
    assert counts.events_read == 262_200
    assert counts.dropped == {"lifecycle schedule": 26_318, "start without complete": 3}
    assert counts.events == 262_200 - 26_318 - 3
    assert counts.activity_instances == len(frame) == 164_506  # start+complete = one instance
    report = mine(frame, compute_fitness=False)
    assert (report.events, report.events_read, report.activity_instances) == (
        counts.events,
        counts.events_read,
        counts.activity_instances,
    )
    assert report.events_dropped == counts.dropped


def test_rework_is_counted_on_instances_not_lifecycle_events(bundled_data: Path) -> None:
    """The repair log has start and complete events: pairing them is not rework."""
    import pm4py

    paired = load_event_log(bundled_data / "03_repairExample.xes.gz")
    raw = pm4py.read_xes(str(bundled_data / "03_repairExample.xes.gz"), variant="rustxes")
    collapsed = to_canonical(raw.drop(columns=["lifecycle:transition"]))  # lifecycle lost
    by_paired = {r.activity: r.extra_executions for r in rework(paired)}
    by_collapsed = {r.activity: r.extra_executions for r in rework(collapsed)}
    # "Analyze Defect" has a start and a complete in every case: collapsed, it looks reworked
    assert "Analyze Defect" not in by_paired
    assert by_collapsed["Analyze Defect"] >= 1000
    instances = paired.groupby([CASE, ACTIVITY]).size()
    assert sum(by_paired.values()) == int((instances - 1).sum())


def test_a_log_s_own_lifecycle_states_become_activities(bundled_data: Path) -> None:
    """States outside the XES model (BPI 2013 style 'In Progress', 'Awaiting Assignment')
    are kept as activity+state, so a status change is not rework of the activity."""
    records = []
    for case in ("c1", "c2"):
        for i, state in enumerate(("Awaiting Assignment", "In Progress", "Completed")):
            records.append(
                {
                    "case_id": case,
                    "activity": "Accepted" if state != "Completed" else "Completed",
                    "lifecycle": state,
                    "timestamp": f"2024-01-0{i + 1}T10:00:00Z",
                }
            )
    frame = frame_from_records(records)
    assert set(frame[ACTIVITY]) == {
        "Accepted+Awaiting Assignment",
        "Accepted+In Progress",
        "Completed+Completed",
    }
    assert rework(frame) == []
    assert event_counts(frame).dropped == {} and len(frame) == 6


def test_cli_reports_the_same_counts_and_takes_the_duplicates_flag(
    bundled_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = str(bundled_data / "helpdesk.xes.gz")
    assert cli.main(["mine", log, "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert (default["events_read"], default["events"]) == (21348, 21221)
    assert default["events_dropped"] == {"duplicate": 127}
    assert cli.main(["mine", log, "--duplicates", "keep"]) == 0
    text = capsys.readouterr().out
    assert "21348 events read, 0 dropped, 21348 events analysed as 21348 activity instances" in text
