"""Event log ingest: real logs, column detection, lifecycle pairing, broken inputs."""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from closedloop.tools.errors import EventLogError
from closedloop.tools.log.ingest import (
    ACTIVITY,
    CASE,
    RESOURCE,
    START,
    TIMESTAMP,
    ColumnMapping,
    EventLogSummary,
    frame_from_records,
    load_event_log,
    to_canonical,
)

BROKEN = Path(__file__).parent / "data" / "broken"
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


def assert_canonical(frame: pd.DataFrame) -> None:
    """The contract every other tool relies on."""
    assert list(frame.columns[:5]) == [CASE, ACTIVITY, TIMESTAMP, START, RESOURCE]
    for col in (CASE, ACTIVITY, RESOURCE):
        assert pd.api.types.is_string_dtype(frame[col]), col
        assert frame[col].notna().all(), col
    for col in (TIMESTAMP, START):
        assert isinstance(frame[col].dtype, pd.DatetimeTZDtype), col
        assert str(frame[col].dt.tz) == "UTC"
        assert frame[col].notna().all()
    assert (frame[START] <= frame[TIMESTAMP]).all()
    ordered = frame.sort_values([CASE, TIMESTAMP], kind="stable")
    assert ordered.index.equals(frame.index), "rows must be sorted by case, then completion"
    assert isinstance(frame.index, pd.RangeIndex)
    assert frame.attrs["raw_events"] >= len(frame) > 0


# ----------------------------------------------------------------------------- real logs
@pytest.mark.parametrize("name", SHARED_LOGS)
def test_every_shared_log_loads_canonical(shared_data: Path, name: str) -> None:
    frame = load_event_log(shared_data / "logs" / name)
    assert_canonical(frame)
    summary = EventLogSummary.of(frame)
    assert summary.cases > 0 and summary.rows == len(frame)


def test_running_example_csv_and_xes_agree(bundled_data: Path) -> None:
    csv = load_event_log(bundled_data / "running-example.csv")
    xes = load_event_log(bundled_data / "running-example.xes")
    for frame in (csv, xes):
        assert_canonical(frame)
        assert len(frame) == 42 and frame[CASE].nunique() == 6
        assert frame.attrs["raw_events"] == 42
        assert {"register request", "reinitiate request", "pay compensation"} <= set(
            frame[ACTIVITY]
        )
        assert (frame[START] == frame[TIMESTAMP]).all()  # no lifecycle: start = completion
        assert "Unnamed: 0" not in frame.columns  # pandas index column of the CSV dropped
    key = [CASE, ACTIVITY, TIMESTAMP, RESOURCE]
    pd.testing.assert_frame_equal(csv[key], xes[key])
    # 2010-12-30 14:32:00+01:00 in the file is 13:32 UTC
    first = csv[(csv[CASE] == "3") & (csv[ACTIVITY] == "register request")][TIMESTAMP].iloc[0]
    assert first == pd.Timestamp("2010-12-30 13:32:00", tz="UTC")
    assert (
        csv["Costs"].dtype.kind == "i" and xes["Costs"].dtype.kind == "i"
    )  # numeric text -> numbers


def test_repair_example_pairs_start_and_complete(bundled_data: Path) -> None:
    frame = load_event_log(bundled_data / "03_repairExample.xes.gz")
    assert_canonical(frame)
    assert frame.attrs["raw_events"] == 11855
    assert len(frame) == 7733  # one row per complete event
    assert frame[CASE].nunique() == 1104
    assert "lifecycle:transition" not in frame.columns  # consumed by the pairing
    processing = frame[TIMESTAMP] - frame[START]
    repairs = frame[frame[ACTIVITY] == "Repair (Complex)"]
    assert (processing.loc[repairs.index] > pd.Timedelta(0)).all()
    assert (processing > pd.Timedelta(0)).sum() > 3000
    first = frame[frame[CASE] == "1"].iloc[
        1
    ]  # Analyze Defect: start 12:23, complete 12:30 (+01:00)
    assert first[ACTIVITY] == "Analyze Defect"
    assert first[START] == pd.Timestamp("1970-01-02 11:23", tz="UTC")
    assert first[TIMESTAMP] == pd.Timestamp("1970-01-02 11:30", tz="UTC")
    assert first["phoneType"] == "T2"  # attributes of the complete event are kept
    assert any("without a later complete" in w for w in frame.attrs["warnings"])


