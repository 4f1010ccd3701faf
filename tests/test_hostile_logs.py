"""Hostile logs get a clear error, in bounded memory, and never crash the process
(issue 11, item 6, as far as reading logs goes)."""

from __future__ import annotations

import gzip
import resource
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from closedloop.tools.errors import EventLogError
from closedloop.tools.log import defuse_formulas, load_event_log, write_csv
from closedloop.tools.log.columns import ACTIVITY, RESOURCE
from closedloop.tools.mining.discovery import discover_from_frame
from closedloop.tools.mining.export import bpmn_xml

EVENT = (
    '<event><string key="concept:name" value="{name}"/>'
    '<date key="time:timestamp" value="{time}"/></event>'
)


def xes(events: str, trace: str = "c1") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><log xes.version="1.0"><trace>'
        f'<string key="concept:name" value="{trace}"/>{events}</trace></log>'
    )


def _mine_cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "closedloop.cli", "mine", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_deeply_nested_xes_is_refused_before_any_parser_recurses(tmp_path: Path) -> None:
    path = tmp_path / "nested.xes"
    path.write_text('<?xml version="1.0"?><log>' + "<a>" * 200_000 + "</a>" * 200_000 + "</log>")
    with pytest.raises(EventLogError, match="nested more than 100 deep"):
        load_event_log(path)
    done = _mine_cli(path)  # was: exit 139 (segfault), no message
    assert done.returncode == 2
    assert "nested more than 100 deep" in done.stderr and "Traceback" not in done.stderr


def _bomb(path: Path, head: bytes, filler: bytes, tail: bytes, megabytes: int) -> None:
    block = filler * (1 << 20)
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(head)
        for _ in range(megabytes):
            out.write(block)
        out.write(tail)


@pytest.mark.parametrize(
    ("name", "head", "filler", "tail"),
    [
        ("bomb.xes.gz", b'<?xml version="1.0"?><log>', b" ", b"</log>"),
        ("bomb.csv.gz", b"case,activity,timestamp\n", b"\n", b"c1,a,2024-01-01T00:00:00Z\n"),
    ],
)
def test_gzip_bombs_are_refused_in_bounded_memory(
    tmp_path: Path, name: str, head: bytes, filler: bytes, tail: bytes
) -> None:
    path = tmp_path / name
    _bomb(path, head, filler, tail, megabytes=300)  # ~300 KB on disk, 300 MB inflated
    assert path.stat().st_size < 1 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(EventLogError, match="gzip bomb"):
        load_event_log(path)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200  # stopped at ~64 MB inflated, not 300 MB


def test_a_real_compressed_log_is_not_mistaken_for_a_bomb(bundled_data: Path) -> None:
    assert len(load_event_log(bundled_data / "helpdesk.xes.gz")) == 21221  # inflates 43x


@pytest.mark.parametrize("value", ["a&#1;b", "a\x01b"])
def test_control_characters_in_xes_are_replaced_and_reported(tmp_path: Path, value: str) -> None:
    path = tmp_path / "control.xes"
    events = EVENT.format(name=value, time="2024-01-01T10:00:00Z") + EVENT.format(
        name="done", time="2024-01-01T11:00:00Z"
    )
    path.write_text(xes(events))
    frame = load_event_log(path)
    assert set(frame[ACTIVITY]) == {"a\ufffdb", "done"}
    assert any("control characters" in w for w in frame.attrs["warnings"])
    assert b"\x01" not in bpmn_xml(discover_from_frame(frame))  # XML stays well-formed


def test_control_characters_in_csv_do_not_reach_the_outputs(tmp_path: Path) -> None:
    path = tmp_path / "control.csv"
    path.write_bytes(
        b"case,activity,timestamp,resource\n"
        b"c1,reg\x07ister,2024-01-01T10:00:00Z,ann\x1b[31m\n"
        b"c1,close,2024-01-01T11:00:00Z,bo\n"
    )
    frame = load_event_log(path)
    assert list(frame[ACTIVITY]) == ["reg\ufffdister", "close"]
    assert frame[RESOURCE].iloc[0] == "ann\ufffd[31m"  # no terminal escape left
    done = _mine_cli(path)
    assert done.returncode == 0 and "\x1b" not in done.stdout and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("stamp", "where"), [("2999-01-01T10:00:00Z", "after"), ("1066-10-14T09:00:00Z", "before")]
)
def test_implausible_timestamps_are_refused_with_the_row(
    tmp_path: Path, stamp: str, where: str
) -> None:
    csv = tmp_path / "dates.csv"
    csv.write_text(f"case,activity,timestamp\nc1,a,2024-01-01T10:00:00Z\nc1,b,{stamp}\n")
    with pytest.raises(EventLogError, match=rf"implausible timestamp .* at line 3: .*{where}"):
        load_event_log(csv)
    path = tmp_path / "dates.xes"
    path.write_text(xes(EVENT.format(name="a", time=stamp)))
    done = _mine_cli(path)
    assert done.returncode == 2 and "implausible timestamp" in done.stderr
    assert "panicked" not in done.stderr and "Traceback" not in done.stderr


def test_csv_outputs_cannot_carry_spreadsheet_formulas(tmp_path: Path) -> None:
    log = pd.DataFrame(
        {
            "case_id": ["c1", "c2"],
            "activity": ['=HYPERLINK("http://evil","x")', "@SUM(1+1)"],
            "resource": ["+cmd|' /C calc'!A0", "-2+3"],
            "cost": [-3.5, 2.0],
            "note": ["-12", "plain"],
        }
    )
    safe = defuse_formulas(log)
    assert list(safe["activity"]) == ['\'=HYPERLINK("http://evil","x")', "'@SUM(1+1)"]
    assert list(safe["resource"]) == ["'+cmd|' /C calc'!A0", "'-2+3"]
    assert list(safe["cost"]) == [-3.5, 2.0] and list(safe["note"]) == ["-12", "plain"]
    text = write_csv(log, tmp_path / "out.csv").read_text()
    assert not any(line.split(",")[1].startswith(("=", "@", "+")) for line in text.splitlines())


def test_hostile_reference_models_are_refused_before_pm4py(tmp_path: Path) -> None:
    from closedloop.tools.errors import ToolError
    from closedloop.tools.mining.conformance import load_reference_model

    bomb = tmp_path / "bomb.bpmn"
    bomb.write_text(
        '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        "<definitions>&b;</definitions>"
    )
    with pytest.raises(ToolError, match="DTDs and entities are not allowed"):
        load_reference_model(bomb)
    deep = tmp_path / "deep.pnml"
    deep.write_text("<pnml>" + "<a>" * 5000 + "</a>" * 5000 + "</pnml>")
    with pytest.raises(ToolError, match="nested more than 100 deep"):
        load_reference_model(deep)
