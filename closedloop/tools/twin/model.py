"""The twin compiled for the engine, and scenario settings in engine terms.

:func:`compile_twin` turns a :class:`~closedloop.tools.twin.process_twin.ProcessTwin`
into index-based lists, weekly clocks and duration samplers
(:class:`EngineModel`); :mod:`closedloop.tools.twin.scenarios` turns a scenario
into :class:`Settings` (capacity per hour of the week, routing, automations,
skips, priorities, batches) that :mod:`closedloop.tools.twin.engine` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from closedloop.tools.errors import ScenarioError
from closedloop.tools.twin.calendar import HOURS_PER_WEEK, WeeklyClock
from closedloop.tools.twin.distributions import DurationModel, DurationSampler, fit_duration
from closedloop.tools.twin.process_twin import ProcessTwin
from closedloop.tools.twin.routing import START as ROUTE_START
from closedloop.tools.twin.routing import Router

PoolTable = tuple[np.ndarray, np.ndarray]


@dataclass
class EngineModel:
    """A twin compiled to lists and samplers (see compile_twin)."""

    acts: list[str]
    pools: list[str]
    pool_of: list[int]
    capacity: list[list[int]]  # per pool, 168 hourly capacities (as-is)
    delay_clock: list[WeeklyClock]  # per pool: as-is working hours
    router: Router
    proc: list[DurationSampler]
    delay: list[DurationSampler]
    delay_after: dict[tuple[int, int], DurationSampler]  # (previous, activity); previous -1 = start
    arrival_clock: WeeklyClock
    arrival_units: np.ndarray  # gaps in expected arrivals
    n_rows: int
    max_steps: int
    resource_names: list[list[str]]
    cost_per_hour: list[float]
    # activity -> (pool table, {previous activity: pool table}); a table = (cumulative, pools)
    pool_choice: dict[int, tuple[PoolTable, dict[int, PoolTable]]] = field(default_factory=dict)
    proc_by_pool: dict[tuple[int, int], DurationSampler] = field(default_factory=dict)
    parallel: list[tuple[int, int]] = field(default_factory=list)  # (activity, next) overlap
    carry_on: set[tuple[int, int]] = field(default_factory=set)  # (activity, next) same person
    notes: list[str] = field(default_factory=list)
    working_processing: bool = False  # processing runs on the pool's as-is working hours
    wall_delay: list[bool] = field(default_factory=list)  # per activity: delay on the wall clock


@dataclass
class Automation:
    share: float
    duration: float
    failure_rate: float
    mask: list[bool] | None
    failure_delay: float = 0.0  # hours until a failure is noticed and a person takes over


@dataclass
class Skip:
    mask: list[bool]
    then: int | None  # activity index, -1 = end, None = continue as if done


@dataclass
class Batch:
    size: int | None
    at_hours: list[int]
    max_wait: float
    duration_factor: float


@dataclass
class Settings:
    """What a scenario changes, in engine terms."""

    capacity: list[list[int]]
    router: Router
    automations: dict[int, Automation] = field(default_factory=dict)
    skips: dict[int, Skip] = field(default_factory=dict)
    priority_mask: list[bool] | None = None
    priority_pools: set[int] | None = None
    batches: dict[int, Batch] = field(default_factory=dict)
    # per case (engine order): whether its skips and automations apply (None: every case), so
    # one run can hold cases with and without a change, as a switchback trial does
    active: np.ndarray | None = None


def compile_twin(twin: ProcessTwin, cost_per_hour: dict[str, float] | None = None) -> EngineModel:
    """Lists, clocks and samplers for the engine, from a fitted twin."""
    acts = sorted(twin.activities)
    index = {a: i for i, a in enumerate(acts)}
    pools = sorted(twin.pools)
    pidx = {p: i for i, p in enumerate(pools)}
    capacity, clocks = [], []
    for p in pools:
        pm = twin.pools[p]
        on = set(pm.working_hours) or set(range(HOURS_PER_WEEK))
        capacity.append(
            list(pm.hourly_capacity)
            if pm.hourly_capacity is not None
            else [pm.capacity if h in on else 0 for h in range(HOURS_PER_WEEK)]
        )
        clocks.append(WeeklyClock([1.0 if h in on else 0.0 for h in range(HOURS_PER_WEEK)]))

    def fitted(model: DurationModel | None, fallback: list[float]) -> DurationSampler:
        if model is None:  # twins fitted before distributions: replay the sample
            model = fit_duration(np.asarray(fallback or [0.0]))
        return DurationSampler(model)

    proc = [
        fitted(twin.activities[a].processing, twin.activities[a].processing_hours) for a in acts
    ]
    delay = [fitted(twin.activities[a].delay, twin.activities[a].delay_hours) for a in acts]
    delay_after = {}
    for a in acts:
        for prev, model in twin.activities[a].delay_after.items():
            if prev == ROUTE_START or prev in index:
                delay_after[(-1 if prev == ROUTE_START else index[prev], index[a])] = (
                    DurationSampler(model)
                )
    if twin.arrival_rates and sum(twin.arrival_rates) > 0:
        arrival_clock = WeeklyClock(twin.arrival_rates)
        units = np.asarray(twin.arrival_gap_units or [1.0], dtype=float)
    else:
        mean_gap = max(twin.mean_interarrival_hours, 1e-9)
        arrival_clock = WeeklyClock([1.0 / mean_gap] * HOURS_PER_WEEK)
        units = np.asarray(twin.arrival_gap_units or [1.0], dtype=float)
    pool_choice, proc_by_pool = {}, {}
    for a in acts:
        am = twin.activities[a]
        if am.pool not in am.pool_shares or any(p not in pidx for p in am.pool_shares):
            continue  # one pool only (or the activity was moved to another pool since)

        def table(share: dict[str, float]) -> PoolTable:
            cum = np.cumsum(list(share.values()))
            cum = cum / cum[-1]
            cum[-1] = 1.0
            return cum, np.asarray([pidx[p] for p in share], dtype=np.int64)

        after = {
            (-1 if prev == ROUTE_START else index[prev]): table(share)
            for prev, share in am.pool_after.items()
            if (prev == ROUTE_START or prev in index) and all(p in pidx for p in share)
        }
        pool_choice[index[a]] = (table(am.pool_shares), after)
        for p, model in am.processing_by_pool.items():
            if p in pidx:
                proc_by_pool[(index[a], pidx[p])] = DurationSampler(model)
    costs = cost_per_hour or {}
    unknown = sorted(set(costs) - set(pools))
    if unknown:
        raise ScenarioError(f"cost_per_hour names unknown pool(s) {unknown}; pools: {pools}")
    return EngineModel(
        acts=acts,
        pools=pools,
        pool_of=[pidx[twin.activities[a].pool] for a in acts],
        capacity=capacity,
        delay_clock=clocks,
        wall_delay=[twin.activities[a].delay_clock == "wall" for a in acts],
        router=Router(acts, twin.start_probabilities, twin.transitions, twin.routing_contexts),
        proc=proc,
        delay=delay,
        delay_after=delay_after,
        arrival_clock=arrival_clock,
        arrival_units=units,
        n_rows=len(twin.case_attribute_samples),
        max_steps=max(50, 3 * twin.max_case_length),
        resource_names=[twin.pools[p].resource_names for p in pools],
        cost_per_hour=[float(costs.get(p, twin.pools[p].cost_per_hour)) for p in pools],
        pool_choice=pool_choice,
        proc_by_pool=proc_by_pool,
        parallel=[
            (index[a], index[b]) for a, b in twin.parallel_pairs if a in index and b in index
        ],
        carry_on={
            (index[a], index[b]) for a, b in twin.carry_on_pairs if a in index and b in index
        },
        working_processing=twin.processing_clock == "working",
    )
