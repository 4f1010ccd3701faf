"""KPIs of simulation runs and their estimates over replications.

:func:`run_kpis` measures one engine run (cycle time, waiting, delay,
throughput, rework, cost, utilisation and waiting per pool);
:func:`aggregate_kpis` turns replications into :class:`KpiEstimates`, each
KPI an :class:`Estimate` (mean with a 95 % t-interval, :func:`estimate`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

from closedloop.tools.twin.calendar import WeeklyClock
from closedloop.tools.twin.engine import RunOutput
from closedloop.tools.twin.model import EngineModel, Settings

__all__ = [
    "Estimate", "KpiEstimates", "aggregate_kpis", "estimate", "kpi_difference", "run_kpis",
    "staffed_clocks",
]  # fmt: skip


class Estimate(BaseModel):
    """Mean over replications with a 95 % t-interval."""

    mean: float
    ci_low: float
    ci_high: float


class KpiEstimates(BaseModel):
    """Every KPI of a simulated process as an estimate over replications."""

    cycle_time_mean_hours: Estimate
    cycle_time_p90_hours: Estimate
    waiting_mean_hours: Estimate = Field(description="queueing for resources, per case")
    delay_mean_hours: Estimate = Field(description="extraneous delay, per case")
    throughput_per_day: Estimate = Field(
        description="completions per day between the 10th and 90th percentile completion"
    )
    utilisation: dict[str, Estimate] = Field(
        description="busy share of each pool's staffed hours (capacity x working hours)"
    )
    waiting_by_pool_hours: dict[str, Estimate] = Field(description="queueing per case, by pool")
    cycle_time_p50_hours: Estimate | None = None
    sla_attainment: Estimate | None = Field(
        None, description="share of cases done within sla_hours (when given)"
    )
    rework_rate: Estimate | None = Field(None, description="share of cases repeating an activity")
    cost_per_case: Estimate | None = Field(
        None, description="resource hours worked per case x cost per hour of the pool"
    )
    staff_cost_per_week: Estimate | None = Field(
        None, description="staffed resource hours per week x cost per hour, all pools"
    )


def run_kpis(
    m: EngineModel, s: Settings, out: RunOutput, staffed: list[WeeklyClock], sla: float | None
) -> dict[str, Any]:
    """The KPIs of one run, its first ``out.warm`` cases left out; ``sla`` in hours or None."""
    n, warm = len(out.arrivals), out.warm
    measured = n - warm
    cycle = out.end[warm:] - out.arrivals[warm:]
    t0, t1 = out.window
    done = np.sort(out.end)
    lo, hi = int(0.1 * n), max(int(0.9 * n) - 1, 0)
    steady = done[hi] - done[lo]
    week_cost = sum(
        rate * sum(profile) for rate, profile in zip(m.cost_per_hour, s.capacity, strict=True)
    )
    kpis: dict[str, Any] = {
        "cycle_time_mean_hours": float(cycle.mean()),
        "cycle_time_p90_hours": float(np.percentile(cycle, 90)),
        "cycle_time_p50_hours": float(np.percentile(cycle, 50)),
        "waiting_mean_hours": float(out.wait[warm:].mean()),
        "delay_mean_hours": float(out.delay[warm:].mean()),
        "throughput_per_day": 24.0 * (hi - lo) / steady if steady > 0 else 0.0,
        "utilisation": {},
        "waiting_by_pool_hours": {},
        "rework_rate": float(out.rework[warm:].mean()),
        "cost_per_case": float(out.cost[warm:].mean()),
        "staff_cost_per_week": float(week_cost),
        "treated_share": float(out.treated[warm:].mean()),
    }
    if sla is not None:
        kpis["sla_attainment"] = float((cycle <= sla).mean())
    for p, pool in enumerate(m.pools):
        available = float(staffed[p].forward(t1) - staffed[p].forward(t0)) if t1 > t0 else 0.0
        kpis["utilisation"][pool] = min(out.busy_time[p] / available, 1.0) if available > 0 else 0.0
        kpis["waiting_by_pool_hours"][pool] = out.pool_wait[p] / measured
    return kpis


def estimate(values: list[float]) -> Estimate:
    """Mean of replicated values with a 95 % t-interval (zero width for one value)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    if sd == 0 or not math.isfinite(sd):
        return Estimate(mean=mean, ci_low=mean, ci_high=mean)
    half = float(stats.t.ppf(0.975, len(x) - 1)) * sd / math.sqrt(len(x))
    return Estimate(mean=mean, ci_low=mean - half, ci_high=mean + half)


def aggregate_kpis(runs: list[dict[str, Any]]) -> KpiEstimates:
    """Estimates over replications of the KPI dicts of :func:`run_kpis`."""
    fields = {}
    for key, value in runs[0].items():
        if key == "treated_share":
            continue
        if isinstance(value, dict):
            fields[key] = {p: estimate([r[key][p] for r in runs]) for p in value}
        else:
            fields[key] = estimate([r[key] for r in runs])
    return KpiEstimates(**fields)


def kpi_difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``a - b`` for every KPI of two :func:`run_kpis` dicts (per pool for pool KPIs)."""
    return {k: (kpi_difference(v, b[k]) if isinstance(v, dict) else v - b[k]) for k, v in a.items()}


def staffed_clocks(s: Settings) -> list[WeeklyClock]:
    """Per pool, a clock of staffed server hours (capacity per hour of the week)."""
    return [WeeklyClock([float(c) for c in profile]) for profile in s.capacity]
