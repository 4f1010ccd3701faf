"""Who does the work and what breaches the SLA: hand-offs, resource workload, SLA stats.

Vectorised pandas over the canonical frame and ``performance.instance_times``;
durations in hours as defined in ``performance``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.log.columns import CASE, RESOURCE
from closedloop.tools.mining.performance import rounded

__all__ = [
    "Handoff",
    "HandoffStats",
    "ResourceWorkload",
    "SlaActivityWait",
    "SlaStats",
    "handoffs",
    "resource_workload",
    "sla",
]


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
        share_of_transitions=rounded(moved.sum() / n_known if n_known else 0.0),
        mean_wait_hours=rounded(np.nanmean(waiting[moved]) if moved.any() else 0.0),
        same_resource_mean_wait_hours=rounded(np.nanmean(waiting[stay]) if stay.any() else 0.0),
        top_pairs=[
            Handoff(
                source_resource=str(names[keys[i] // k]),
                target_resource=str(names[keys[i] % k]),
                count=int(counts[i]),
                mean_wait_hours=rounded(totals[i] / counts[i]),
                total_wait_hours=rounded(totals[i]),
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
            share_of_instances=rounded(instances[i] / len(frame)),
            busy_hours=rounded(busy[i]),
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
            total_waiting_hours_breached=rounded(total_b[i]),
            mean_waiting_hours_breached=rounded(total_b[i] / n_b[i]),
            mean_waiting_hours_met=rounded(total_m[i] / n_m[i]) if n_m[i] else None,
            share_of_breach_waiting=rounded(total_b[i] / all_breach_waiting),
        )
        for i in order[: max(top, 0)]
        if total_b[i] > 0
    ]
    n = len(cases)
    return SlaStats(
        sla_hours=sla_hours,
        cases=n,
        breached_cases=int(breached.sum()),
        breach_rate=rounded(breached.sum() / n if n else 0.0),
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