def test_xes_without_rust_backend_uses_iterparse(
    bundled_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = load_event_log(bundled_data / "03_repairExample.xes.gz")
    monkeypatch.setitem(sys.modules, "rustxes", None)  # import rustxes -> ImportError
    slow = load_event_log(bundled_data / "03_repairExample.xes.gz")
    key = [CASE, ACTIVITY, TIMESTAMP, START, RESOURCE]
    pd.testing.assert_frame_equal(fast[key], slow[key])


@pytest.mark.slow
def test_bpic2012_drops_schedule_and_pairs_work_items(shared_data: Path) -> None:
    frame = load_event_log(shared_data / "logs" / "bpic2012.xes.gz")
    assert frame.attrs["raw_events"] == 262200
    assert len(frame) == 164506  # COMPLETE events; SCHEDULE dropped, START paired
    assert frame[CASE].nunique() == 13087
    work = frame[frame[ACTIVITY].str.startswith("W_")]
    assert ((work[TIMESTAMP] - work[START]) > pd.Timedelta(0)).mean() > 0.9
    assert frame["case:AMOUNT_REQ"].dtype.kind in "if"


# ----------------------------------------------------------------------------- CSV detection
def test_csv_common_spellings_semicolon_and_timezones(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "Case ID;Activity;Start Timestamp;Complete Timestamp;Resource;Amount\n"
        "7;Check;2024-03-01 09:00:00;2024-03-01 09:30:00;Ann;10\n"
        "7;Approve;2024-03-01T11:00:00+02:00;2024-03-01T11:45:00+02:00;;20\n"
        "10;Check;2024-03-02 08:00:00Z;2024-03-02 08:10:00Z;Bob;5\n",
        encoding="utf-8",
    )
    frame = load_event_log(path)
    assert_canonical(frame)
    assert list(frame[CASE]) == ["10", "7", "7"]  # case ids stay strings, sorted as strings
    approve = frame[frame[ACTIVITY] == "Approve"].iloc[0]
    assert approve[START] == pd.Timestamp("2024-03-01 09:00", tz="UTC")  # +02:00 converted
    assert approve[RESOURCE] == ""  # missing resource becomes ""
    check = frame[frame[CASE] == "7"].iloc[0]
    assert check[START] == pd.Timestamp("2024-03-01 09:00", tz="UTC")  # naive taken as UTC
    assert frame["Amount"].dtype.kind == "i"


def test_explicit_mapping_overrides_detection(tmp_path: Path) -> None:
    path = tmp_path / "two_names.csv"
    path.write_text(
        "ticket,activity,step,when\n"
        "A,generic,Open,03/01/2024 09:00\n"
        "A,generic,Close,03/01/2024 17:00\n",
        encoding="utf-8",
    )
    mapping = ColumnMapping(
        case="ticket", activity="step", timestamp="when", timestamp_format="%d/%m/%Y %H:%M"
    )
    frame = load_event_log(path, mapping)
    assert list(frame[ACTIVITY]) == ["Open", "Close"]
    assert frame[TIMESTAMP].iloc[0] == pd.Timestamp("2024-01-03 09:00", tz="UTC")  # day first
    assert "activity" in frame.columns  # the unused candidate is kept as an attribute


def test_mapping_naming_an_absent_column(bundled_data: Path) -> None:
    with pytest.raises(
        EventLogError, match=r"running-example\.csv.*'nope' not found.*columns found"
    ):
        load_event_log(bundled_data / "running-example.csv", ColumnMapping(activity="nope"))


def test_wrong_timestamp_format_names_line_and_value(tmp_path: Path) -> None:
    path = tmp_path / "dates.csv"
    path.write_text("case,activity,timestamp\nA,x,2024-01-03\nA,y,2024-01-04\n", encoding="utf-8")
    with pytest.raises(EventLogError, match=r"dates\.csv.*line 2.*'2024-01-03'.*'%d/%m/%Y'"):
        load_event_log(path, ColumnMapping(timestamp_format="%d/%m/%Y"))


def test_latin1_file_loads_when_encoding_given() -> None:
    frame = load_event_log(BROKEN / "not_utf8.csv", encoding="latin-1")
    assert "Prüfung" in set(frame[ACTIVITY])


def test_parquet_round_trip(bundled_data: Path, tmp_path: Path) -> None:
    frame = load_event_log(bundled_data / "running-example.csv")
    path = tmp_path / "log.parquet"
    frame.to_parquet(path)
    again = load_event_log(path)
    assert_canonical(again)
    pd.testing.assert_frame_equal(frame, again, check_like=False)


def test_rows_without_timestamp_are_dropped_with_warning(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text(
        "case,activity,timestamp\nA,x,2024-01-03\nA,y,\nB,z,2024-01-05\n", encoding="utf-8"
    )
    frame = load_event_log(path)
    assert len(frame) == 2 and frame.attrs["raw_events"] == 3
    assert any("dropped 1 events" in w and "line 3" in w for w in frame.attrs["warnings"])


# ----------------------------------------------------------------------------- lifecycle pairing
def test_lifecycle_pairing_fifo_and_other_transitions(tmp_path: Path) -> None:
    path = tmp_path / "lifecycle.csv"
    path.write_text(
        "case,activity,lifecycle,timestamp,resource\n"
        "A,review,SCHEDULE,2024-01-01 08:00,\n"
        "A,review,START,2024-01-01 09:00,ann\n"
        "A,review,start,2024-01-01 09:10,bob\n"
        "A,review,suspend,2024-01-01 09:20,ann\n"
        "A,review,COMPLETE,2024-01-01 10:00,\n"
        "A,review,complete,2024-01-01 11:00,bob\n"
        "A,close,complete,2024-01-01 12:00,sys\n"
        "A,close,start,2024-01-01 13:00,sys\n",  # never completes: dropped
        encoding="utf-8",
    )
    frame = load_event_log(path)
    assert_canonical(frame)
    assert frame.attrs["raw_events"] == 8
    assert list(frame[ACTIVITY]) == ["review", "review", "close"]
    first, second, close = frame.iloc[0], frame.iloc[1], frame.iloc[2]
    assert first[START] == pd.Timestamp("2024-01-01 09:00", tz="UTC")  # first start, first complete
    assert first[RESOURCE] == "ann"  # gap filled from the start event
    assert second[START] == pd.Timestamp("2024-01-01 09:10", tz="UTC")
    assert close[START] == close[TIMESTAMP]  # complete without a start
    warnings = " | ".join(frame.attrs["warnings"])
    assert "dropped 2 lifecycle events other than start/complete" in warnings
    assert "dropped 1 start events without a later complete" in warnings


def test_frame_from_records_pairs_and_flattens() -> None:
    records = [
        {
            "seq": 1,
            "case_id": "T-1",
            "activity": "triage",
            "lifecycle": "start",
            "timestamp": "2024-01-01T09:00:00Z",
            "resource": "ann",
            "attributes": {"priority": "high"},
        },
        {
            "seq": 2,
            "case_id": "T-2",
            "activity": "triage",
            "lifecycle": "complete",
            "timestamp": "2024-01-01T08:40:00+01:00",
            "resource": "bob",
            "attributes": {"priority": "low"},
        },
        {
            "seq": 3,
            "case_id": "T-1",
            "activity": "triage",
            "lifecycle": "complete",
            "timestamp": "2024-01-01T09:30:00Z",
            "resource": "ann",
            "attributes": {"priority": "high"},
        },
        {
            "seq": 4,
            "case_id": 3,
            "activity": "fix",
            "lifecycle": "complete",
            "timestamp": "2024-01-01T12:00:00",
            "resource": None,
            "attributes": {},
        },
    ]
    frame = frame_from_records(records)
    assert_canonical(frame)
    assert frame.attrs["raw_events"] == 4 and len(frame) == 3
    assert list(frame[CASE]) == ["3", "T-1", "T-2"]
    t1 = frame[frame[CASE] == "T-1"].iloc[0]
    assert t1[START] == pd.Timestamp("2024-01-01 09:00", tz="UTC")
    assert t1[TIMESTAMP] == pd.Timestamp("2024-01-01 09:30", tz="UTC")
    assert t1["case:priority"] == "high"
    assert frame[frame[CASE] == "T-2"].iloc[0][TIMESTAMP] == pd.Timestamp(
        "2024-01-01 07:40", tz="UTC"
    )
    assert frame[frame[CASE] == "3"].iloc[0][RESOURCE] == ""
    assert frame["seq"].dtype.kind == "i"


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "records: no events"),
        ("not a list", "expected a list"),
        (
            [{"case_id": "a", "activity": "x", "timestamp": "2024-01-01"}, 7],
            r"records\[1\]: not an object",
        ),
        (
            [
                {"case_id": "a", "activity": "x", "timestamp": "2024-01-01"},
                {"case_id": "a", "activity": "y", "timestamp": "soon"},
            ],
            r"records\[1\]: 'soon'",
        ),
        (
            [{"case_id": "a", "activity": "x"}],
            r"missing timestamp.*columns found: \['case_id', 'activity'\]",
        ),
        (
            [{"case_id": "a", "activity": "x", "timestamp": "2024-01-01", "attributes": [1]}],
            "'attributes' must be an object",
        ),
    ],
)
def test_frame_from_records_errors(records: object, message: str) -> None:
    with pytest.raises(EventLogError, match=message):
        frame_from_records(records)  # type: ignore[arg-type]


