"""What-if simulation of a process twin: KPIs with intervals, deltas, simulated logs.

:func:`simulate` runs replications of the as-is process and of a scenario
(:mod:`closedloop.tools.twin.scenarios`) on the discrete-event engine
(:mod:`closedloop.tools.twin.engine`): arrivals on the twin's weekly
calendar, history-aware routing, fitted durations, extraneous delays in
working hours, pools that start work only on shift. As-is and scenario runs
of one replication share the same sampled cases (common random numbers), so
the delta isolates the effect of the change. The first 10 % of cases of each
run are a warm-up and are not measured. :func:`simulate_log` returns the
simulated event log itself.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, ValidationError
from scipy import stats

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ScenarioError
from closedloop.tools.twin.calendar import WeeklyClock, hours_since, week_epoch
from closedloop.tools.twin.engine import AUTOMATION_RESOURCE, RunOutput, draw_cases, run
from closedloop.tools.twin.fit import ObservedKpis, ProcessTwin
from closedloop.tools.twin.model import EngineModel, Settings, compile_twin
from closedloop.tools.twin.scenarios import (
    AddCapacity,
    AsIs,
    AutoApprove,
    AutomateActivity,
    BatchActivity,
    ChangeCalendar,
    ChangeRouting,
    Combined,
    Prioritise,
    Scenario,
    SetShiftCapacity,
    as_scenario,
    compile_scenario,
    resolve_pool,
)

__all__ = [
    "AddCapacity", "AsIs", "AutoApprove", "AutomateActivity", "BatchActivity", "ChangeCalendar",
    "ChangeRouting", "Combined", "Estimate", "KpiEstimates", "Prioritise", "Scenario",
    "SetShiftCapacity", "SimulationResult", "as_scenario", "as_twin", "resolve_pool", "simulate",
    "simulate_log",
]  # fmt: skip

WARMUP_SHARE = 0.10
MAX_CASES = 200_000
MAX_REPLICATIONS = 200
LOG_COLUMNS = ["case_id", "activity", "start_time", "end_time", "resource"]


class Estimate(BaseModel):
    """Mean over replications with a 95 % t-interval."""

    mean: float
    ci_low: float
    ci_high: float


class KpiEstimates(BaseModel):
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


class SimulationResult(BaseModel):
    scenario: Scenario
    cases: int
    replications: int
    seed: int
    warmup_cases: int
    capacity_as_is: dict[str, int]
    capacity_what_if: dict[str, int]
    as_is: KpiEstimates
    what_if: KpiEstimates
    delta: KpiEstimates = Field(description="what_if - as_is, per replication, then averaged")
    predicted_delta_pct: Estimate = Field(description="relative change of mean cycle time, %")
    treated_share: Estimate = Field(description="share of measured cases with an automated step")
    observed: ObservedKpis
    notes: list[str] = Field(default_factory=list)
    sla_hours: float | None = None
    cost_per_hour: dict[str, float] = Field(default_factory=dict)


def as_twin(twin: Any) -> ProcessTwin:
    """A ProcessTwin from a twin or its JSON-like dict; ScenarioError when invalid."""
    if isinstance(twin, ProcessTwin):
        return twin
    try:
        return ProcessTwin.model_validate(twin)
    except ValidationError as exc:
        brief = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ScenarioError(f"invalid process twin: {brief}") from None


def _origin(twin: ProcessTwin, start: datetime | None) -> tuple[datetime, float]:
    """The engine's epoch (a Monday 00:00 UTC) and the start, in hours after it."""
    moment = start or twin.first_case_start or datetime(2024, 1, 1)
    epoch = week_epoch(moment)
    return epoch, hours_since(epoch, moment)


def _kpis_of_run(
    m: EngineModel, s: Settings, out: RunOutput, staffed: list[WeeklyClock], sla: float | None
) -> dict[str, Any]:
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


def _estimate(values: list[float]) -> Estimate:
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    if sd == 0 or not math.isfinite(sd):
        return Estimate(mean=mean, ci_low=mean, ci_high=mean)
    half = float(stats.t.ppf(0.975, len(x) - 1)) * sd / math.sqrt(len(x))
    return Estimate(mean=mean, ci_low=mean - half, ci_high=mean + half)


