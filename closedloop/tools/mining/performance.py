"""Vectorised performance statistics over the canonical event frame (pandas only).

Definitions (all durations in hours):
- waiting time of an activity instance: its start minus the completion of the
  previous activity instance of the same case (rows ordered by completion),
  clipped at 0 for overlapping work; undefined for a case's first activity.
  Without start events this is the whole gap between two completions.
- processing time: completion minus start (0 when the log has no start events).
- cycle time of a case: last completion minus first start.

Resources (hand-offs, workload) and SLA breaches are in ``workload``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.log.columns import ACTIVITY, CASE, START, TIMESTAMP

HOUR = 3600.0
SEP = "\x1f"  # joins activity names into a variant key (never in real names)


class ActivityStats(BaseModel):
    """Frequency and timing of one activity."""

    name: str
    count: int = Field(description="executions (activity instances)")
    cases: int = Field(description="distinct cases with at least one execution")
    mean_waiting_hours: float = Field(description="0 when it never follows another activity")
    median_waiting_hours: float
    total_waiting_hours: float
    mean_processing_hours: float = Field(description="0 when the log has no start events")
    median_processing_hours: float


class VariantStats(BaseModel):
    """One distinct activity sequence (trace variant)."""

    activities: list[str]
    count: int
    share: float = Field(description="fraction of cases, 0..1")
    mean_cycle_time_hours: float


class Bottleneck(BaseModel):
    """An activity whose mean waiting time reaches the threshold."""

    activity: str
    waiting_hours: float = Field(description="mean waiting hours before it starts")
    median_waiting_hours: float
    total_delay_hours: float = Field(description="sum of its waiting hours over all cases")
    share_of_waiting: float = Field(description="its share of all waiting hours in the log, 0..1")
    cases_affected: int = Field(description="cases where it waited at least the threshold once")


class ReworkStats(BaseModel):
    """An activity executed more than once in some cases."""

    activity: str
    cases_with_rework: int
    share_of_cases: float = Field(description="fraction of all cases, 0..1")
    extra_executions: int = Field(description="executions beyond the first, summed over cases")


class DfgEdge(BaseModel):
    """Directly-follows relation: target completes right after source in the same case."""

    source: str
    target: str
    count: int
    mean_hours: float = Field(description="mean waiting from source's completion to target's start")


class CycleTimeStats(BaseModel):
    """Case duration (first start to last completion) in hours."""

    mean: float
    median: float
    p90: float
    max: float


def _hours(delta: pd.Series) -> pd.Series:
    return delta.dt.total_seconds() / HOUR


def rounded(x: float) -> float:
    """``x`` rounded to 4 decimals for reports; 0.0 for a missing value."""
    return 0.0 if pd.isna(x) else round(float(x), 4)


def instance_times(frame: pd.DataFrame) -> pd.DataFrame:
    """Per row: case, activity, previous activity (None at a case start), waiting, processing hours.

    ``frame`` must be sorted by case then completion (the canonical order).
    """
    case = frame[CASE]
    first = case.ne(case.shift()).to_numpy()
    prev_end = frame[TIMESTAMP].shift(1).mask(first)
    prev_act = frame[ACTIVITY].shift(1).mask(first)
    return pd.DataFrame(
        {
            "case": case.to_numpy(),
            "activity": frame[ACTIVITY].to_numpy(),
            "prev": prev_act.to_numpy(),
            "waiting": _hours(frame[START] - prev_end).clip(lower=0).to_numpy(),
            "processing": _hours(frame[TIMESTAMP] - frame[START]).clip(lower=0).to_numpy(),
        }
    )


def activity_stats(times: pd.DataFrame) -> list[ActivityStats]:
    """Per-activity frequency, waiting and processing, most frequent first."""
    g = times.groupby("activity", sort=False)
    table = pd.DataFrame(
        {
            "count": g.size(),
            "cases": g["case"].nunique(),
            "w_mean": g["waiting"].mean(),
            "w_median": g["waiting"].median(),
            "w_sum": g["waiting"].sum(),
            "p_mean": g["processing"].mean(),
            "p_median": g["processing"].median(),
        }
    ).sort_values("count", ascending=False, kind="stable")
    return [
        ActivityStats(
            name=str(name),
            count=int(r["count"]),
            cases=int(r["cases"]),
            mean_waiting_hours=rounded(r["w_mean"]),
            median_waiting_hours=rounded(r["w_median"]),
            total_waiting_hours=rounded(r["w_sum"]),
            mean_processing_hours=rounded(r["p_mean"]),
            median_processing_hours=rounded(r["p_median"]),
        )
        for name, r in table.iterrows()
    ]


def bottlenecks(times: pd.DataFrame, threshold_hours: float) -> list[Bottleneck]:
    """Activities with mean waiting >= threshold, largest total delay first."""
    g = times.groupby("activity", sort=False)["waiting"]
    table = pd.DataFrame({"mean": g.mean(), "median": g.median(), "total": g.sum()})
    table = table[table["mean"] >= threshold_hours]
    long_waits = times[times["waiting"] >= threshold_hours]
    affected = long_waits.groupby("activity")["case"].nunique()
    all_waiting = float(np.nansum(times["waiting"].to_numpy()))
    table = table.sort_values(["total", "mean"], ascending=False, kind="stable")
    return [
        Bottleneck(
            activity=str(name),
            waiting_hours=rounded(r["mean"]),
            median_waiting_hours=rounded(r["median"]),
            total_delay_hours=rounded(r["total"]),
            share_of_waiting=rounded(r["total"] / all_waiting if all_waiting else 0.0),
            cases_affected=int(affected.get(name, 0)),
        )
        for name, r in table.iterrows()
    ]


def rework(frame: pd.DataFrame) -> list[ReworkStats]:
    """Activities repeated within a case, most extra executions first."""
    per_case = frame.groupby([CASE, ACTIVITY], sort=False).size()
    repeated = per_case[per_case > 1]
    if repeated.empty:
        return []
    n_cases = frame[CASE].nunique()
    by_act = repeated.groupby(level=1, sort=False)
    table = pd.DataFrame({"cases": by_act.size(), "extra": by_act.sum() - by_act.size()})
    table = table.sort_values(["extra", "cases"], ascending=False, kind="stable")
    return [
        ReworkStats(
            activity=str(name),
            cases_with_rework=int(r["cases"]),
            share_of_cases=rounded(r["cases"] / n_cases),
            extra_executions=int(r["extra"]),
        )
        for name, r in table.iterrows()
    ]


def dfg(times: pd.DataFrame) -> tuple[list[DfgEdge], dict[str, int], dict[str, int]]:
    """Directly-follows edges (most frequent first), start and end activity counts."""
    pairs = times[times["prev"].notna()]
    g = pairs.groupby(["prev", "activity"], sort=False)["waiting"]
    table = pd.DataFrame({"count": g.size(), "mean": g.mean()})
    table = table.sort_values("count", ascending=False, kind="stable")
    edges = [
        DfgEdge(source=str(s), target=str(t), count=int(r["count"]), mean_hours=rounded(r["mean"]))
        for (s, t), r in table.iterrows()
    ]
    case = times["case"]
    starts = times.loc[case.ne(case.shift()).to_numpy(), "activity"].value_counts()
    ends = times.loc[case.ne(case.shift(-1)).to_numpy(), "activity"].value_counts()
    return (
        edges,
        {str(k): int(v) for k, v in starts.items()},
        {str(k): int(v) for k, v in ends.items()},
    )


def case_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per case: variant key (activities joined by SEP) and cycle time hours."""
    g = frame.groupby(CASE, sort=False)
    case = frame[CASE].to_numpy()
    bounds = np.flatnonzero(case[1:] != case[:-1]) + 1  # rows are grouped by case
    names = frame[ACTIVITY].to_numpy(dtype=object)
    keys = [SEP.join(chunk) for chunk in np.split(names, bounds)]  # ~25x faster than agg(join)
    return pd.DataFrame(
        {
            "variant": pd.Series(keys, index=case[np.r_[0, bounds]]),
            "cycle": _hours(g[TIMESTAMP].max() - g[START].min()),
        }
    )


def cycle_time(cases: pd.DataFrame) -> CycleTimeStats:
    c = cases["cycle"]
    return CycleTimeStats(
        mean=rounded(c.mean()),
        median=rounded(c.median()),
        p90=rounded(c.quantile(0.9)),
        max=rounded(c.max()),
    )


def variants(cases: pd.DataFrame, top: int) -> tuple[list[VariantStats], pd.Series]:
    """The ``top`` most frequent variants, and the count of every variant (key -> cases)."""
    g = cases.groupby("variant", sort=False)["cycle"]
    table = pd.DataFrame({"count": g.size(), "cycle": g.mean()})
    table = table.sort_values(["count", "cycle"], ascending=[False, True], kind="stable")
    n = len(cases)
    out = [
        VariantStats(
            activities=key.split(SEP),
            count=int(r["count"]),
            share=rounded(r["count"] / n),
            mean_cycle_time_hours=rounded(r["cycle"]),
        )
        for key, r in table.head(max(top, 0)).iterrows()
    ]
    return out, table["count"]


# --------------------------------------------------------------------------- resources and SLA
