"""Cleaning steps of the canonical frame: lifecycle pairing, duplicates, imputation, numbers.

Each step takes the frame being built by ``canonical.canonical_frame`` and the
list of warnings it collects, and returns the cleaned frame.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

import numpy as np
import pandas as pd

from closedloop.tools.errors import EventLogError
from closedloop.tools.log.columns import (
    ACTIVITY,
    CASE,
    CASE_PREFIX,
    COHORT,
    LIFECYCLE,
    RESOURCE,
    START,
    TIMESTAMP,
)

__all__ = [
    "DUPLICATE_POLICIES",
    "XES_TRANSITIONS",
    "DuplicatePolicy",
    "drop_duplicate_events",
    "impute_case_attributes",
    "maybe_numeric",
    "pair_lifecycle",
]


DuplicatePolicy = Literal["exact", "keep", "same-time"]
DUPLICATE_POLICIES: tuple[str, ...] = ("exact", "keep", "same-time")
# The standard XES lifecycle model (IEEE 1849); values outside it are the log's own states.
XES_TRANSITIONS = frozenset(
    {
        "schedule", "assign", "reassign", "start", "suspend", "resume", "autoskip",
        "manualskip", "withdraw", "complete", "ate_abort", "pi_abort", "unknown",
    }
)  # fmt: skip
CLASSIFIER_SEP = "+"  # "activity+lifecycle", pm4py's spelling of the XES classifier


def drop_duplicate_events(
    df: pd.DataFrame, policy: str, dropped: dict[str, int], warnings: list[str]
) -> pd.DataFrame:
    """Drop repeated events of the raw (unpaired) rows according to ``policy``.

    - ``exact`` (default): only rows equal in every column (resource, lifecycle and
      all attributes included) are dropped: a row written twice.
    - ``keep``: nothing is dropped.
    - ``same-time``: rows with the same case, activity, timestamps, resource and
      lifecycle are dropped even when other attributes differ (opt-in; same-minute
      repeats without a resource column are often real repeated work).
    """
    if policy not in DUPLICATE_POLICIES:
        raise EventLogError(
            f"duplicates must be one of {', '.join(DUPLICATE_POLICIES)}, got {policy!r}"
        )
    if policy == "keep":
        return df
    if policy == "same-time":
        key = [c for c in (CASE, ACTIVITY, TIMESTAMP, START, RESOURCE, LIFECYCLE) if c in df]
        what = "same case, activity, times, resource and lifecycle; duplicates='same-time'"
    else:
        key = [c for c in df.columns if c != "_pos"]
        what = "identical in every column; keep them with duplicates='keep'"
    try:
        dup = df[key].duplicated(keep="first")
    except TypeError:  # nested XES values (lists, dicts) cannot be hashed as they are
        dup = _hashable(df[key]).duplicated(keep="first")
    if dup.any():
        n = int(dup.sum())
        dropped["duplicate"] = dropped.get("duplicate", 0) + n
        warnings.append(f"dropped {n} duplicate events ({what})")
        df = df[~dup.to_numpy()]
    return df


def _hashable(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with nested XES values (lists, dicts) as text so rows can be compared."""
    out = df
    for col in df.columns:
        if df[col].dtype == object and df[col].map(type).isin([dict, list, set]).any():
            out = out.assign(**{col: df[col].astype("str")})
    return out


def impute_case_attributes(df: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """Fill a categorical case attribute a case lacks with the attribute's mode; flag every filled value.

    Within a case the first value present is used for all its rows. A case with
    no value at all gets the mode over cases, and ``imputed:<name>`` is True on
    its rows. Numeric attributes are left missing (a mean would invent data).
    """
    # A case without a cohort is in no experiment: filling one in would invent a treated case.
    for col in [c for c in df.columns if c.startswith(CASE_PREFIX) and c not in (CASE, COHORT)]:
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
            name = col.removeprefix(CASE_PREFIX)
            df = df.assign(**{col: filled, f"imputed:{name}": lacking.to_numpy()})
            cases = df.loc[lacking, CASE].nunique()
            warnings.append(
                f"imputed {name!r} for {cases} cases with its mode {mode.iloc[0]!r} "
                f"(flagged in column 'imputed:{name}')"
            )
        else:
            df = df.assign(**{col: filled})
    return df


def maybe_numeric(values: pd.Series) -> pd.Series:
    """Numbers stored as text (XES string attributes) become numeric; others stay as they are."""
    if values.map(type).isin([dict, list]).any():
        return values
    numbers = pd.to_numeric(values, errors="coerce")
    return (
        numbers
        if numbers.notna().sum() == values.notna().sum() and values.notna().any()
        else values
    )


def pair_lifecycle(
    df: pd.DataFrame, *, has_start_column: bool, dropped: dict[str, int], warnings: list[str]
) -> pd.DataFrame:
    """One row per activity instance from start/complete events (see ``canonical``'s module docstring).

    Values outside the XES lifecycle model (a log's own states such as "In
    Progress" or "Awaiting Assignment") are kept: such an event becomes its own
    activity instance named ``activity+state``, so states are never counted as
    rework of one activity. Standard transitions other than start/complete
    (schedule, suspend, ...) are dropped and counted in ``dropped``.
    """
    lc = df[LIFECYCLE].astype("str").str.strip()
    lc = lc.mask(df[LIFECYCLE].isna() | (lc == ""), "complete")
    low = lc.str.lower()
    own = ~low.isin(XES_TRANSITIONS).to_numpy()
    if own.any():
        df = df.copy()
        df.loc[own, ACTIVITY] = df.loc[own, ACTIVITY] + CLASSIFIER_SEP + lc[own]
        states = sorted(lc[own].unique().tolist())
        warnings.append(
            f"lifecycle values outside the XES model kept as activity+state ({int(own.sum())} "
            f"events; states {', '.join(map(repr, states[:5]))}{' ...' if len(states) > 5 else ''})"
        )
        low = low.mask(own, "complete")
    is_start, is_complete = (low == "start").to_numpy(), (low == "complete").to_numpy()
    other = ~(is_start | is_complete)
    if other.any():
        for transition, n in pd.Series(low[other]).value_counts().sort_index().items():
            dropped[f"lifecycle {transition}"] = int(n)
        counts = ", ".join(f"{n} {t}" for t, n in pd.Series(low[other]).value_counts().items())
        warnings.append(
            f"dropped {int(other.sum())} lifecycle events other than start/complete ({counts}); "
            "their time is not analysed"
        )
    if has_start_column or not is_start.any():
        if is_start.any():  # the start column already holds these times
            dropped["lifecycle start (start column present)"] = int(is_start.sum())
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
        dropped["start without complete"] = unmatched
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
