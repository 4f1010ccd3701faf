"""A connector's ``case_scope`` ends cases at a milestone for the KPIs (issue 10)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from closedloop.tools.connect.annotations import CaseScope, EventFeedAnnotation
from closedloop.tools.connect.schema import annotations_json_schema
from closedloop.tools.connect.scope import clip_to_scope
from closedloop.tools.log import ACTIVITY, CASE, TIMESTAMP

SCOPE = CaseScope(until=["Create Invoice"], why="payment is the customer's side")


def row(case: str, activity: str, at: str) -> dict:
    return {CASE: case, ACTIVITY: activity, TIMESTAMP: f"2026-01-0{at}T10:00:00Z"}


def test_each_case_keeps_its_events_up_to_its_first_milestone() -> None:
    rows = [row("o1", "Create Order", "1"), row("o1", "Create Invoice", "2"),
            row("o2", "Create Order", "1"), row("o1", "Receive Payment", "9"),
            row("o2", "Ship", "3"), row("o3", "Create Invoice", "4"),
            row("o3", "Create Invoice", "5")]
    out = clip_to_scope(rows, SCOPE)
    assert out.rows == rows[:3] + rows[4:6]  # order and content kept
    assert out.dropped == 2 and out.cases_ended == 2  # o2 has not reached it: all kept


def test_no_scope_or_no_rows_changes_nothing() -> None:
    rows = [row("o1", "Create Order", "1")]
    assert clip_to_scope(rows, None).rows == rows and clip_to_scope([], SCOPE).rows == []


def test_a_row_without_a_readable_time_is_kept() -> None:
    rows = [row("o1", "Create Invoice", "2"), {CASE: "o1", ACTIVITY: "Note", TIMESTAMP: "soon"}]
    assert clip_to_scope(rows, SCOPE).rows == rows


def test_a_scope_needs_milestones_and_a_reason() -> None:
    with pytest.raises(ValidationError, match="until"):
        CaseScope(until=[], why="x")
    with pytest.raises(ValidationError, match="why"):
        CaseScope(until=["Create Invoice"])
    assert "case_scope" in EventFeedAnnotation.model_fields
    assert "CaseScope" in annotations_json_schema()["$defs"]
