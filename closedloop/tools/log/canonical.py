"""The canonical event frame: column roles, timestamp parsing, and the frame every tool reads.

The canonical event frame (the contract every other tool relies on) is a
pandas DataFrame with one row per activity instance (per event when the log
has no lifecycle), using pm4py's column names:

- ``case:concept:name`` (str) - case id
- ``concept:name`` (str) - activity
- ``time:timestamp`` (datetime64[us, UTC]) - completion time
- ``start_timestamp`` (datetime64[us, UTC]) - start time; equals
  ``time:timestamp`` when the log has no start events
- ``org:resource`` (str, "" when absent)
- every other attribute: case attributes as ``case:<name>``, event attributes
  by name (string columns that hold only numbers become numeric).

Rows are sorted by case id, then ``time:timestamp``, stable (file order breaks ties).

Lifecycle handling: when a lifecycle column (``lifecycle:transition``) holds
``start``/``complete`` values (any letter case), each ``start`` is paired FIFO
with the next ``complete`` of the same activity in the same case into one row
(attributes from the ``complete`` event, gaps filled from the ``start``).
Events without a lifecycle value count as ``complete``; ``start`` events that
never complete are dropped (work in progress), and every other transition
(``schedule``, ``assign``, ``suspend``, ``resume``, ``ate_abort``...) is dropped,
so suspended time counts as processing time. When no value is ``start`` or
``complete`` the lifecycle column is ignored.

Timezones: naive timestamps are taken as UTC, aware ones converted to UTC.

Counting words (the same on every surface):
- events read: rows of the source (each lifecycle transition is one event);
- dropped: events not analysed, by reason (``dropped`` in attrs): rows without
  case, activity or timestamp, duplicates (by default only rows identical in
  every column; see ``clean.drop_duplicate_events``), lifecycle transitions
  other than start/complete, starts that never complete;
- events: events read minus dropped, i.e. what is analysed;
- activity instances: rows of the frame (a start and its complete are one).

Refused outright (EventLogError): timestamps before 1900 or more than two
years in the future (a typo such as 2999 would otherwise be planned on).
Control characters in case, activity and resource names are replaced by
U+FFFD and counted in a warning (XML exports and terminals cannot carry them).

Bookkeeping is kept in ``frame.attrs`` (JSON-safe): ``source``, ``format``,
``raw_events`` (events read), ``dropped`` (reason -> events), ``events``
(events analysed), ``rows`` (rows produced; pandas copies attrs to filtered
frames, so compare before trusting the counts: see ``event_counts``),
``warnings`` (list[str]).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from closedloop.tools.errors import EventLogError
from closedloop.tools.log.clean import (
    DuplicatePolicy,
    drop_duplicate_events,
    impute_case_attributes,
    maybe_numeric,
    pair_lifecycle,
)
from closedloop.tools.log.columns import (
    ACTIVITY,
    CASE,
    LIFECYCLE,
    RESOURCE,
    START,
    TIMESTAMP,
)
from closedloop.tools.log.timestamps import parse_times, refuse_implausible

__all__ = [
    "CANDIDATES",
    "CANONICAL",
    "ColumnMapping",
    "as_canonical",
    "canonical_frame",
    "detect_roles",
    "event_counts",
    "raw_event_count",
    "row_label",
    "to_canonical",
]

log = logging.getLogger(__name__)

# Spellings recognised per role, in priority order (compared lower-cased, punctuation removed).
CANDIDATES: dict[str, tuple[str, ...]] = {
    "case": (CASE, "case_id", "caseid", "Case ID", "case", "case:id", "trace_id"),
    "activity": (ACTIVITY, "activity", "Activity", "activity_name", "event", "task"),
    "timestamp": (
        TIMESTAMP,
        "timestamp",
        "Complete Timestamp",
        "end_time",
        "completeTime",
        "end_timestamp",
        "time",
        "end",
    ),
    "start_timestamp": (START, "Start Timestamp", "start_time", "startTime", "start"),
    "resource": (RESOURCE, "resource", "Resource", "user", "performer"),
    "lifecycle": (LIFECYCLE, "lifecycle", "transition"),
}
CANONICAL = {
    "case": CASE,
    "activity": ACTIVITY,
    "timestamp": TIMESTAMP,
    "start_timestamp": START,
    "resource": RESOURCE,
    "lifecycle": LIFECYCLE,
}
REQUIRED = ("case", "activity", "timestamp")


class ColumnMapping(BaseModel):
    """Which source columns (or record keys) hold the standard fields; None = auto-detect."""

    model_config = ConfigDict(extra="forbid")

    case: str | None = Field(default=None, description="case id column")
    activity: str | None = Field(default=None, description="activity name column")
    timestamp: str | None = Field(default=None, description="completion timestamp column")
    start_timestamp: str | None = Field(default=None, description="start timestamp column")
    resource: str | None = Field(default=None, description="resource / user column")
    lifecycle: str | None = Field(default=None, description="lifecycle transition column")
    timestamp_format: str | None = Field(
        default=None, description="strftime format of both timestamp columns, e.g. '%d-%m-%Y %H:%M'"
    )


def raw_event_count(frame: pd.DataFrame) -> int:
    """Events read from the source of ``frame`` (before pairing), or its rows once filtered."""
    if frame.attrs.get("rows") == len(frame) and "raw_events" in frame.attrs:
        return int(frame.attrs["raw_events"])
    return len(frame)


class EventCounts(BaseModel):
    """How many events a frame came from and what became of them (see the module docstring)."""

    events_read: int = Field(description="rows of the source, each lifecycle transition one event")
    dropped: dict[str, int] = Field(description="events not analysed, by reason")
    events: int = Field(description="events analysed: events_read minus everything dropped")
    activity_instances: int = Field(description="rows analysed; a start+complete pair is one")


def event_counts(frame: pd.DataFrame) -> EventCounts:
    """The counts of ``frame``; a frame filtered after loading counts its own rows only."""
    if frame.attrs.get("rows") == len(frame) and "raw_events" in frame.attrs:
        dropped = {str(k): int(v) for k, v in frame.attrs.get("dropped", {}).items()}
        read = int(frame.attrs["raw_events"])
        return EventCounts(
            events_read=read,
            dropped=dropped,
            events=int(frame.attrs.get("events", read - sum(dropped.values()))),
            activity_instances=len(frame),
        )
    return EventCounts(
        events_read=len(frame), dropped={}, events=len(frame), activity_instances=len(frame)
    )


def to_canonical(
    frame: pd.DataFrame,
    mapping: ColumnMapping | None = None,
    source: str = "dataframe",
    *,
    duplicates: DuplicatePolicy = "exact",
) -> pd.DataFrame:
    """Canonical event frame from an in-memory DataFrame in any of the recognised layouts."""
    return canonical_frame(
        frame.reset_index(drop=True),
        mapping,
        source=source,
        fmt="dataframe",
        label=row_label,
        duplicates=duplicates,
    )


def as_canonical(log: pd.DataFrame, purpose: str = "mine") -> pd.DataFrame:
    """The canonical frame of ``log``, sorted by case then completion.

    A frame that already has the canonical columns (with datetime times) is only
    sorted (its ``attrs`` kept); any other DataFrame goes through ``to_canonical``.
    Raises EventLogError for a non-DataFrame or an empty one (``purpose`` names
    the caller in the message, e.g. "mine expects an event frame").
    """
    if not isinstance(log, pd.DataFrame):
        raise EventLogError(
            f"{purpose} expects an event frame (pandas DataFrame), got {type(log).__name__}"
        )
    if log.empty:
        raise EventLogError(f"{log.attrs.get('source', 'event log')}: no events to {purpose}")
    canonical = {CASE, ACTIVITY, TIMESTAMP, START} <= set(log.columns) and all(
        pd.api.types.is_datetime64_any_dtype(log[c]) for c in (TIMESTAMP, START)
    )
    if not canonical:
        return to_canonical(log, source=str(log.attrs.get("source", "dataframe")))
    frame = log.sort_values([CASE, TIMESTAMP], kind="stable").reset_index(drop=True)
    frame.attrs = dict(log.attrs)
    return frame


def row_label(i: int) -> str:
    """How errors name the i-th row of a frame (1-based)."""
    return f"row {i + 1}"


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def detect_roles(
    columns: list[str], mapping: ColumnMapping | None, source: str, required: bool = True
) -> dict[str, str | None]:
    """Role -> source column: explicit mapping first, then the common spellings."""
    explicit = mapping.model_dump(exclude={"timestamp_format"}) if mapping else {}
    roles: dict[str, str | None] = {}
    used: set[str] = set()
    for role in CANONICAL:
        col = explicit.get(role)
        if col is not None:
            if col not in columns:
                raise EventLogError(
                    f"{source}: mapped {role} column {col!r} not found; columns found: {columns}"
                )
            roles[role] = col
            used.add(col)
    by_norm: dict[str, str] = {}
    for col in columns:
        by_norm.setdefault(_norm(col), col)
    for role, spellings in CANDIDATES.items():
        if role in roles:
            continue
        roles[role] = next(
            (
                by_norm[_norm(s)]
                for s in spellings
                if _norm(s) in by_norm and by_norm[_norm(s)] not in used
            ),
            None,
        )
        if roles[role] is not None:
            used.add(roles[role])
    missing = [r for r in REQUIRED if roles[r] is None]
    if required and missing:
        wanted = "; ".join(f"{r}: {', '.join(CANDIDATES[r])}" for r in missing)
        raise EventLogError(
            f"{source}: missing {', '.join(missing)} column(s); columns found: {columns}. "
            f"Looked for {wanted}. Name them with a ColumnMapping."
        )
    return roles


def canonical_frame(
    raw: pd.DataFrame,
    mapping: ColumnMapping | None,
    *,
    source: str,
    fmt: str,
    label: Callable[[int], str],
    duplicates: DuplicatePolicy = "exact",
) -> pd.DataFrame:
    """The canonical frame of a raw table; ``label(i)`` names row i in error messages.

    ``duplicates`` chooses which repeated events are dropped (see
    ``clean.drop_duplicate_events``); every drop is counted in ``attrs["dropped"]``.
    """
    if raw.empty:
        raise EventLogError(f"{source}: no events found")
    columns = [str(c) for c in raw.columns]
    df = raw.set_axis(columns, axis=1)  # the index numbers rows for error messages
    if not (df.index.is_unique and pd.api.types.is_integer_dtype(df.index)):
        df = df.reset_index(drop=True)
    roles = detect_roles(columns, mapping, source)
    warnings: list[str] = []
    dropped: dict[str, int] = {}
    raw_events = len(df)

    rename = {col: CANONICAL[role] for role, col in roles.items() if col is not None}
    clash = {c: f"original:{c}" for c in columns if c in CANONICAL.values() and c not in rename}
    df = df.rename(columns={**clash, **rename})

    # Rows without case, activity or timestamp cannot be placed: drop them, say so.
    for col in (CASE, ACTIVITY, TIMESTAMP):
        if df[col].dtype.kind not in "mM":
            df[col] = df[col].mask(df[col].astype("str").str.strip() == "")
    missing = df[[CASE, ACTIVITY, TIMESTAMP]].isna().any(axis=1)
    if missing.any():
        first = missing.index[np.flatnonzero(missing.to_numpy())[0]]
        warnings.append(
            f"dropped {int(missing.sum())} events without case, activity or timestamp "
            f"(first at {label(int(first))})"
        )
        dropped["missing case, activity or timestamp"] = int(missing.sum())
        df = df[~missing]
    if df.empty:
        raise EventLogError(
            f"{source}: nothing left after dropping events without case, activity or timestamp"
        )
    fmt_ts = mapping.timestamp_format if mapping else None
    df[CASE] = df[CASE].astype("str")
    df[ACTIVITY] = df[ACTIVITY].astype("str")
    df[TIMESTAMP] = parse_times(df[TIMESTAMP], roles["timestamp"], fmt_ts, source, label)
    refuse_implausible(df[TIMESTAMP], roles["timestamp"], source, label)
    if START in df.columns:
        df[START] = parse_times(df[START], roles["start_timestamp"], fmt_ts, source, label)
        refuse_implausible(df[START], roles["start_timestamp"], source, label)
    df = _replace_control_characters(df, warnings)
    df["_pos"] = np.arange(len(df))
    df = drop_duplicate_events(df, duplicates, dropped, warnings)

    if LIFECYCLE in df.columns:
        df = pair_lifecycle(
            df, has_start_column=START in df.columns, dropped=dropped, warnings=warnings
        )
        if df.empty:
            raise EventLogError(
                f"{source}: nothing left after lifecycle pairing (no complete events)"
            )
    if START not in df.columns:
        df[START] = df[TIMESTAMP]
    df[START] = df[START].fillna(df[TIMESTAMP])
    late = df[START] > df[TIMESTAMP]
    if late.any():
        warnings.append(
            f"{int(late.sum())} rows started after they completed; start set to completion"
        )
        df.loc[late, START] = df.loc[late, TIMESTAMP]
    df[RESOURCE] = df[RESOURCE].fillna("").astype("str") if RESOURCE in df.columns else ""

    for col in df.columns:
        if col not in CANONICAL.values() and col != "_pos" and _is_text(df[col]):
            df[col] = maybe_numeric(df[col])
    df = df.sort_values([CASE, TIMESTAMP, "_pos"], kind="stable").drop(columns="_pos")
    df = impute_case_attributes(df, warnings)
    first_cols = [CASE, ACTIVITY, TIMESTAMP, START, RESOURCE]
    df = df[first_cols + [c for c in df.columns if c not in first_cols]].reset_index(drop=True)
    for w in warnings:
        log.warning("%s: %s", source, w)
    df.attrs = {
        "source": source,
        "format": fmt,
        "raw_events": raw_events,
        "dropped": dropped,
        "events": raw_events - sum(dropped.values()),
        "rows": len(df),  # raw_events only describes this frame while its length is unchanged
        "warnings": warnings,
    }
    return df


_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"


def _replace_control_characters(df: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """Control characters in names become U+FFFD: XML, SVG and terminals cannot carry them."""
    for col in (CASE, ACTIVITY, RESOURCE):
        if col not in df.columns or not _is_text(df[col]):
            continue
        text = df[col].astype("str")
        hit = text.str.contains(_CONTROL, regex=True).to_numpy() & df[col].notna().to_numpy()
        if hit.any():
            df = df.copy()
            df.loc[hit, col] = text[hit].str.replace(_CONTROL, "\ufffd", regex=True)
            warnings.append(
                f"replaced control characters in {int(hit.sum())} values of {col!r} with U+FFFD"
            )
    return df


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values)
