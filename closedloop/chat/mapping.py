"""The column-mapping step: which columns of an uploaded table hold case, activity and times.

Detection (``closedloop.tools.log``) knows the common spellings; a log with other
headers (``Ticket Nr``, ``Step``, ``Finished``...) would fail with "missing case
column". The chat reads only the header first, says what it found, asks the person
for each role it could not find (required ones first, then the optional start time
and resource), and reads the log with the resulting ``ColumnMapping``.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.errors import EventLogError
from closedloop.tools.log import ColumnMapping
from closedloop.tools.log.canonical import REQUIRED, detect_roles

HEAD_BYTES = 65_536
# Roles the chat asks for, in this order, with the question it asks.
QUESTIONS: dict[str, str] = {
    "case": "Which column holds the **case id** (one id per ticket, order, ...)?",
    "activity": "Which column holds the **activity** (the step that happened)?",
    "timestamp": "Which column holds **when the step was completed**?",
    "start_timestamp": "Which column holds **when the step started**? (optional)",
    "resource": "Which column names **who did the step** (person or team)? (optional)",
}
OPTIONAL = ("start_timestamp", "resource")
NONE_CHOICE = "(none)"
MAX_CHOICES = 24


class HeaderScan(BaseModel):
    """The columns of a table and the roles detection found among them (None: not found)."""

    name: str
    columns: list[str]
    roles: dict[str, str | None]
    sample: dict[str, str] = Field(default_factory=dict, description="first value per column")

    @property
    def missing_required(self) -> list[str]:
        return [r for r in REQUIRED if self.roles.get(r) is None]

    def to_ask(self) -> list[str]:
        """Roles to ask for: every missing required one, then undetected optional ones
        (only when something is asked anyway: a detected log goes straight through)."""
        missing = self.missing_required
        if not missing:
            return []
        return missing + [r for r in OPTIONAL if self.roles.get(r) is None]

    def check_mappable(self) -> None:
        """EventLogError when fewer columns are left than required roles are missing (nothing to ask)."""
        missing, free = self.missing_required, self.free_columns({})
        if len(free) < len(missing):
            others = ", ".join(free) if free else "none"
            raise EventLogError(
                f"{self.name}: missing {', '.join(missing)} column{'s' if len(missing) > 1 else ''}; "
                f"columns found: {', '.join(self.columns)} (unassigned: {others})"
            )

    def free_columns(self, chosen: dict[str, str | None]) -> list[str]:
        """Columns not yet given a role (detected or chosen)."""
        used = {c for c in {**self.roles, **chosen}.values() if c}
        return [c for c in self.columns if c not in used]


def scan_header(path: str | Path, name: str) -> HeaderScan | None:
    """The header of a CSV (optionally .csv.gz) or Parquet table; None for XES (its attributes
    are standard) or formats without a header."""
    lower = name.lower()
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            columns = [str(c) for c in pq.read_schema(path).names]
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many unrelated types
            raise EventLogError(f"{name}: cannot read Parquet: {exc}") from None
        sample: dict[str, str] = {}
    elif lower.endswith((".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")):
        columns, sample = _csv_header(Path(path), name)
    else:
        return None
    roles = detect_roles(columns, None, name, required=False)
    roles = {r: roles.get(r) for r in QUESTIONS}
    return HeaderScan(name=name, columns=columns, roles=roles, sample=sample)


def _csv_header(path: Path, name: str) -> tuple[list[str], dict[str, str]]:
    if name.lower().endswith(".gz"):
        # Inflate only the head: a gzip bomb must not be decompressed whole to read a header.
        try:
            with gzip.open(path, "rb") as stream:
                raw = stream.read(HEAD_BYTES)
        except (OSError, EOFError) as exc:
            raise EventLogError(f"{name}: cannot decompress: {exc}") from None
    else:
        with path.open("rb") as stream:
            raw = stream.read(HEAD_BYTES)
    text = raw.decode("utf-8-sig", errors="replace")
    lines = text.splitlines()[:50]
    if not lines:
        raise EventLogError(f"{name}: empty file (no header, no events)")
    try:
        sep = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|").delimiter
    except csv.Error:
        sep = ","
    try:
        head = pd.read_csv(io.StringIO("\n".join(lines)), sep=sep, nrows=1, dtype=str)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise EventLogError(f"{name}: cannot read the CSV header: {exc}") from None
    columns = [str(c) for c in head.columns if not str(c).startswith("Unnamed: ")]
    first = head.iloc[0] if len(head) else None
    sample = {c: "" if first is None or pd.isna(first[c]) else str(first[c]) for c in columns}
    return columns, sample


def choices(scan: HeaderScan, role: str, chosen: dict[str, str | None]) -> list[str]:
    """The buttons offered for ``role``: free columns (capped), plus "(none)" for optional roles."""
    options = scan.free_columns(chosen)[:MAX_CHOICES]
    return options + [NONE_CHOICE] if role in OPTIONAL else options


def build_mapping(scan: HeaderScan, chosen: dict[str, str | None]) -> ColumnMapping:
    """The ColumnMapping of detected plus chosen roles; EventLogError when a required role is
    still missing or a column is used twice or does not exist."""
    roles = {**scan.roles, **{r: (None if c == NONE_CHOICE else c) for r, c in chosen.items()}}
    missing = [r for r in REQUIRED if not roles.get(r)]
    if missing:
        raise EventLogError(f"{scan.name}: no column chosen for {', '.join(missing)}")
    picked = [c for c in roles.values() if c]
    unknown = [c for c in picked if c not in scan.columns]
    if unknown:
        raise EventLogError(
            f"{scan.name}: no column called {unknown[0]!r}; columns: {', '.join(scan.columns)}"
        )
    twice = sorted({c for c in picked if picked.count(c) > 1})
    if twice:
        raise EventLogError(f"{scan.name}: column {twice[0]!r} was given two roles")
    return ColumnMapping(**{r: c for r, c in roles.items() if c and r in QUESTIONS})


def mapping_summary(mapping: ColumnMapping) -> list[tuple[str, str]]:
    """(role in words, column) pairs of a mapping, for the chat."""
    words = {
        "case": "case id",
        "activity": "activity",
        "timestamp": "completed at",
        "start_timestamp": "started at",
        "resource": "who",
    }
    return [
        (words[r], c)
        for r, c in mapping.model_dump(exclude={"timestamp_format"}).items()
        if c and r in words
    ]
