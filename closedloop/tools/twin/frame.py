"""Event-frame preparation for twin fitting: checks, time splits, case attributes.

Each activity instance's sojourn (from the moment it was *enabled*, i.e. the
previous completion in the case, to its completion) is split into waiting and
processing. With start times in the log, processing = complete - start.
Without them (e.g. helpdesk) the start is estimated as ``max(enabled, the
resource's previous completion)`` (the usual resource-availability
heuristic); with no resource either, the whole sojourn is waiting.
:func:`contention_hours` measures how much of each wait fell while the
resource that did the work was busy with other work.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from closedloop.tools.errors import EventLogError, ScenarioError
from closedloop.tools.log.attributes import case_level_columns
from closedloop.tools.log.columns import (
    ACTIVITY,
    CASE,
    CASE_PREFIX,
    COMPLETE,
    RESOURCE,
    START,
)
from closedloop.tools.twin.distributions import SAMPLE_CAP
from closedloop.tools.twin.routing import END

HOUR = pd.Timedelta(hours=1)


def plain(value: Any) -> Any:
    """A JSON-safe scalar (None for missing, ints for whole floats, short strings)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, (bool, int, float)):
        return value
    return str(value)[:200]


def sample(values: np.ndarray, rng: np.random.Generator) -> list[float]:
    """At most SAMPLE_CAP values (a seeded random subset, order kept)."""
    if len(values) > SAMPLE_CAP:
        values = values[np.sort(rng.choice(len(values), SAMPLE_CAP, replace=False))]
    return [round(float(v), 6) for v in values]


def prepare(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Checked copy of the canonical frame, sorted by case and completion; warnings."""
    warnings: list[str] = []
    if not isinstance(frame, pd.DataFrame):
        raise ScenarioError("fit_twin needs a pandas DataFrame (the canonical event frame)")
    missing = [c for c in (CASE, ACTIVITY, COMPLETE) if c not in frame.columns]
    if missing:
        raise EventLogError(
            f"event frame lacks required column(s) {missing}; has {list(frame.columns)}"
        )
    if frame.empty:
        raise ScenarioError("event frame is empty: cannot fit a process twin from zero events")
    df = frame.copy()
    df[COMPLETE] = pd.to_datetime(df[COMPLETE], utc=True, errors="coerce")
    df[START] = (
        pd.to_datetime(df[START], utc=True, errors="coerce") if START in df else df[COMPLETE]
    )
    df[START] = df[START].fillna(df[COMPLETE])
    df[START] = df[START].where(df[START] <= df[COMPLETE], df[COMPLETE])
    bad = df[COMPLETE].isna() | df[CASE].isna() | df[ACTIVITY].isna()
    if bad.any():
        warnings.append(f"dropped {int(bad.sum())} event(s) without case, activity or timestamp")
        df = df[~bad]
    if df.empty:
        raise ScenarioError("no event has a case id, an activity and a valid timestamp")
    df[CASE] = df[CASE].astype(str)
    df[ACTIVITY] = df[ACTIVITY].astype(str)
    if (df[ACTIVITY] == END).any():
        raise ScenarioError(f"activity name {END!r} is reserved for the end of a case")
    df[RESOURCE] = df[RESOURCE].fillna("").astype(str) if RESOURCE in df else ""
    df = df.sort_values([CASE, COMPLETE, START], kind="mergesort").reset_index(drop=True)
    return df, warnings


def split_times(df: pd.DataFrame, has_starts: bool) -> tuple[pd.Series, pd.Series]:
    """Per activity instance: when it was enabled and when it (probably) started."""
    prev_end = df.groupby(CASE, sort=False)[COMPLETE].shift(1)
    enabled = prev_end.where(prev_end.notna() & (prev_end <= df[START]), df[START])
    if has_starts:
        return enabled, df[START]
    named = df[RESOURCE] != ""
    by_res = df[named].sort_values([RESOURCE, COMPLETE], kind="mergesort")
    res_prev = by_res.groupby(RESOURCE, sort=False)[COMPLETE].shift(1).reindex(df.index)
    start = enabled.where(res_prev.isna() | (res_prev <= enabled), res_prev)
    # no resource and no start: nothing tells work from waiting, so it all counts as delay
    start = start.where(named, df[COMPLETE])
    start = start.where(start <= df[COMPLETE], df[COMPLETE])
    return enabled, start


def contention_hours(df: pd.DataFrame, enabled: pd.Series, start: pd.Series) -> np.ndarray:
    """Hours of each instance's wait (enabled -> start) its resource spent on other work.

    A resource's busy time is the union of its recorded [start, complete]
    intervals; the part of the wait covered by it is contention, the rest is
    not explained by that resource being busy.
    """
    out = np.zeros(len(df))
    base = df[START].min()
    named = (df[RESOURCE] != "").to_numpy()
    s_all = ((df[START] - base) / HOUR).to_numpy(dtype=float)
    e_all = ((df[COMPLETE] - base) / HOUR).to_numpy(dtype=float)
    a_all = ((enabled - base) / HOUR).to_numpy(dtype=float)
    b_all = ((start - base) / HOUR).to_numpy(dtype=float)
    codes, _ = pd.factorize(df[RESOURCE])
    by_code = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[by_code], np.arange(codes.max() + 2))
    for r in np.unique(codes[named]):
        rows = by_code[bounds[r] : bounds[r + 1]]
        order = np.argsort(s_all[rows], kind="stable")
        s, e = s_all[rows][order], e_all[rows][order]
        e = np.maximum.accumulate(e)  # merge overlapping intervals into their union
        new = np.r_[True, s[1:] > e[:-1]]
        ms, me = s[new], e[np.r_[new[1:], True]]
        cum = np.r_[0.0, np.cumsum(me - ms)]

        def busy(t: np.ndarray, ms=ms, me=me, cum=cum) -> np.ndarray:
            j = np.searchsorted(ms, t, side="right") - 1
            inside = np.clip(t - ms[np.maximum(j, 0)], 0, (me - ms)[np.maximum(j, 0)])
            return np.where(j >= 0, cum[np.maximum(j, 0)] + inside, 0.0)

        out[rows] = np.clip(busy(b_all[rows]) - busy(a_all[rows]), 0.0, None)
    return out


def case_attributes(
    df: pd.DataFrame, rng: np.random.Generator
) -> tuple[list[str], list[dict[str, Any]]]:
    """Case attribute names and joint samples (one dict per case, ``case:`` dropped).

    Event attributes that never vary within a case count as case attributes.
    """
    cols, constant = case_level_columns(df)
    cols += [f"{CASE_PREFIX}{c}" for c in constant]
    df = df.rename(columns={c: f"{CASE_PREFIX}{c}" for c in constant})
    if not cols:
        return [], []
    per_case = df.groupby(CASE, sort=True)[cols].first()
    for c in cols:
        if per_case[c].dtype == object or pd.api.types.is_string_dtype(per_case[c]):
            numeric = pd.to_numeric(per_case[c], errors="coerce")
            if numeric.notna().sum() == per_case[c].notna().sum() and numeric.notna().any():
                per_case[c] = numeric
    if len(per_case) > SAMPLE_CAP:
        per_case = per_case.iloc[np.sort(rng.choice(len(per_case), SAMPLE_CAP, replace=False))]
    names = [c.removeprefix(CASE_PREFIX) for c in cols]
    rows = [
        {name: plain(v) for name, v in zip(names, values, strict=True)}
        for values in per_case.itertuples(index=False, name=None)
    ]
    return names, rows
