"""More broken logs: each is refused with a clear error, or repaired and flagged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from closedloop.tools.errors import EventLogError
from closedloop.tools.log import frame_from_records
from closedloop.tools.log.ingest import load_event_log

BROKEN = Path(__file__).parent / "data" / "broken"


def test_missing_case_id_is_refused_by_name():
    with pytest.raises(EventLogError, match=r"missing_case_id\.csv.*missing case"):
        load_event_log(BROKEN / "missing_case_id.csv")


def test_missing_categorical_case_attribute_is_imputed_and_flagged():
    frame = load_event_log(BROKEN / "missing_category.csv")
    by_case = frame.groupby("case:concept:name")
    assert by_case["case:category"].first().to_dict() == {
        "c1": "hardware", "c2": "hardware", "c3": "hardware", "c4": "software"}
    flags = by_case["imputed:category"].first().to_dict()
    assert flags == {"c1": False, "c2": True, "c3": False, "c4": False}
    assert any("imputed 'category' for 1 cases" in w for w in frame.attrs["warnings"])


def test_a_missing_cohort_is_never_imputed():
    """A case without a cohort is in no experiment; giving it the mode would invent a treated case."""
    records = [
        {"case_id": c, "activity": a, "timestamp": f"2026-01-0{d}T10:00:00Z",
         "attributes": {"category": cat, "cohort": coh}}
        for c, cat, coh in (("c1", "hw", "treatment"), ("c2", "hw", "treatment"), ("c3", None, None))
        for d, a in ((1, "register"), (2, "resolve"))
    ]
    frame = frame_from_records(records)
    per_case = frame.groupby("case:concept:name").first()
    assert per_case["case:cohort"].isna().to_dict() == {"c1": False, "c2": False, "c3": True}
    assert "imputed:cohort" not in frame.columns
    assert per_case.loc["c3", "case:category"] == "hw"  # other attributes are still imputed


def test_duplicate_events_are_dropped_with_a_warning():
    frame = load_event_log(BROKEN / "duplicate_events.csv")
    assert list(frame["concept:name"]) == ["register", "resolve"]
    assert any("dropped 1 duplicate events" in w for w in frame.attrs["warnings"])


def test_mixed_time_zones_are_normalised_to_utc():
    frame = load_event_log(BROKEN / "mixed_zones.csv")
    got = dict(zip(frame["case:concept:name"] + "/" + frame["concept:name"], frame["time:timestamp"]))
    assert got["c1/register"] == pd.Timestamp("2024-03-31T07:00:00Z")
    assert got["c2/register"] == pd.Timestamp("2024-03-31T12:00:00Z")
    # Ordered by UTC time, not by the written local time.
    assert list(frame.loc[frame["case:concept:name"] == "c1", "concept:name"]) == ["register", "resolve"]


def test_very_long_attribute_values_load_without_harm(tmp_path):
    path = tmp_path / "long.csv"
    long_value = "x" * 200_000
    path.write_text(f"case_id,activity,timestamp,note\nc1,register,2024-01-01T09:00:00Z,{long_value}\n"
                    "c1,resolve,2024-01-01T10:00:00Z,ok\n")
    frame = load_event_log(path)
    assert len(frame) == 2 and frame["note"].str.len().max() == 200_000
