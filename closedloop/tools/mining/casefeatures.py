"""One row per case with the attributes root-cause rules may use (``rootcause``).

- case attributes (``case:<name>`` columns) and event attributes that never
  change within a case (their first known value);
- derived facts known when the case starts: start weekday, start hour, first
  resource; and the number of activity instances (``EVENT_COUNT``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from closedloop.tools.log.columns import ACTIVITY, CASE, CASE_PREFIX, RESOURCE, START, TIMESTAMP

__all__ = ["EVENT_COUNT", "WEEKDAYS", "case_features"]

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
EVENT_COUNT = "activity instances"


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
    if varying:
        constant = frame.groupby(CASE, sort=False)[varying].nunique().max() <= 1
        kept = [c for c in varying if constant[c]]
        firsts = frame.groupby(CASE, sort=False)[kept].first() if kept else None
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
    return pd.DataFrame(out, index=pd.Index(case[first], name=CASE))


def _usable(values: pd.Series) -> bool:
    """Plain values only: dates are covered by the start weekday and hour; nested XES
    attributes (lists, dicts) cannot be compared."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return False
    if values.dtype == object:
        sample = values.dropna().head(1000)
        return not sample.map(lambda v: isinstance(v, (dict, list, set))).any()
    return True
