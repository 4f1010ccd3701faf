"""Timestamps of the canonical frame: parsed to UTC, implausible dates refused."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from closedloop.tools.errors import EventLogError
from closedloop.tools.log.columns import TIME_DTYPE

__all__ = ["EARLIEST", "MAX_FUTURE", "parse_times", "refuse_implausible"]


def parse_times(
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


EARLIEST = pd.Timestamp("1900-01-01", tz="UTC")
MAX_FUTURE = pd.Timedelta(days=2 * 365)


def refuse_implausible(
    times: pd.Series, column: str | None, source: str, label: Callable[[int], str]
) -> None:
    """Refuse dates no real process has: before 1900 or over two years after today."""
    latest = pd.Timestamp.now(tz="UTC") + MAX_FUTURE
    bad = ((times < EARLIEST) | (times > latest)).to_numpy()
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise EventLogError(
            f"{source}: implausible timestamp in column {column!r} at "
            f"{label(int(times.index[pos]))}: {times.iloc[pos].isoformat()} ({int(bad.sum())} "
            f"values before {EARLIEST:%Y-%m-%d} or after {latest:%Y-%m-%d}); fix the dates"
        )
