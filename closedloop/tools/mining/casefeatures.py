"""One row per case with the attributes root-cause rules may use (``rootcause``).

Only what is known when the case starts, so a rule cannot restate its outcome:
- case attributes (``case:<name>`` columns);
- event attributes that never change within a case and are recorded early: on
  the case's first event or within the first ``EARLY`` (a quarter) of its cycle
  time, in at least ``KNOWN_EARLY`` of the cases that have them (a phone's
  defect type set at intake); one first written later ("Result by Reviewer B",
  an expense booked after the fine) is measured near the outcome and left out;
- derived facts: start weekday, start hour, first resource.
The number of activity instances (``EVENT_COUNT``) is a column too, for callers
that want it, but ``rootcause`` never uses it: it grows with the case's duration.
What was left out and why is in ``frame.attrs["excluded"]`` (name -> reason).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from closedloop.tools.log.columns import ACTIVITY, CASE, CASE_PREFIX, RESOURCE, START, TIMESTAMP

__all__ = ["EVENT_COUNT", "WEEKDAYS", "case_features"]

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
EVENT_COUNT = "activity instances"
KNOWN_EARLY = 0.9
EARLY = 0.25


def case_features(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per case (index: case id, canonical order): the attributes the tree may use."""
    case = frame[CASE].to_numpy()
    first = np.r_[True, case[1:] != case[:-1]]
    heads = frame.loc[first]
    out: dict[str, pd.Series | np.ndarray] = {}
    canonical = {CASE, ACTIVITY, TIMESTAMP, START, RESOURCE}
    usable = [c for c in frame.columns if c not in canonical and _usable(frame[c])]
    varying = [c for c in usable if not c.startswith(CASE_PREFIX)]
    firsts = None
    excluded: dict[str, str] = {}
    if varying:
        constant = frame.groupby(CASE, sort=False)[varying].nunique().max() <= 1
        kept = [c for c in varying if constant[c]]
        by_case = frame.groupby(CASE, sort=False)
        begin = by_case[START].transform("min")
        span = (by_case[TIMESTAMP].transform("max") - begin).dt.total_seconds()
        offset = (frame[START] - begin).dt.total_seconds()
        early = (offset <= EARLY * span) | (offset <= 0)
        for col in list(kept):
            present = frame[col].notna()
            cases_with = int(present.groupby(frame[CASE], sort=False).any().sum())
            known = int((present & early).groupby(frame[CASE], sort=False).any().sum())
            share = known / max(cases_with, 1)
            if share < KNOWN_EARLY:
                kept.remove(col)
                excluded[col] = (
                    f"recorded late in the case (in its first {EARLY:.0%} of cycle time in "
                    f"only {share:.0%} of the cases that have it): measured near the outcome"
                )
        firsts = by_case[kept].first() if kept else None
    for col in usable:
        if col.startswith(CASE_PREFIX):
            out[col.removeprefix(CASE_PREFIX)] = heads[col].to_numpy()
    if firsts is not None:
        for col in firsts.columns:
            out.setdefault(col, firsts[col].to_numpy())
    start = heads[START].dt
    out["start weekday"] = np.array(WEEKDAYS, dtype=object)[start.day_of_week.to_numpy()]
    out["start hour"] = start.hour.to_numpy()
    resources = heads[RESOURCE].astype("str").to_numpy(dtype=object)
    if (resources != "").any():
        out["first resource"] = np.where(resources == "", None, resources)
    out[EVENT_COUNT] = np.diff(np.r_[np.flatnonzero(first), len(frame)])
    table = pd.DataFrame(out, index=pd.Index(case[first], name=CASE))
    table.attrs["excluded"] = excluded
    return table


def _usable(values: pd.Series) -> bool:
    """Plain values only: dates are covered by the start weekday and hour; nested XES
    attributes (lists, dicts) cannot be compared."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return False
    if values.dtype == object:
        sample = values.dropna().head(1000)
        return not sample.map(lambda v: isinstance(v, (dict, list, set))).any()
    return True