def _kpis(runs: list[dict[str, Any]]) -> KpiEstimates:
    fields = {}
    for key, value in runs[0].items():
        if key == "treated_share":
            continue
        if isinstance(value, dict):
            fields[key] = {p: _estimate([r[key][p] for r in runs]) for p in value}
        else:
            fields[key] = _estimate([r[key] for r in runs])
    return KpiEstimates(**fields)


def _minus(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {k: (_minus(v, b[k]) if isinstance(v, dict) else v - b[k]) for k, v in a.items()}


def _staffed_clocks(s: Settings) -> list[WeeklyClock]:
    return [WeeklyClock([float(c) for c in profile]) for profile in s.capacity]


def _check_sizes(cases: int, replications: int, seed: int) -> None:
    if not 10 <= cases <= MAX_CASES:
        raise ScenarioError(f"cases must be between 10 and {MAX_CASES}, got {cases}")
    if not 1 <= replications <= MAX_REPLICATIONS:
        raise ScenarioError(
            f"replications must be between 1 and {MAX_REPLICATIONS}, got {replications}"
        )
    if seed < 0:
        raise ScenarioError(f"seed must be >= 0, got {seed}")


@read_tool
def simulate(
    twin: ProcessTwin,
    scenario: Scenario,
    cases: int = 500,
    replications: int = 5,
    seed: int = 0,
    sla_hours: float | None = None,
    cost_per_hour: dict[str, float] | None = None,
) -> SimulationResult:
    """Simulate a what-if scenario against the as-is process and report KPI deltas.

    ``twin`` comes from ``fit_twin``. ``scenario`` is one of (by ``kind``;
    pools may be named by a pool or one of its activities; hours UTC):
    ``{"kind": "as_is"}``;
    ``{"kind": "add_capacity", "activity_or_pool": "Closed", "extra": 2}``
    (negative removes staff, the pool keeps >= 1);
    ``{"kind": "shift_capacity", "activity_or_pool": ..., "days": ["sat"],
    "from_hour": 9, "to_hour": 13, "capacity": 2}`` (staff in a block of hours);
    ``{"kind": "change_calendar", ..., "working": true}`` (extend or, with
    false, shorten working hours);
    ``{"kind": "automate_activity", "activity": "...", "segment": "product == 'x'",
    "share": 1.0, "automated_duration_hours": 0.03, "failure_rate": 0.0}``;
    ``{"kind": "change_routing", "from_activity": "A", "to_activity": "B",
    "probability": 0.2}``;
    ``{"kind": "auto_approve", "activity": "Approve", "attribute": "amount",
    "below": 5000, "then_activity": null}`` (cases below the threshold skip it);
    ``{"kind": "priority", "segment": "vip == True"}`` (goes first in queues);
    ``{"kind": "batch", "activity": "...", "size": 10, "at_hours": [16]}``;
    ``{"kind": "combined", "changes": [...]}`` for several changes at once.

    Runs ``replications`` pairs of as-is and scenario with ``cases`` cases each
    (the first 10 % are warm-up), using the same random cases in both, and
    returns for as-is, what-if and delta (what-if minus as-is) the mean and
    95 % interval of: mean, p50 and p90 cycle time (hours), queue waiting and
    extraneous delay per case (hours), throughput (cases/day), rework rate,
    SLA attainment (share of cases within ``sla_hours``, if given), cost per
    case (worked hours x ``cost_per_hour`` of the pool, default 1), staff
    cost per week, utilisation and waiting per pool. ``predicted_delta_pct``
    is the relative change of mean cycle time in percent (negative = faster).
    Same inputs and seed give identical results. Unknown activities, pools
    or attributes, a capacity below 1 or a bad segment raise ScenarioError
    naming the problem and the valid names.
    """
    twin, scenario = as_twin(twin), as_scenario(scenario)
    _check_sizes(cases, replications, seed)
    m = compile_twin(twin, cost_per_hour)
    base_settings = Settings(capacity=m.capacity, router=m.router)
    what_settings = compile_scenario(twin, m, scenario)
    base_clocks, what_clocks = _staffed_clocks(base_settings), _staffed_clocks(what_settings)
    _, offset = _origin(twin, None)
    warm = int(cases * WARMUP_SHARE)
    base_runs, what_runs, deltas, pcts = [], [], [], []
    for r in range(replications):
        drawn = draw_cases(m, cases, offset, (seed, r))
        base = _kpis_of_run(m, base_settings, run(m, base_settings, drawn, warm), base_clocks,
                            sla_hours)  # fmt: skip
        if isinstance(scenario, AsIs):
            what = base
        else:
            out = run(m, what_settings, drawn, warm)
            what = _kpis_of_run(m, what_settings, out, what_clocks, sla_hours)
        base_runs.append(base)
        what_runs.append(what)
        deltas.append(_minus(what, base))
        b = base["cycle_time_mean_hours"]
        pcts.append(100.0 * (what["cycle_time_mean_hours"] - b) / b if b > 0 else 0.0)
    notes = list(twin.warnings) + m.notes
    if replications < 2:
        notes.append("one replication: intervals have zero width")
    return SimulationResult(
        scenario=scenario,
        cases=cases,
        replications=replications,
        seed=seed,
        warmup_cases=warm,
        capacity_as_is={p: max(c) for p, c in zip(m.pools, base_settings.capacity, strict=True)},
        capacity_what_if={p: max(c) for p, c in zip(m.pools, what_settings.capacity, strict=True)},
        as_is=_kpis(base_runs),
        what_if=_kpis(what_runs),
        delta=_kpis(deltas),
        predicted_delta_pct=_estimate(pcts),
        treated_share=_estimate([w["treated_share"] for w in what_runs]),
        observed=twin.observed,
        notes=notes,
        sla_hours=sla_hours,
        cost_per_hour=dict(zip(m.pools, m.cost_per_hour, strict=True)),
    )


def simulate_log(
    twin: ProcessTwin, cases: int, start: datetime, seed: int = 0, scenario: Scenario | None = None
) -> pd.DataFrame:
    """Simulate ``cases`` cases from ``start`` and return the simulated event log.

    One row per activity instance with columns ``case_id`` (str, "1".."n"),
    ``activity``, ``start_time``, ``end_time`` (UTC timestamps) and
    ``resource`` (a resource name of the pool, busiest first, or "<pool> #k"
    beyond the names the log showed; "automation" for automated steps),
    sorted by case and start. The first case starts at ``start``; the others
    follow the twin's arrival calendar. ``scenario`` (default as-is) changes
    the process as in :func:`simulate`. Same inputs and seed give the same log.
    """
    twin = as_twin(twin)
    _check_sizes(cases, 1, seed)
    m = compile_twin(twin)
    settings = compile_scenario(twin, m, as_scenario(scenario if scenario is not None else AsIs()))
    epoch, offset = _origin(twin, start)
    out = run(m, settings, draw_cases(m, cases, offset, (seed, 0)), 0)
    st = out.steps
    names = []
    for p, server in zip(st.pool.tolist(), out.step_server.tolist(), strict=True):
        if p < 0:
            names.append(AUTOMATION_RESOURCE)
        else:
            known = m.resource_names[p]
            names.append(known[server] if server < len(known) else f"{m.pools[p]} #{server + 1}")
    origin = pd.Timestamp(epoch)
    log = pd.DataFrame(
        {
            "case_id": (st.case + 1).astype(str),
            "activity": np.asarray(m.acts, dtype=object)[st.act] if len(st.act) else [],
            "start_time": (origin + pd.to_timedelta(out.step_start * 3600.0, unit="s")).round("ms"),
            "end_time": (origin + pd.to_timedelta(out.step_end * 3600.0, unit="s")).round("ms"),
            "resource": names,
        },
        columns=LOG_COLUMNS,
    )
    return log  # steps come case by case, each case's steps in order
