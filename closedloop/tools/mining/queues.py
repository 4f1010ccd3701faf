"""Bottlenecks that are queues: where cases wait for work, not for a date or the outside world.

Waiting before an activity instance (see ``performance``) is only a queue when
cases wait for someone to do the work. The ranking therefore keeps an activity
only when all of these hold:

1. Support: it waits in at least ``min_cases`` distinct cases (default: 3 or
   1 % of the cases, whichever is larger, capped at the number of cases);
   rarer activities are not ranked.
2. Work, not an external event: when the log has resources (on at least half
   of its rows), at least 10 % of the activity's instances have one.
3. Not a planned date: at least 80 % of its starts fall on one time of day
   (to the microsecond) while the log's other rows do not (their most common
   time of day holds under half of them): a date-only field such as "Start
   trip" on its planned day, midnight in whatever zone it was written (with at
   least ``MIN_CLOCK_SAMPLE`` starts: a few may share a time of day by chance).
4. Waiting that depends on the queue: in a queue a case waits longer when more
   cases arrived before it and still wait (its waiting rank-correlates with the
   number waiting ahead at its arrival); a delay that is the same whatever the
   load (a readmission weeks later, a customer's reply) does not. With at least
   ``MIN_QUEUE_SAMPLE`` waits, a Spearman correlation below ``MIN_QUEUE_RHO`` marks
   the wait "independent of workload".

Threshold: with ``threshold_hours`` given (the absolute rule), an activity is a
bottleneck when its mean waiting reaches it. Without it (the default, relative
to the log), when it holds at least ``min_share`` of all waiting in the log and
its mean waiting is at least the log's mean waiting per activity instance; that
mean is reported as the effective threshold. Ranked by total waiting.
Excluded activities are returned with the reason, for the report.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.log.columns import ACTIVITY, RESOURCE, START
from closedloop.tools.mining.performance import Bottleneck, rounded

__all__ = ["BottleneckRanking", "ExcludedWait", "rank_bottlenecks"]

MIN_SHARE = 0.05
MIN_QUEUE_RHO = 0.1
MIN_QUEUE_SAMPLE = 100  # below it the Spearman error (~1/sqrt(n)) is as large as the cut
RESOURCED_LOG = 0.5
RESOURCED_ACTIVITY = 0.1
SAME_CLOCK_ACTIVITY = 0.8
MIN_CLOCK_SAMPLE = 20  # fewer starts share a time of day by chance
SAME_CLOCK_LOG = 0.5


class ExcludedWait(BaseModel):
    """An activity whose waiting is large but is not ranked as a bottleneck, and why."""

    activity: str
    reason: str = Field(description="too few cases, no resource, planned date, or load-free")
    waiting_hours: float = Field(description="mean waiting hours before it")
    total_delay_hours: float
    cases: int = Field(description="distinct cases that waited before it")


class BottleneckRanking(BaseModel):
    """Bottlenecks with the rule that chose them and what the rule set aside."""

    bottlenecks: list[Bottleneck]
    threshold_hours: float = Field(description="mean waiting an activity must reach")
    rule: str = Field(description="the rule in one line")
    excluded: list[ExcludedWait]


def rank_bottlenecks(
    frame: pd.DataFrame,
    times: pd.DataFrame,
    threshold_hours: float | None = None,
    *,
    min_cases: int | None = None,
    min_share: float = MIN_SHARE,
) -> BottleneckRanking:
    """Rank queue bottlenecks (module docstring); ``frame`` and ``times`` row-aligned."""
    n_cases = int(times["case"].nunique())
    need = min_cases if min_cases is not None else min(max(3, math.ceil(0.01 * n_cases)), n_cases)
    waits = times.assign(
        _res=(frame[RESOURCE].astype("str").str.strip() != "").to_numpy(),
        _clock=_clock(frame[START]),
        _arrival=(frame[START] - pd.to_timedelta(times["waiting"].to_numpy(), unit="h")).to_numpy(),
        _start=frame[START].to_numpy(),
    )
    waits = waits[waits["prev"].notna()]
    all_waiting = float(np.nansum(waits["waiting"].to_numpy()))
    mean_all = float(np.nanmean(waits["waiting"].to_numpy())) if len(waits) else 0.0
    relative = threshold_hours is None
    threshold = rounded(mean_all) if relative else float(threshold_hours)
    resourced_log = bool(frame[RESOURCE].astype("str").str.strip().ne("").mean() >= RESOURCED_LOG)
    clock_all = _clock(frame[START])
    names = frame[ACTIVITY].to_numpy()

    table = waits.groupby("activity", sort=False).agg(
        mean=("waiting", "mean"),
        median=("waiting", "median"),
        total=("waiting", "sum"),
        cases=("case", "nunique"),
        resourced=("_res", "mean"),
    )
    table = table.sort_values(["total", "mean"], ascending=False, kind="stable")
    kept: list[Bottleneck] = []
    excluded: list[ExcludedWait] = []
    for name, r in table.iterrows():
        share = r["total"] / all_waiting if all_waiting else 0.0
        large = (
            (share >= min_share and r["mean"] >= threshold) if relative else r["mean"] >= threshold
        )
        if not large or r["total"] <= 0:
            continue
        rows = waits[waits["activity"] == name]
        reason = _reason(r, rows, need, resourced_log, _top_share(clock_all[names != name]))
        if reason:
            excluded.append(
                ExcludedWait(
                    activity=str(name),
                    reason=reason,
                    waiting_hours=rounded(r["mean"]),
                    total_delay_hours=rounded(r["total"]),
                    cases=int(r["cases"]),
                )
            )
            continue
        long_waits = rows[rows["waiting"] >= threshold]
        kept.append(
            Bottleneck(
                activity=str(name),
                waiting_hours=rounded(r["mean"]),
                median_waiting_hours=rounded(r["median"]),
                total_delay_hours=rounded(r["total"]),
                share_of_waiting=rounded(share),
                cases_affected=int(long_waits["case"].nunique()),
            )
        )
    rule = (
        f"mean waiting >= {threshold:g} h (the log's mean per activity instance) and >= "
        f"{min_share:.0%} of all waiting"
        if relative
        else f"mean waiting >= {threshold:g} h"
    ) + f"; waits in >= {need} cases; queue-like waits only (see docs/mining.md)"
    return BottleneckRanking(
        bottlenecks=kept, threshold_hours=threshold, rule=rule, excluded=excluded
    )


def _reason(r: pd.Series, rows: pd.DataFrame, need: int, resourced_log: bool, others: float) -> str:
    """Why an activity's waiting is not a queue ("" when it is one)."""
    if r["cases"] < need:
        return f"too few cases ({int(r['cases'])} < {need})"
    if resourced_log and r["resourced"] < RESOURCED_ACTIVITY:
        return "no resource performs it: an external event, not work in a queue"
    planned = _top_share(rows["_clock"].to_numpy()) >= SAME_CLOCK_ACTIVITY
    if len(rows) >= MIN_CLOCK_SAMPLE and planned and others < SAME_CLOCK_LOG:
        return "starts at one time of day (a date without a time): a planned date, not a queue"
    rho = queue_correlation(rows)
    if rho is not None and rho < MIN_QUEUE_RHO:
        return (
            f"waiting independent of workload (Spearman {rho:.2f} with the cases waiting "
            "ahead): a scheduled or external delay"
        )
    return ""