def test_to_canonical_accepts_pm4py_style_frames(bundled_data: Path) -> None:
    raw = pd.read_csv(bundled_data / "running-example.csv", index_col=0)
    frame = to_canonical(raw)
    assert_canonical(frame)
    assert len(frame) == 42
    again = to_canonical(frame)  # idempotent on canonical frames
    pd.testing.assert_frame_equal(frame, again)


def test_numeric_timestamps_are_refused() -> None:
    records = [{"case_id": "a", "activity": "x", "timestamp": 1704067200}]
    with pytest.raises(EventLogError, match=r"column 'timestamp' are numbers.*ISO 8601"):
        frame_from_records(records)


# ----------------------------------------------------------------------------- broken inputs
BROKEN_CASES = [
    ("empty.csv", ["empty file"]),
    ("junk.csv", ["binary data"]),
    ("header_only.csv", ["no events"]),
    (
        "missing_timestamp.csv",
        ["missing timestamp column", "columns found: ['case_id', 'activity', 'resource']"],
    ),
    (
        "bad_timestamp.csv",
        ["unparseable timestamp", "column 'timestamp'", "line 4", "'yesterday at noon'"],
    ),
    ("not_utf8.csv", ["not valid utf-8", "line 3", "column 6", "0xfc", "encoding="]),
    ("ragged.csv", ["malformed CSV", "line 3"]),
    ("nothing_left.csv", ["nothing left"]),
    ("truncated.xes", ["not well-formed XML", "line 58", "truncated"]),
    ("mismatched_tag.xes", ["not well-formed XML", "line 8", "mismatched tag"]),
    ("junk.xes", ["not well-formed XML", "line 1"]),
    ("entity_expansion.xes", ["DOCTYPE", "refused", "entity"]),
    ("external_entity.xes", ["DOCTYPE", "refused", "XXE"]),
    ("no_traces.xes", ["no events"]),
    ("not_xes.xes", ["root element is <html>", "not an XES document"]),
]


