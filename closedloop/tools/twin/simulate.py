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

from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ScenarioError
from closedloop.tools.twin.calendar import hours_since, week_epoch
from closedloop.tools.twin.engine import AUTOMATION_RESOURCE, run
from closedloop.tools.twin.kpis import (
    Estimate,
    KpiEstimates,
    aggregate_kpis,
    estimate,
    kpi_difference,
    run_kpis,
    staffed_clocks,
)
from closedloop.tools.twin.model import Settings, compile_twin
from closedloop.tools.twin.process_twin import ObservedKpis, ProcessTwin, as_twin
from closedloop.tools.twin.scenarios import (
    AddCapacity,
    AsIs,
    AutomateActivity,
    Combined,
    Scenario,
    as_scenario,
    compile_scenario,
)
from closedloop.tools.twin.steps import draw_cases

__all__ = ["LOG_COLUMNS", "SimulationResult", "simulate", "simulate_log"]
# Also importable from here for callers written before the facade (agents.planner,
# twin_cli); new code imports them from closedloop.tools.twin.
__all__ += ["AddCapacity", "AutomateActivity", "Combined", "as_scenario", "as_twin"]

WARMUP_SHARE = 0.10
MAX_CASES = 200_000
MAX_REPLICATIONS = 200
LOG_COLUMNS = ["case_id", "activity", "start_time", "end_time", "resource"]


class SimulationResult(BaseModel):
    """As-is, what-if and delta KPIs of a scenario over replications (see simulate)."""

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
    per_replication: dict[str, list[float]] = Field(
        default_factory=dict,
        description="per replication: delta_pct, delta_cycle_hours, delta_waiting_hours",
    )


def _origin(twin: ProcessTwin, start: datetime | None) -> tuple[datetime, float]:
    """The engine's epoch (a Monday 00:00 UTC) and the start, in hours after it."""
    moment = start or twin.first_case_start or datetime(2024, 1, 1)
    epoch = week_epoch(moment)
    return epoch, hours_since(epoch, moment)


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
    base_clocks, what_clocks = staffed_clocks(base_settings), staffed_clocks(what_settings)
    _, offset = _origin(twin, None)
    warm = int(cases * WARMUP_SHARE)
    base_runs, what_runs, deltas, pcts = [], [], [], []
    for r in range(replications):
        drawn = draw_cases(m, cases, offset, (seed, r))
        base = run_kpis(m, base_settings, run(m, base_settings, drawn, warm), base_clocks,
                            sla_hours)  # fmt: skip
        if isinstance(scenario, AsIs):
            what = base
        else:
            out = run(m, what_settings, drawn, warm)
            what = run_kpis(m, what_settings, out, what_clocks, sla_hours)
        base_runs.append(base)
        what_runs.append(what)
        deltas.append(kpi_difference(what, base))
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
        as_is=aggregate_kpis(base_runs),
        what_if=aggregate_kpis(what_runs),
        delta=aggregate_kpis(deltas),
        predicted_delta_pct=estimate(pcts),
        treated_share=estimate([w["treated_share"] for w in what_runs]),
        observed=twin.observed,
        notes=notes,
        sla_hours=sla_hours,
        cost_per_hour=dict(zip(m.pools, m.cost_per_hour, strict=True)),
        per_replication={
            "delta_pct": pcts,
            "delta_cycle_hours": [d["cycle_time_mean_hours"] for d in deltas],
            "delta_waiting_hours": [d["waiting_mean_hours"] for d in deltas],
        },
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
