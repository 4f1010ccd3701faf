"""Vectorised performance statistics over the canonical event frame (pandas only).

Definitions (all durations in hours):
- waiting time of an activity instance: its start minus the completion of the
  previous activity instance of the same case (rows ordered by completion),
  clipped at 0 for overlapping work; undefined for a case's first activity.
  Without start events this is the whole gap between two completions.
- processing time: completion minus start (0 when the log has no start events).
- cycle time of a case: last completion minus first start.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.log.ingest import ACTIVITY, CASE, RESOURCE, START, TIMESTAMP

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


def _r(x: float) -> float:
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
            mean_waiting_hours=_r(r["w_mean"]),
            median_waiting_hours=_r(r["w_median"]),
            total_waiting_hours=_r(r["w_sum"]),
            mean_processing_hours=_r(r["p_mean"]),
            median_processing_hours=_r(r["p_median"]),
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
            waiting_hours=_r(r["mean"]),
            median_waiting_hours=_r(r["median"]),
            total_delay_hours=_r(r["total"]),
            share_of_waiting=_r(r["total"] / all_waiting if all_waiting else 0.0),
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
            share_of_cases=_r(r["cases"] / n_cases),
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
        DfgEdge(source=str(s), target=str(t), count=int(r["count"]), mean_hours=_r(r["mean"]))
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
        mean=_r(c.mean()), median=_r(c.median()), p90=_r(c.quantile(0.9)), max=_r(c.max())
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
            share=_r(r["count"] / n),
            mean_cycle_time_hours=_r(r["cycle"]),
        )
        for key, r in table.head(max(top, 0)).iterrows()
    ]
    return out, table["count"]


# --------------------------------------------------------------------------- resources and SLA
class Handoff(BaseModel):
    """Work passed from one resource to another between consecutive activities of a case."""

    source_resource: str
    target_resource: str
    count: int
    mean_wait_hours: float = Field(description="mean waiting before the receiving activity starts")
    total_wait_hours: float


class HandoffStats(BaseModel):
    """Hand-offs: consecutive activity instances of a case done by different resources."""

    handoffs: int = Field(description="consecutive pairs with two different known resources")
    share_of_transitions: float = Field(
        description="hand-offs / consecutive pairs where both resources are known, 0..1"
    )
    mean_wait_hours: float = Field(description="mean waiting at a hand-off")
    same_resource_mean_wait_hours: float = Field(
        description="mean waiting when the same resource continues (for comparison)"
    )
    top_pairs: list[Handoff] = Field(description="most frequent resource pairs first")


class ResourceWorkload(BaseModel):
    """How much work one resource did."""

    resource: str
    activity_instances: int
    share_of_instances: float = Field(description="its share of all activity instances, 0..1")
    busy_hours: float = Field(description="summed processing hours (0 without start times)")
    cases: int = Field(description="distinct cases it worked on")


class SlaActivityWait(BaseModel):
    """Where cases that breach the SLA wait, compared with cases that meet it."""

    activity: str
    total_waiting_hours_breached: float = Field(description="summed over breaching cases")
    mean_waiting_hours_breached: float
    mean_waiting_hours_met: float | None = Field(
        description="same activity in cases within the SLA (None: it never occurs there)"
    )
    share_of_breach_waiting: float = Field(
        description="its share of all waiting hours in breaching cases, 0..1"
    )


class SlaStats(BaseModel):
    """Share of cases whose cycle time exceeds the SLA, and where those cases wait."""

    sla_hours: float
    cases: int
    breached_cases: int
    breach_rate: float = Field(description="breached_cases / cases, 0..1")
    longest_waits: list[SlaActivityWait] = Field(
        description="activities breaching cases wait longest at, largest total first"
    )


def handoffs(frame: pd.DataFrame, times: pd.DataFrame, top: int = 20) -> HandoffStats | None:
    """Hand-offs between resources (None when the log records no resources).

    ``times`` is ``instance_times(frame)``; pairs where either resource is empty are skipped.
    """
    codes, names = _resource_codes(frame)
    if codes is None:
        return None
    first = _case_starts(frame)
    prev = np.r_[-1, codes[:-1]]
    known = ~first & (codes >= 0) & (prev >= 0)
    moved = known & (codes != prev)
    stay = known & ~moved
    waiting = times["waiting"].to_numpy(dtype=float)
    k = len(names)
    pair = prev[moved].astype(np.int64) * k + codes[moved]
    keys, inverse, counts = np.unique(pair, return_inverse=True, return_counts=True)
    totals = np.bincount(inverse, weights=np.nan_to_num(waiting[moved]), minlength=len(keys))
    ranked = np.lexsort((-totals, -counts))[: max(top, 0)]  # most frequent, then most waiting
    n_known = int(known.sum())
    return HandoffStats(
        handoffs=int(moved.sum()),
        share_of_transitions=_r(moved.sum() / n_known if n_known else 0.0),
        mean_wait_hours=_r(np.nanmean(waiting[moved]) if moved.any() else 0.0),
        same_resource_mean_wait_hours=_r(np.nanmean(waiting[stay]) if stay.any() else 0.0),
        top_pairs=[
            Handoff(
                source_resource=str(names[keys[i] // k]),
                target_resource=str(names[keys[i] % k]),
                count=int(counts[i]),
                mean_wait_hours=_r(totals[i] / counts[i]),
                total_wait_hours=_r(totals[i]),
            )
            for i in ranked
        ],
    )


def resource_workload(
    frame: pd.DataFrame, times: pd.DataFrame, top: int = 50
) -> list[ResourceWorkload] | None:
    """Per resource: activity instances, busy (processing) hours, distinct cases; busiest first.

    None when the log records no resources; rows without a resource are left out.
    """
    codes, names = _resource_codes(frame)
    if codes is None:
        return None
    known = codes >= 0
    k = len(names)
    case_no = np.cumsum(_case_starts(frame)) - 1
    instances = np.bincount(codes[known], minlength=k)
    busy = np.bincount(
        codes[known], weights=times["processing"].to_numpy(dtype=float)[known], minlength=k
    )
    worked = np.unique(case_no[known].astype(np.int64) * k + codes[known]) % k
    cases = np.bincount(worked, minlength=k)
    ranked = np.lexsort((-busy, -instances))[: max(top, 0)]
    return [
        ResourceWorkload(
            resource=str(names[i]),
            activity_instances=int(instances[i]),
            share_of_instances=_r(instances[i] / len(frame)),
            busy_hours=_r(busy[i]),
            cases=int(cases[i]),
        )
        for i in ranked
        if instances[i]
    ]


def sla(times: pd.DataFrame, cases: pd.DataFrame, sla_hours: float, top: int = 10) -> SlaStats:
    """Share of cases over ``sla_hours`` of cycle time and the activities they wait longest at.

    ``cases`` is ``case_table(frame)`` and ``times`` is ``instance_times(frame)`` of the
    same canonical frame (both list cases in the frame's order).
    """
    breached = cases["cycle"].to_numpy() > sla_hours
    case = times["case"].to_numpy()
    case_no = np.cumsum(np.r_[True, case[1:] != case[:-1]]) - 1
    row_breached = breached[case_no]
    act, names = pd.factorize(times["activity"])
    waiting = times["waiting"].to_numpy(dtype=float)
    has_wait = ~np.isnan(waiting)

    def per_activity(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = rows & has_wait
        total = np.bincount(act[rows], weights=waiting[rows], minlength=len(names))
        return total, np.bincount(act[rows], minlength=len(names))

    total_b, n_b = per_activity(row_breached)
    total_m, n_m = per_activity(~row_breached)
    all_breach_waiting = float(total_b.sum())
    order = np.argsort(-total_b, kind="stable")
    out = [
        SlaActivityWait(
            activity=str(names[i]),
            total_waiting_hours_breached=_r(total_b[i]),
            mean_waiting_hours_breached=_r(total_b[i] / n_b[i]),
            mean_waiting_hours_met=_r(total_m[i] / n_m[i]) if n_m[i] else None,
            share_of_breach_waiting=_r(total_b[i] / all_breach_waiting),
        )
        for i in order[: max(top, 0)]
        if total_b[i] > 0
    ]
    n = len(cases)
    return SlaStats(
        sla_hours=sla_hours,
        cases=n,
        breached_cases=int(breached.sum()),
        breach_rate=_r(breached.sum() / n if n else 0.0),
        longest_waits=out,
    )


def _case_starts(frame: pd.DataFrame) -> np.ndarray:
    """True on the first row of each case (rows grouped by case, as in the canonical frame)."""
    case = frame[CASE].to_numpy()
    return np.r_[True, case[1:] != case[:-1]]


def _resource_codes(frame: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray]:
    """Resource number per row (-1: none recorded) and the names; (None, []) without resources."""
    resource = frame[RESOURCE]
    codes, names = pd.factorize(resource.mask(resource.astype("str") == ""))
    if not len(names):
        return None, np.array([], dtype=object)
    return codes, np.asarray(names, dtype=object)
