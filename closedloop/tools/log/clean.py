"""Cleaning steps of the canonical frame: lifecycle pairing, duplicates, imputation, numbers.

Each step takes the frame being built by ``canonical.canonical_frame`` and the
list of warnings it collects, and returns the cleaned frame.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd

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

__all__ = ["drop_duplicate_events", "impute_case_attributes", "maybe_numeric", "pair_lifecycle"]


def drop_duplicate_events(df: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """Exact repeats of an activity instance (same case, activity, times, resource) are logged twice, not done twice."""
    key = [CASE, ACTIVITY, TIMESTAMP, START, RESOURCE]
    dup = df.duplicated(subset=key, keep="first")
    if dup.any():
        warnings.append(
            f"dropped {int(dup.sum())} duplicate events (same case, activity, times and resource)"
        )
        df = df[~dup]
    return df


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
    df: pd.DataFrame, *, has_start_column: bool, warnings: list[str]
) -> pd.DataFrame:
    """One row per activity instance from start/complete events (see ``canonical``'s module docstring)."""
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
