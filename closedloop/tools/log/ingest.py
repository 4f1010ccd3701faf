"""Event log ingest: CSV, XES, Parquet files and JSON records -> the canonical event frame.

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

Bookkeeping is kept in ``frame.attrs`` (JSON-safe): ``source``, ``format``,
``raw_events`` (events read before pairing/cleaning), ``rows`` (rows produced;
pandas copies attrs to filtered frames, so compare before trusting
``raw_events``: see ``raw_event_count``), ``warnings`` (list[str]).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from closedloop.tools.errors import EventLogError

log = logging.getLogger(__name__)

from closedloop.tools.log.columns import (
    ACTIVITY,
    CASE,
    LIFECYCLE,
    RESOURCE,
    START,
    TIME_DTYPE,
    TIMESTAMP,
)

# Spellings recognised per role, in priority order (compared lower-cased, punctuation removed).
CANDIDATES: dict[str, tuple[str, ...]] = {
    "case": ("case:concept:name", "case_id", "caseid", "Case ID", "case", "case:id", "trace_id"),
    "activity": ("concept:name", "activity", "Activity", "activity_name", "event", "task"),
    "timestamp": (
        "time:timestamp",
        "timestamp",
        "Complete Timestamp",
        "end_time",
        "completeTime",
        "end_timestamp",
        "time",
        "end",
    ),
    "start_timestamp": ("start_timestamp", "Start Timestamp", "start_time", "startTime", "start"),
    "resource": ("org:resource", "resource", "Resource", "user", "performer"),
    "lifecycle": ("lifecycle:transition", "lifecycle", "transition"),
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
SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt", ".xes", ".xes.gz", ".parquet")


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


class EventLogSummary(BaseModel):
    """A short description of a canonical frame (for people and the agents)."""

    source: str
    format: str
    raw_events: int
    rows: int
    cases: int
    activities: int
    has_start_times: bool
    first: str | None
    last: str | None
    warnings: list[str]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> EventLogSummary:
        empty = frame.empty
        return cls(
            source=str(frame.attrs.get("source", "")),
            format=str(frame.attrs.get("format", "")),
            raw_events=raw_event_count(frame),
            rows=len(frame),
            cases=int(frame[CASE].nunique()),
            activities=int(frame[ACTIVITY].nunique()),
            has_start_times=bool((frame[START] != frame[TIMESTAMP]).any()),
            first=None if empty else frame[START].min().isoformat(),
            last=None if empty else frame[TIMESTAMP].max().isoformat(),
            warnings=list(frame.attrs.get("warnings", [])),
        )


# --------------------------------------------------------------------------- public API
def raw_event_count(frame: pd.DataFrame) -> int:
    """Events read from the source of ``frame`` (before pairing), or its rows once filtered."""
    if frame.attrs.get("rows") == len(frame) and "raw_events" in frame.attrs:
        return int(frame.attrs["raw_events"])
    return len(frame)


def load_event_log(
    path: str | Path, mapping: ColumnMapping | None = None, *, encoding: str = "utf-8"
) -> pd.DataFrame:
    """Read a .csv / .xes / .xes.gz / .parquet event log into the canonical event frame.

    Raises EventLogError naming the file and, where possible, line, column and value.
    ``encoding`` applies to CSV only (XES declares its own).
    """
    path = Path(path)
    name = path.name.lower()
    if not path.is_file():
        raise EventLogError(f"{path}: file not found")
    if not name.endswith(SUFFIXES):
        raise EventLogError(f"{path}: unsupported format; expected one of {', '.join(SUFFIXES)}")
    if path.stat().st_size == 0:
        raise EventLogError(f"{path}: empty file (0 bytes)")
    if name.endswith((".xes", ".xes.gz")):
        from closedloop.tools.log.xes import read_xes

        raw = read_xes(path)
        return _canonical(raw, mapping, source=str(path), fmt="xes", label=_row_label)
    if name.endswith(".parquet"):
        try:
            raw = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many unrelated types
            raise EventLogError(f"{path}: cannot read Parquet: {exc}") from None
        return _canonical(raw, mapping, source=str(path), fmt="parquet", label=_row_label)
    raw = _read_csv(path, mapping, encoding)
    return _canonical(raw, mapping, source=str(path), fmt="csv", label=lambda i: f"line {i + 2}")


def frame_from_records(
    records: Sequence[Mapping[str, Any]], mapping: ColumnMapping | None = None
) -> pd.DataFrame:
    """Canonical event frame from JSON-like event records (e.g. from an enterprise API).

    Each record looks like ``{"case_id", "activity", "lifecycle", "timestamp",
    "resource", "attributes": {...}}``; ``attributes`` are flattened to
    ``case:<name>`` columns, other keys are kept as event attributes. Start and
    complete records are paired as for files. Errors name ``records[i]``.
    """
    if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
        raise EventLogError("records: expected a list of event objects")
    if not records:
        raise EventLogError("records: no events")
    rows: list[dict[str, Any]] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise EventLogError(f"records[{i}]: not an object but {type(rec).__name__}")
        row = {k: v for k, v in rec.items() if k != "attributes"}
        attributes = rec.get("attributes") or {}
        if not isinstance(attributes, Mapping):
            raise EventLogError(f"records[{i}]: 'attributes' must be an object")
        for key, value in attributes.items():
            row[key if str(key).startswith("case:") else f"case:{key}"] = value
        rows.append(row)
    raw = pd.DataFrame.from_records(rows)
    return _canonical(
        raw, mapping, source="records", fmt="records", label=lambda i: f"records[{i}]"
    )


def to_canonical(
    frame: pd.DataFrame, mapping: ColumnMapping | None = None, source: str = "dataframe"
) -> pd.DataFrame:
    """Canonical event frame from an in-memory DataFrame in any of the recognised layouts."""
    return _canonical(
        frame.reset_index(drop=True), mapping, source=source, fmt="dataframe", label=_row_label
    )


# --------------------------------------------------------------------------- CSV
def _row_label(i: int) -> str:
    return f"row {i + 1}"


def _read_csv(path: Path, mapping: ColumnMapping | None, encoding: str) -> pd.DataFrame:
    data = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        import gzip

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise EventLogError(f"{path}: cannot decompress: {exc}") from None
    head = data[:8192]
    if head.startswith(b"\x1f\x8b"):
        raise EventLogError(f"{path}: gzip-compressed data; name the file .csv.gz")
    if head.startswith(b"PK\x03\x04"):
        raise EventLogError(f"{path}: a ZIP/Excel workbook, not CSV text; export it as CSV")
    if b"\x00" in head:
        raise EventLogError(f"{path}: binary data (NUL bytes in the first 8 KB), not CSV text")
    try:
        text = data.decode(
            "utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding
        )
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise EventLogError(
            f"{path}: not valid {encoding} text at line {line}, column {column} "
            f"(byte 0x{data[exc.start]:02x}); save it as UTF-8 or pass encoding='latin-1'"
        ) from None
    except LookupError:
        raise EventLogError(f"{path}: unknown encoding {encoding!r}") from None
    if not text.strip():
        raise EventLogError(f"{path}: empty file (no header, no events)")
    sample = "\n".join(text[:65536].splitlines()[:50])
    try:
        sep = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        sep = ","
    try:
        header = pd.read_csv(io.StringIO(text), sep=sep, nrows=0).columns
        roles = _detect(list(header), mapping, str(path), required=False)
        as_text = {col: "str" for role, col in roles.items() if col is not None}
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=as_text, skip_blank_lines=False)
    except pd.errors.ParserError as exc:
        raise EventLogError(f"{path}: malformed CSV: {exc}".strip()) from None
    except (ValueError, pd.errors.EmptyDataError) as exc:
        raise EventLogError(f"{path}: cannot read CSV: {exc}") from None
    unnamed = [c for c in frame.columns if re.fullmatch(r"Unnamed: \d+", str(c))]
    frame = frame.drop(columns=unnamed)  # pandas index written by to_csv
    return frame.dropna(how="all")  # blank lines (kept above so row numbers match lines)


# --------------------------------------------------------------------------- canonical frame
def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def _detect(
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


def _canonical(
    raw: pd.DataFrame,
    mapping: ColumnMapping | None,
    *,
    source: str,
    fmt: str,
    label: Callable[[int], str],
) -> pd.DataFrame:
    if raw.empty:
        raise EventLogError(f"{source}: no events found")
    columns = [str(c) for c in raw.columns]
    df = raw.set_axis(columns, axis=1)  # the index numbers rows for error messages
    if not (df.index.is_unique and pd.api.types.is_integer_dtype(df.index)):
        df = df.reset_index(drop=True)
    roles = _detect(columns, mapping, source)
    warnings: list[str] = []
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
        df = df[~missing]
    if df.empty:
        raise EventLogError(
            f"{source}: nothing left after dropping events without case, activity or timestamp"
        )
    fmt_ts = mapping.timestamp_format if mapping else None
    df[CASE] = df[CASE].astype("str")
    df[ACTIVITY] = df[ACTIVITY].astype("str")
    df[TIMESTAMP] = _parse_times(df[TIMESTAMP], roles["timestamp"], fmt_ts, source, label)
    if START in df.columns:
        df[START] = _parse_times(df[START], roles["start_timestamp"], fmt_ts, source, label)
    df["_pos"] = np.arange(len(df))

    if LIFECYCLE in df.columns:
        df = _pair_lifecycle(df, has_start_column=START in df.columns, warnings=warnings)
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
            df[col] = _maybe_numeric(df[col])
    df = df.sort_values([CASE, TIMESTAMP, "_pos"], kind="stable").drop(columns="_pos")
    df = _drop_duplicates(df, warnings)
    df = _impute_case_attributes(df, warnings)
    first_cols = [CASE, ACTIVITY, TIMESTAMP, START, RESOURCE]
    df = df[first_cols + [c for c in df.columns if c not in first_cols]].reset_index(drop=True)
    for w in warnings:
        log.warning("%s: %s", source, w)
    df.attrs = {
        "source": source,
        "format": fmt,
        "raw_events": raw_events,
        "rows": len(df),  # raw_events only describes this frame while its length is unchanged
        "warnings": warnings,
    }
    return df


def _drop_duplicates(df: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """Exact repeats of an activity instance (same case, activity, times, resource) are logged twice, not done twice."""
    key = [CASE, ACTIVITY, TIMESTAMP, START, RESOURCE]
    dup = df.duplicated(subset=key, keep="first")
    if dup.any():
        warnings.append(f"dropped {int(dup.sum())} duplicate events (same case, activity, times and resource)")
        df = df[~dup]
    return df


def _impute_case_attributes(df: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """Fill a categorical case attribute a case lacks with the attribute's mode; flag every filled value.

    Within a case the first value present is used for all its rows. A case with
    no value at all gets the mode over cases, and ``imputed:<name>`` is True on
    its rows. Numeric attributes are left missing (a mean would invent data).
    """
    for col in [c for c in df.columns if c.startswith("case:") and c != CASE]:
        values = df[col]
        if not values.isna().any() or pd.api.types.is_numeric_dtype(values):
            continue
        per_case = values.groupby(df[CASE], sort=False).transform("first")
        lacking = per_case.isna()
        filled = per_case
        if lacking.any():
            mode = per_case.dropna().mode()
            if mode.empty:
                continue
            filled = per_case.fillna(mode.iloc[0])
            name = col.removeprefix("case:")
            df = df.assign(**{col: filled, f"imputed:{name}": lacking.to_numpy()})
            cases = df.loc[lacking, CASE].nunique()
            warnings.append(f"imputed {name!r} for {cases} cases with its mode {mode.iloc[0]!r} "
                            f"(flagged in column 'imputed:{name}')")
        else:
            df = df.assign(**{col: filled})
    return df


def _parse_times(
    values: pd.Series, column: str | None, fmt: str | None, source: str, label: Callable[[int], str]
) -> pd.Series:
    """UTC timestamps; naive values are taken as UTC. Raises naming the first bad value."""
    if values.dtype.kind == "M":
        out = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
        return out.astype(TIME_DTYPE)
    if pd.api.types.is_numeric_dtype(values):  # epoch seconds or ms? refuse to guess
        raise EventLogError(
            f"{source}: timestamps in column {column!r} are numbers (e.g. {values.iloc[0]!r}); "
            "give ISO 8601 text such as 2024-01-31T09:00:00Z"
        )
    present = values.notna() & (values.astype("str").str.strip() != "")
    try:
        parsed = pd.to_datetime(values, utc=True, format=fmt or "ISO8601")
    except (ValueError, TypeError, OverflowError):
        if fmt:  # the user named the format: report values that do not follow it
            parsed = pd.to_datetime(values, utc=True, format=fmt, errors="coerce")
        else:
            try:
                parsed = pd.to_datetime(values, utc=True, format="mixed", errors="coerce")
            except (ValueError, TypeError, OverflowError):
                parsed = pd.Series(pd.NaT, index=values.index, dtype=TIME_DTYPE)
    bad = present & parsed.isna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        idx = values.index[pos]
        hint = f" with format {fmt!r}" if fmt else "; set ColumnMapping.timestamp_format"
        raise EventLogError(
            f"{source}: unparseable timestamp in column {column!r} at {label(int(idx))}: "
            f"{values.loc[idx]!r} ({int(bad.sum())} bad values{hint})"
        )
    try:
        return parsed.astype(TIME_DTYPE)
    except (ValueError, OverflowError) as exc:
        raise EventLogError(
            f"{source}: timestamps in column {column!r} out of range: {exc}"
        ) from None


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values)


def _maybe_numeric(values: pd.Series) -> pd.Series:
    """Numbers stored as text (XES string attributes) become numeric; others stay as they are."""
    if values.map(type).isin([dict, list]).any():
        return values
    numbers = pd.to_numeric(values, errors="coerce")
    return (
        numbers
        if numbers.notna().sum() == values.notna().sum() and values.notna().any()
        else values
    )


def _pair_lifecycle(
    df: pd.DataFrame, *, has_start_column: bool, warnings: list[str]
) -> pd.DataFrame:
    """One row per activity instance from start/complete events (see module docstring)."""
    lc = df[LIFECYCLE].astype("str").str.strip().str.lower()
    lc = lc.mask(df[LIFECYCLE].isna() | (lc == ""), "complete")
    is_start, is_complete = (lc == "start").to_numpy(), (lc == "complete").to_numpy()
    if not (is_start | is_complete).any():
        warnings.append("lifecycle column has no start/complete values; ignored")
        return df
    other = int((~(is_start | is_complete)).sum())
    if other:
        warnings.append(f"dropped {other} lifecycle events other than start/complete")
    if has_start_column or not is_start.any():
        return df[is_complete].drop(columns=LIFECYCLE)

    sub = df[is_start | is_complete]
    starts = is_start[is_start | is_complete]
    group = sub.groupby([CASE, ACTIVITY], sort=False).ngroup().to_numpy()
    times = sub[TIMESTAMP].dt.tz_convert(None).to_numpy()
    order = np.lexsort((sub["_pos"].to_numpy(), ~starts, times, group))
    match = np.full(len(sub), -1)
    pending: deque[int] = deque()
    unmatched, current = 0, -1
    for i, g, s in zip(order.tolist(), group[order].tolist(), starts[order].tolist(), strict=True):
        if g != current:
            unmatched += len(pending)
            pending.clear()
            current = g
        if s:
            pending.append(i)
        elif pending:
            match[i] = pending.popleft()
    unmatched += len(pending)
    if unmatched:
        warnings.append(f"dropped {unmatched} start events without a later complete (in progress)")

    complete_idx = np.flatnonzero(~starts)
    out = sub.iloc[complete_idx].drop(columns=LIFECYCLE)
    matched = match[complete_idx]
    has = matched >= 0
    start_rows = sub.iloc[np.where(has, matched, 0)]
    start_times = start_rows[TIMESTAMP].set_axis(out.index)
    out[START] = start_times.where(pd.Series(has, index=out.index), out[TIMESTAMP])
    for col in out.columns:  # complete events win; fill their gaps from the start event
        if col in (CASE, ACTIVITY, TIMESTAMP, START, "_pos"):
            continue
        gaps = out[col].isna().to_numpy() & has
        if gaps.any():
            out.loc[gaps, col] = start_rows[col].to_numpy()[gaps]
    return out
