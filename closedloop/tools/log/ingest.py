"""Event log readers: CSV, XES, Parquet files and JSON records -> the canonical event frame.

The frame's contract (columns, sorting, lifecycle pairing, time zones and the
bookkeeping in ``frame.attrs``) is described in ``closedloop.tools.log.canonical``;
this module reads the sources and hands their rows over to it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.errors import EventLogError
from closedloop.tools.log.canonical import (
    ColumnMapping,
    canonical_frame,
    detect_roles,
    event_counts,
    raw_event_count,
    row_label,
    to_canonical,
)
from closedloop.tools.log.clean import DuplicatePolicy
from closedloop.tools.log.columns import ACTIVITY, CASE, CASE_PREFIX, RESOURCE, START, TIMESTAMP
from closedloop.tools.log.ocel import OCEL_SUFFIXES, flatten_ocel, read_ocel
from closedloop.tools.log.xes import check_inflation, read_xes

__all__ = [
    "ACTIVITY",
    "CASE",
    "RESOURCE",
    "START",
    "SUFFIXES",
    "TIMESTAMP",
    "ColumnMapping",
    "EventLogSummary",
    "frame_from_records",
    "load_event_log",
    "raw_event_count",
    "to_canonical",
]

SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt", ".xes", ".xes.gz", ".parquet", *OCEL_SUFFIXES)


class EventLogSummary(BaseModel):
    """A short description of a canonical frame (for people and the agents)."""

    source: str
    format: str
    raw_events: int = Field(description="events read from the source")
    dropped: dict[str, int] = Field(
        default_factory=dict, description="events not analysed, by reason"
    )
    events: int = Field(default=0, description="events analysed (raw_events minus dropped)")
    rows: int = Field(description="activity instances (a start+complete pair is one)")
    cases: int
    activities: int
    has_start_times: bool
    first: str | None
    last: str | None
    warnings: list[str]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> EventLogSummary:
        """Summarise a canonical frame."""
        empty = frame.empty
        counts = event_counts(frame)
        return cls(
            source=str(frame.attrs.get("source", "")),
            format=str(frame.attrs.get("format", "")),
            raw_events=counts.events_read,
            dropped=counts.dropped,
            events=counts.events,
            rows=len(frame),
            cases=int(frame[CASE].nunique()),
            activities=int(frame[ACTIVITY].nunique()),
            has_start_times=bool((frame[START] != frame[TIMESTAMP]).any()),
            first=None if empty else frame[START].min().isoformat(),
            last=None if empty else frame[TIMESTAMP].max().isoformat(),
            warnings=list(frame.attrs.get("warnings", [])),
        )


def load_event_log(
    path: str | Path,
    mapping: ColumnMapping | None = None,
    *,
    encoding: str = "utf-8",
    duplicates: DuplicatePolicy = "exact",
    object_type: str | None = None,
) -> pd.DataFrame:
    """Read a .csv / .xes / .xes.gz / .parquet / OCEL 2.0 event log into the canonical frame.

    Raises EventLogError naming the file and, where possible, line, column and value.
    ``encoding`` applies to CSV only (XES declares its own). ``duplicates``: which
    repeated events are dropped: "exact" (rows equal in every column, the default),
    "keep" (none) or "same-time" (same case, activity, times, resource, lifecycle);
    the counts are in ``frame.attrs["dropped"]``. OCEL 2.0 logs (.jsonocel,
    .xmlocel, .sqlite) are flattened on ``object_type`` (see ``ocel``; required
    when the log has several), and the first warning says what was flattened.
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
        raw = read_xes(path)
        return canonical_frame(
            raw, mapping, source=str(path), fmt="xes", label=row_label, duplicates=duplicates
        )
    if name.endswith(OCEL_SUFFIXES):
        flat, note = flatten_ocel(read_ocel(path), object_type, str(path))
        frame = canonical_frame(
            flat, mapping, source=str(path), fmt="ocel", label=row_label, duplicates=duplicates
        )
        frame.attrs["warnings"] = [note, *frame.attrs["warnings"]]
        return frame
    if name.endswith(".parquet"):
        try:
            raw = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many unrelated types
            raise EventLogError(f"{path}: cannot read Parquet: {exc}") from None
        return canonical_frame(
            raw, mapping, source=str(path), fmt="parquet", label=row_label, duplicates=duplicates
        )
    raw = _read_csv(path, mapping, encoding)
    return canonical_frame(
        raw,
        mapping,
        source=str(path),
        fmt="csv",
        label=lambda i: f"line {i + 2}",
        duplicates=duplicates,
    )


def frame_from_records(
    records: Sequence[Mapping[str, Any]],
    mapping: ColumnMapping | None = None,
    *,
    duplicates: DuplicatePolicy = "exact",
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
            row[key if str(key).startswith(CASE_PREFIX) else f"{CASE_PREFIX}{key}"] = value
        rows.append(row)
    raw = pd.DataFrame.from_records(rows)
    return canonical_frame(
        raw,
        mapping,
        source="records",
        fmt="records",
        label=lambda i: f"records[{i}]",
        duplicates=duplicates,
    )


def _gunzip(path: Path) -> bytes:
    """Decompress a gzip file in chunks, refusing a gzip bomb (``xes.check_inflation``)."""
    import gzip
    import zlib

    parts: list[bytes] = []
    size, compressed = 0, path.stat().st_size
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 20):
                size += len(chunk)
                check_inflation(path, size, compressed)
                parts.append(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise EventLogError(f"{path}: cannot decompress: {exc}") from None
    return b"".join(parts)


def _read_csv(path: Path, mapping: ColumnMapping | None, encoding: str) -> pd.DataFrame:
    if path.name.lower().endswith(".gz"):
        data = _gunzip(path)
    else:
        data = path.read_bytes()
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
        roles = detect_roles(list(header), mapping, str(path), required=False)
        as_text = {col: "str" for role, col in roles.items() if col is not None}
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=as_text, skip_blank_lines=False)
    except pd.errors.ParserError as exc:
        raise EventLogError(f"{path}: malformed CSV: {exc}".strip()) from None
    except (ValueError, pd.errors.EmptyDataError) as exc:
        raise EventLogError(f"{path}: cannot read CSV: {exc}") from None
    unnamed = [c for c in frame.columns if re.fullmatch(r"Unnamed: \d+", str(c))]
    frame = frame.drop(columns=unnamed)  # pandas index written by to_csv
    return frame.dropna(how="all")  # blank lines (kept above so row numbers match lines)
