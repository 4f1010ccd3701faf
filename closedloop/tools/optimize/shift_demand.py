"""Demand side of shift planning (:mod:`closedloop.tools.optimize.shifts`).

Per pool, from the event log: when work reaches its queue (hour of week, UTC),
the people active per block of the week, and which blocks are open on the
twin's calendar. The queue per block is predicted analytically (M/G/c) and
simulated as a FIFO multi-server queue whose staff changes per block.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from closedloop.tools.log.columns import ACTIVITY, COMPLETE, RESOURCE, START
from closedloop.tools.twin import HOURS_PER_WEEK, ProcessTwin, queue_wait_hours

__all__ = [
    "PoolDemand", "block_wait", "min_staff_for_sla", "pool_demand", "simulate_rosters",
    "weighted_wait",
]  # fmt: skip


@dataclass
class PoolDemand:
    """Hour-of-week demand and observed roster of one pool."""

    per_hour: np.ndarray  # items reaching the queue per week, by hour of week (168)
    roster: np.ndarray  # distinct people active per block, weekly mean
    open: np.ndarray  # bool per block
    mapped_hour: np.ndarray  # hour of week each hour's work is served from (closed -> next open)
    per_block: np.ndarray  # items per week to serve in each block (after mapping)
    service: np.ndarray  # empirical processing hours (mixture of the pool's activities)
    service_p: np.ndarray  # probability of drawing each of them
    mean_service: float
    scv: float


def pool_demand(
    twin: ProcessTwin, frame: pd.DataFrame, pools: list[str], block_hours: int
) -> tuple[dict[str, PoolDemand], float]:
    """Per pool: when work reaches the queue (hour of week) and who was active, from the log."""
    acts = frame[ACTIVITY].astype(str)
    known = acts.isin(twin.activities)
    df = frame.loc[known]
    acts = acts[known]
    pool = acts.map({a: m.pool for a, m in twin.activities.items()})
    complete = pd.to_datetime(df[COMPLETE], utc=True)
    if twin.has_start_times and START in df:
        reach = pd.to_datetime(df[START], utc=True)
    else:  # no start times: the work began about one mean processing time before completion
        proc = acts.map({a: m.mean_processing_hours for a, m in twin.activities.items()})
        reach = complete - pd.to_timedelta(proc, unit="h")
    local = reach.dt.tz_convert("UTC")  # the engine's hours are UTC, so are the blocks
    hour = (local.dt.day_of_week * 24 + local.dt.hour).to_numpy()
    monday = (local.min() - pd.Timedelta(days=int(local.min().day_of_week))).normalize()
    week = ((local - monday) // pd.Timedelta(days=7)).to_numpy()
    weeks = max(1.0, float((local.max() - local.min()) / pd.Timedelta(days=7)))
    resource = (
        df[RESOURCE].fillna("").astype(str).to_numpy() if RESOURCE in df
        else np.full(len(df), "")
    )  # fmt: skip
    nb = HOURS_PER_WEEK // block_hours
    out: dict[str, PoolDemand] = {}
    pool_values = pool.to_numpy()
    for p in pools:
        sel = pool_values == p
        per_hour = np.bincount(hour[sel], minlength=HOURS_PER_WEEK) / weeks
        named = sel & (resource != "")
        active = pd.DataFrame({"b": hour[named] // block_hours, "w": week[named], "r": resource[named]})
        roster = np.zeros(nb)
        if len(active):
            per = active.drop_duplicates().groupby("b").size()
            roster[per.index.to_numpy()] = per.to_numpy() / weeks
        working = set(twin.pools[p].working_hours) or set(range(HOURS_PER_WEEK))
        # open = the pool works in some hour of the block on the twin's calendar, as in the engine
        is_open = np.array([any(h in working for h in range(b * block_hours, (b + 1) * block_hours))
                            for b in range(nb)])  # fmt: skip
        mapped = np.arange(HOURS_PER_WEEK)
        if is_open.any():
            for h in range(HOURS_PER_WEEK):
                b = h // block_hours
                step = 0
                while not is_open[(b + step) % nb]:
                    step += 1
                if step:
                    mapped[h] = ((b + step) % nb) * block_hours
        per_block = np.bincount(mapped // block_hours, weights=per_hour, minlength=nb)
        members = [twin.activities[a] for a in twin.pools[p].activities]
        weights = np.array([m.count for m in members], dtype=float)
        samples = [np.asarray(m.processing_hours or [0.0], dtype=float) for m in members]
        # each activity's sample weighs in proportion to how often the activity occurs
        share = np.concatenate([np.full(len(s), w / len(s)) for s, w in zip(samples, weights)])
        mp = twin.pools[p]
        out[p] = PoolDemand(per_hour, roster, is_open, mapped, per_block, np.concatenate(samples),
                             share / share.sum(), mp.mean_processing_hours, mp.processing_scv)  # fmt: skip
    return out, weeks


def block_wait(rate: float, d: PoolDemand, servers: int) -> float:
    """Analytic (M/G/c) queue wait per item in a block with ``servers`` staff."""
    if rate <= 0:
        return 0.0
    return queue_wait_hours(rate, d.mean_service, d.scv, servers)


def _queue_waits(
    arrivals: np.ndarray, services: np.ndarray, staff: np.ndarray, block_hours: int, end: float
) -> np.ndarray:
    """FIFO multi-server queue whose number of servers changes per block (non-preemptive)."""
    n = len(arrivals)
    waits = np.full(n, np.nan)
    departures: list[float] = []
    queue: deque[int] = deque()
    busy, i, nb = 0, 0, len(staff)
    block, boundary = 0, float(block_hours)
    arr = arrivals.tolist()
    svc = services.tolist()
    cap = int(staff[0])
    while True:
        t_arr = arr[i] if i < n else math.inf
        t_dep = departures[0] if departures else math.inf
        t = min(t_arr, t_dep, boundary)
        if t > end or (i >= n and not queue and not departures):
            break
        if t_dep <= t_arr and t_dep <= boundary:
            heapq.heappop(departures)
            busy -= 1
        elif t_arr <= boundary:
            queue.append(i)
            i += 1
        else:
            block = (block + 1) % nb
            boundary += block_hours
            cap = int(staff[block])
        while queue and busy < cap:
            j = queue.popleft()
            waits[j] = t - arr[j]
            busy += 1
            heapq.heappush(departures, t + svc[j])
    for j in queue:  # still waiting at the end: censored at the end of the run
        waits[j] = end - arr[j]
    return waits


def simulate_rosters(
    demand: dict[str, PoolDemand], rosters: list[dict[str, np.ndarray]], block_hours: int,
    weeks: int, replications: int, seed: int,
) -> list[dict[str, list[dict[int, float]]]]:  # fmt: skip
    """Mean wait per (pool, block) per replication, for each roster, same random work (CRN)."""
    results: list[dict[str, list[dict[int, float]]]] = [{p: [] for p in demand} for _ in rosters]
    horizon = (weeks + 1) * HOURS_PER_WEEK
    for pi, (p, d) in enumerate(sorted(demand.items())):
        for r in range(replications):
            rng = np.random.default_rng([seed, r, pi])
            counts = rng.poisson(np.tile(d.per_hour, weeks + 1))
            hours = np.repeat(np.arange(len(counts)), counts)
            arrive = hours + rng.random(len(hours))
            week_start = (hours // HOURS_PER_WEEK) * HOURS_PER_WEEK
            served_from = week_start + d.mapped_hour[hours % HOURS_PER_WEEK]
            served_from = np.where(served_from < hours, served_from + HOURS_PER_WEEK, served_from)
            moved = d.mapped_hour[hours % HOURS_PER_WEEK] != hours % HOURS_PER_WEEK
            arrive = np.where(moved, served_from, arrive).astype(float)
            order = np.argsort(arrive, kind="mergesort")
            arrive, hours = arrive[order], hours[order]
            services = d.service[rng.choice(len(d.service), len(arrive), p=d.service_p)]
            block_of = (arrive % HOURS_PER_WEEK // block_hours).astype(int)
            measured = hours >= HOURS_PER_WEEK  # the first week is warm-up
            for k, roster in enumerate(rosters):
                waits = _queue_waits(arrive, services, roster[p], block_hours, horizon * 2)
                per_block = pd.Series(waits[measured]).groupby(block_of[measured]).mean()
                results[k][p].append({int(b): float(w) for b, w in per_block.items()})
    return results


def weighted_wait(
    per_rep: dict[str, list[dict[int, float]]], demand: dict[str, PoolDemand]
) -> list[float]:
    """Arrival-weighted mean wait per item across pools, one value per replication."""
    reps = len(next(iter(per_rep.values())))
    out = []
    for r in range(reps):
        total = weight = 0.0
        for p, d in demand.items():
            for b, w in per_rep[p][r].items():
                total += d.per_block[b] * w
                weight += d.per_block[b]
        out.append(total / weight if weight else 0.0)
    return out


def min_staff_for_sla(
    rate: float, d: PoolDemand, floor: int, cap: int, max_utilisation: float,
    max_wait_hours: float | None,
) -> int | None:  # fmt: skip
    """Fewest staff in [floor, cap] whose analytic utilisation and wait meet the SLA."""
    load = rate * d.mean_service
    for c in range(max(floor, 1 if rate > 0 else 0), cap + 1):
        if rate <= 0:
            return c
        if load / c > max_utilisation:
            continue
        if max_wait_hours is None or block_wait(rate, d, c) <= max_wait_hours:
            return c
    return None
