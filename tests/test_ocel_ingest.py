"""OCEL 2.0 input: JSON, XML and SQLite, flattened on a chosen object type.

The OCEL files are written by pm4py from the real helpdesk log, with two object types
(the ticket and the resource), so the flattened result can be checked against the log.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from closedloop import cli
from closedloop.tools.errors import EventLogError
from closedloop.tools.log import event_counts, load_event_log
from closedloop.tools.log.columns import ACTIVITY, CASE, RESOURCE

WRITERS = {
    "jsonocel": "write_ocel2_json",
    "xmlocel": "write_ocel2_xml",
    "sqlite": "write_ocel2_sqlite",
}


@pytest.fixture(scope="module")
def helpdesk_raw(bundled_data_path: Path) -> pd.DataFrame:
    import pm4py

    raw = pm4py.read_xes(str(bundled_data_path / "helpdesk.xes.gz"), variant="rustxes")
    return raw[raw[CASE].isin(sorted(raw[CASE].unique())[:400])].reset_index(drop=True)


@pytest.fixture(scope="module")
def bundled_data_path() -> Path:
    return Path(__file__).resolve().parents[1] / "closedloop" / "data"


@pytest.fixture(scope="module", params=sorted(WRITERS))
def ocel_file(request: pytest.FixtureRequest, helpdesk_raw: pd.DataFrame, tmp_path_factory) -> Path:
    import pm4py

    ocel = pm4py.convert_log_to_ocel(helpdesk_raw, object_types=[CASE, RESOURCE])
    path = tmp_path_factory.mktemp("ocel") / f"helpdesk.{request.param}"
    getattr(pm4py, WRITERS[request.param])(ocel, str(path))
    return path


def test_flattened_on_the_ticket_it_is_the_helpdesk_log(
    ocel_file: Path, helpdesk_raw: pd.DataFrame
) -> None:
    frame = load_event_log(ocel_file, object_type=CASE)
    assert frame.attrs["format"] == "ocel"
    assert frame[CASE].nunique() == helpdesk_raw[CASE].nunique() == 400
    assert len(frame) == len(helpdesk_raw) == event_counts(frame).events  # one object per event
    assert sorted(frame[ACTIVITY]) == sorted(helpdesk_raw[ACTIVITY])
    note = frame.attrs["warnings"][0]
    assert note.startswith(f"OCEL 2.0 flattened on object type {CASE!r}: 400 objects")
    assert "'org:resource'" in note  # the type left out is named


def test_several_object_types_need_a_choice(ocel_file: Path) -> None:
    with pytest.raises(EventLogError, match=r"several object types.*'org:resource' \(\d+ events\)"):
        load_event_log(ocel_file)
    with pytest.raises(EventLogError, match="no object type 'parcel'"):
        load_event_log(ocel_file, object_type="parcel")
    by_resource = load_event_log(ocel_file, object_type=RESOURCE)
    assert by_resource[CASE].nunique() < 400  # resources are the cases now


def test_the_cli_mines_an_ocel_log(ocel_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["mine", str(ocel_file), "--json", "--object-type", CASE]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cases"] == 400
    assert report["warnings"][0].startswith("OCEL 2.0 flattened")


def test_hostile_ocel_files_are_refused(tmp_path: Path) -> None:
    xml = tmp_path / "bad.xmlocel"
    xml.write_text('<?xml version="1.0"?><!DOCTYPE log [<!ENTITY x "y">]><log>&x;</log>')
    with pytest.raises(EventLogError, match="DOCTYPE"):
        load_event_log(xml)
    deep = tmp_path / "deep.jsonocel"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(EventLogError, match="OCEL"):
        load_event_log(deep)
    fake = tmp_path / "fake.sqlite"
    fake.write_text("not a database")
    with pytest.raises(EventLogError, match="not an SQLite database"):
        load_event_log(fake)
