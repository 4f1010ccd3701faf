"""Cycle times with open cases censored, not dropped: Kaplan-Meier and the restricted mean.

A case still open when the measurement window ends has a cycle time of *at
least* its age; dropping it keeps only the quick ones and biases the mean low
(worst under overload, when many cases are open). The Kaplan-Meier curve uses
each open case up to its age; the restricted mean cycle time up to ``tau``
(the area under that curve) is the mean of ``min(T, tau)`` and equals the plain
mean when every case is closed and ``tau`` is the longest one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from closedloop.tools.errors import ToolError
from closedloop.tools.log.columns import ACTIVITY, CASE, START, TIMESTAMP


class SurvivalCurve(BaseModel):
    """A right-continuous Kaplan-Meier step curve: ``survival[i]`` holds from ``times[i]`` on."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    times: np.ndarray  # distinct event (closing) times, increasing
    survival: np.ndarray  # S(t) just after each time
    at_risk: np.ndarray
    events: np.ndarray
    follow_up: float  # the longest time seen (closed or open)

    def at(self, t: float | np.ndarray) -> np.ndarray:
        """S(t) (1 before the first closing)."""
        idx = np.searchsorted(self.times, np.asarray(t, dtype=float), side="right") - 1
        return np.where(
            idx < 0, 1.0, self.survival[np.clip(idx, 0, None)] if len(self.times) else 1.0
        )


class RestrictedMean(BaseModel):
    """Restricted mean cycle time up to ``tau`` hours with its standard error."""

    mean: float
    se: float
    tau: float
    n: int
    open_cases: int


def kaplan_meier(durations: Iterable[float], closed: Iterable[bool]) -> SurvivalCurve:
    """Kaplan-Meier estimate of P(cycle time > t); ``closed`` False marks a censored (open) case."""
    t = np.asarray(list(durations), dtype=float)
    d = np.asarray(list(closed), dtype=bool)
    if len(t) != len(d):
        raise ToolError(f"kaplan_meier: {len(t)} durations but {len(d)} closed flags")
    if len(t) == 0:
        raise ToolError("kaplan_meier needs at least one case")
    if not np.isfinite(t).all() or (t < 0).any():
        raise ToolError("kaplan_meier got negative or non-finite durations")
    times, counts = np.unique(t[d], return_counts=True)
    # At risk at time u: every case whose time is >= u (a case censored at u counts as at risk at u).
    at_risk = (len(t) - np.searchsorted(np.sort(t), times, side="left")).astype(float)
    events = counts.astype(float)
    survival = np.cumprod(1.0 - events / at_risk) if len(times) else np.array([])
    return SurvivalCurve(
        times=times, survival=survival, at_risk=at_risk, events=events, follow_up=float(t.max())
    )


def _area(curve: SurvivalCurve, lo: float, hi: float) -> float:
    """Integral of S over [lo, hi] (S is a step function)."""
    if hi <= lo:
        return 0.0
    inner = curve.times[(curve.times > lo) & (curve.times < hi)]
    cuts = np.concatenate([[lo], inner, [hi]])
    return float(np.sum(curve.at(cuts[:-1]) * np.diff(cuts)))


def restricted_mean(
    durations: Iterable[float],
    closed: Iterable[bool],
    tau: float | None = None,
    tail: SurvivalCurve | None = None,
) -> RestrictedMean:
    """Restricted mean cycle time up to ``tau`` (default: the longest time seen), with its standard error.

    Beyond this group's own follow-up the curve is held flat, or, with ``tail``,
    continued with ``tail``'s conditional survival (e.g. the pooled curve of the
    same arm). The standard error is the usual Greenwood-type one
    (sum of A_i^2 d_i / (n_i (n_i - d_i)), A_i the area after the i-th closing).
    """
    t = np.asarray(list(durations), dtype=float)
    d = np.asarray(list(closed), dtype=bool)
    curve = kaplan_meier(t, d)
    tau = float(curve.follow_up if tau is None else tau)
    if tau <= 0:
        raise ToolError(f"restricted_mean needs tau > 0, got {tau}")
    own = min(tau, curve.follow_up)
    s_end = float(curve.at(own))
    extension = 0.0  # the area beyond this group's own follow-up
    if tau > own and s_end > 0:
        if tail is not None and float(tail.at(own)) > 0:
            extension = s_end * _area(tail, own, tau) / float(tail.at(own))
        else:
            extension = s_end * (tau - own)
    area = _area(curve, 0.0, own) + extension
    var = 0.0
    # The extension scales with S(own), so it moves with every factor of the curve before it
    # (the tail curve's own uncertainty is not included).
    for u, n_i, d_i in zip(curve.times, curve.at_risk, curve.events, strict=True):
        if u >= tau or n_i <= d_i:
            continue
        a_i = _area(curve, u, own) + extension
        var += a_i**2 * d_i / (n_i * (n_i - d_i))
    return RestrictedMean(
        mean=area, se=math.sqrt(var), tau=tau, n=len(t), open_cases=int((~d).sum())
    )


def utc_timestamp(value: datetime | pd.Timestamp) -> pd.Timestamp:
    """``value`` as a UTC timestamp (a naive one is read as UTC), comparable with event times."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def case_table(
    frame: pd.DataFrame,
    end_activities: Iterable[str],
    window_end: datetime | pd.Timestamp,
    start_activities: Iterable[str] | None = None,
    cohort_column: str | None = None,
) -> pd.DataFrame:
    """One row per case: ``arrival``, ``hours`` (cycle time, or age at ``window_end`` if open), ``closed``.

    A case is closed when its last activity is one of ``end_activities``; an
    open case is censored at ``window_end`` (not dropped). With
    ``start_activities`` only cases whose first activity is one of them count
    (older cases were never exposed to the change). With ``cohort_column`` the
    case's value of it is kept as ``cohort``. Events after ``window_end`` are ignored.
    """
    end = utc_timestamp(window_end)
    ends = set(end_activities)
    if not ends:
        raise ToolError("case_table needs the end activities that close a case")
    frame = frame[frame[TIMESTAMP] <= end]
    if frame.empty:
        return pd.DataFrame(columns=["arrival", "hours", "closed", "cohort"])
    begin = frame[START] if START in frame.columns else frame[TIMESTAMP]
    ordered = frame.assign(_begin=begin.fillna(frame[TIMESTAMP])).sort_values([CASE, TIMESTAMP])
    groups = ordered.groupby(CASE, sort=True)
    table = pd.DataFrame(
        {
            "arrival": groups["_begin"].min(),
            "last_time": groups[TIMESTAMP].max(),
            "first": groups[ACTIVITY].first(),
            "last": groups[ACTIVITY].last(),
        }
    )
    if cohort_column is not None:
        if cohort_column not in frame.columns:
            raise ToolError(
                f"event frame has no column {cohort_column!r}; columns: {sorted(frame.columns)}"
            )
        table["cohort"] = groups[cohort_column].first()
    if start_activities is not None:
        table = table[table["first"].isin(set(start_activities))]
    table["closed"] = table["last"].isin(ends)
    stop = table["last_time"].where(table["closed"], end)
    table["hours"] = (stop - table["arrival"]).dt.total_seconds() / 3600.0
    return table.drop(columns=["last_time", "first", "last"])