@pytest.mark.parametrize(("name", "fragments"), BROKEN_CASES, ids=[c[0] for c in BROKEN_CASES])
def test_broken_inputs_raise_event_log_error(name: str, fragments: list[str]) -> None:
    with pytest.raises(EventLogError) as info:
        load_event_log(BROKEN / name)
    message = str(info.value)
    assert name in message  # names the file
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_one_event_is_a_valid_log() -> None:
    frame = load_event_log(BROKEN / "one_event.csv")
    assert_canonical(frame)
    assert len(frame) == 1


def test_hostile_and_truncated_gzip(bundled_data: Path, tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.xes.gz"
    hostile.write_bytes(gzip.compress((BROKEN / "entity_expansion.xes").read_bytes()))
    with pytest.raises(EventLogError, match=r"hostile\.xes\.gz.*DOCTYPE"):
        load_event_log(hostile)
    cut = tmp_path / "cut.xes.gz"
    data = (bundled_data / "helpdesk.xes.gz").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(EventLogError, match=r"cut\.xes\.gz.*(truncated|decompress)"):
        load_event_log(cut)
    text_gz = tmp_path / "text.xes.gz"
    shutil.copy(bundled_data / "running-example.xes", text_gz)  # not actually gzip
    with pytest.raises(EventLogError, match=r"text\.xes\.gz"):
        load_event_log(text_gz)


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing.csv", "file not found"), ("log.xlsx", "unsupported format")],
)
def test_missing_and_unsupported_files(tmp_path: Path, name: str, message: str) -> None:
    if name.endswith(".xlsx"):
        (tmp_path / name).write_bytes(b"PK\x03\x04")
    with pytest.raises(EventLogError, match=message):
        load_event_log(tmp_path / name)


def test_zip_named_csv(tmp_path: Path) -> None:
    path = tmp_path / "workbook.csv"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(EventLogError, match=r"workbook\.csv.*ZIP/Excel"):
        load_event_log(path)


def test_case_level_columns_finds_case_and_constant_event_attributes() -> None:
    from closedloop.tools.log.attributes import case_level_columns

    frame = pd.DataFrame({
        CASE: ["a", "a", "b"], ACTIVITY: ["x", "y", "x"], "case:tier": ["gold", "gold", "std"],
        "region": ["EU", "EU", "US"], "clerk": ["p", "q", "p"], "tier": ["g", "g", "s"],
        "_private": [1, 1, 2],
    })
    cases, constant = case_level_columns(frame)
    assert cases == ["case:tier"]
    assert constant == ["region"]  # clerk varies; tier has a case: twin; _private is private
