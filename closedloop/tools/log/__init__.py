"""The ``log`` room: event logs in, the canonical event frame out.

Public API (import from here): readers (``load_event_log``, ``frame_from_records``,
``to_canonical``, ``as_canonical``), the column names of the canonical frame,
``ColumnMapping``, ``EventLogSummary`` and the safe XES reader.
"""

from __future__ import annotations

from closedloop.tools.log.canonical import (
    ColumnMapping,
    EventCounts,
    as_canonical,
    event_counts,
    raw_event_count,
    to_canonical,
)
from closedloop.tools.log.columns import (
    ACTIVITY,
    CASE,
    CASE_PREFIX,
    COMPLETE,
    GROUP,
    LIFECYCLE,
    RESOURCE,
    STANDARD_COLUMNS,
    START,
    TIME_DTYPE,
    TIMESTAMP,
)
from closedloop.tools.log.csvsafe import defuse_formulas, write_csv
from closedloop.tools.log.ingest import (
    SUFFIXES,
    EventLogSummary,
    frame_from_records,
    load_event_log,
)
from closedloop.tools.log.xes import check_xes, read_xes

__all__ = [
    "ACTIVITY",
    "CASE",
    "CASE_PREFIX",
    "COMPLETE",
    "GROUP",
    "LIFECYCLE",
    "RESOURCE",
    "STANDARD_COLUMNS",
    "START",
    "SUFFIXES",
    "TIMESTAMP",
    "TIME_DTYPE",
    "ColumnMapping",
    "EventCounts",
    "EventLogSummary",
    "as_canonical",
    "check_xes",
    "defuse_formulas",
    "event_counts",
    "frame_from_records",
    "load_event_log",
    "raw_event_count",
    "read_xes",
    "to_canonical",
    "write_csv",
]