def queue_correlation(rows: pd.DataFrame) -> float | None:
    """Spearman correlation of each wait with the cases already waiting for the same activity
    when this case arrived (None below ``MIN_QUEUE_SAMPLE`` waits or without variation)."""
    if len(rows) < MIN_QUEUE_SAMPLE:
        return None
    arrival = rows["_arrival"].to_numpy(dtype="datetime64[us]").astype(np.int64)
    start = rows["_start"].to_numpy(dtype="datetime64[us]").astype(np.int64)
    ahead = np.searchsorted(np.sort(arrival), arrival, "left") - np.searchsorted(
        np.sort(start), arrival, "right"
    )
    ahead = np.clip(ahead, 0, None)
    wait = rows["waiting"].to_numpy(dtype=float)
    if np.ptp(ahead) == 0 or np.ptp(wait) == 0:
        return None
    return float(pd.Series(wait).corr(pd.Series(ahead), method="spearman"))


def _clock(values: pd.Series) -> np.ndarray:
    """Time of day in microseconds (UTC; a date-only field lands on one value in any zone)."""
    micros = values.to_numpy(dtype="datetime64[us]").astype(np.int64)
    return micros % (86_400 * 1_000_000)


def _top_share(clock: np.ndarray) -> float:
    """Share of the most common time of day."""
    if not len(clock):
        return 0.0
    return float(np.unique(clock, return_counts=True)[1].max() / len(clock))
