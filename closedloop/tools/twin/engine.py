"""The discrete-event engine behind :func:`closedloop.tools.twin.simulate.simulate`.

One run simulates ``n`` cases of a compiled twin (:class:`EngineModel`) under
compiled scenario settings (:class:`Settings`); steps 1 to 3 are in
:mod:`closedloop.tools.twin.steps`, this module runs step 4:

1. **Arrivals**: gaps drawn from the twin's empirical gaps measured in
   *expected arrivals* (so bursts survive) and laid on the weekly
   arrival-rate calendar (a non-homogeneous process), from a given start.
2. **Paths**: each case walks the history-aware routing
   (:mod:`closedloop.tools.twin.routing`) with its own uniforms; scenario
   routing changes (skips, thresholds, shares, automations) apply here.
3. **Durations**: processing and extraneous-delay times by inverse CDF of
   the fitted distributions, vectorised per activity (delays per previous
   activity where the twin has one).
4. **Events** (heapq): an enabled step first waits its extraneous delay,
   counted in its pool's as-is working hours; then it queues for the pool
   (priority cases first, FIFO otherwise; batched activities wait for their
   batch); a server starts it only while the pool's capacity for that hour
   of the week exceeds the busy servers (off shift the capacity is 0);
   started work runs to completion; its processing time counts only the
   pool's as-is working hours (twins fitted on working time, the default;
   older twins run it on the wall clock).
   Consecutive steps the twin saw overlap in time (``parallel_pairs``) are
   enabled together and the case moves on when all are done; a step the same
   person did right after the previous one (``carry_on_pairs``) starts at once
   on that server, without queueing again.

Every case draws its uniforms from a stream fixed by (seed, replication,
block of cases), so an as-is and a what-if run see the same cases: common
random numbers. Automated steps are timers with no pool (pool -1).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from closedloop.tools.twin.calendar import HOURS_PER_WEEK
from closedloop.tools.twin.model import EngineModel, Settings
from closedloop.tools.twin.steps import Cases, Steps, build_steps

__all__ = ["AUTOMATION_RESOURCE", "RunOutput", "run"]

AUTOMATION_RESOURCE = "automation"


@dataclass
class RunOutput:
    """Per-case, per-step and per-pool results of one run (``warm`` cases not measured)."""

    arrivals: np.ndarray
    end: np.ndarray
    wait: np.ndarray
    delay: np.ndarray
    cost: np.ndarray
    treated: np.ndarray
    rework: np.ndarray
    steps: Steps
    step_start: np.ndarray
    step_end: np.ndarray
    step_server: np.ndarray
    busy_time: list[float]
    pool_wait: list[float]
    window: tuple[float, float]
    warm: int


def run(m: EngineModel, s: Settings, cases: Cases, warm: int) -> RunOutput:
    """Simulate the cases under the settings; per-case and per-step results."""
    steps, treated = build_steps(m, s, cases)
    n = len(cases.arrivals)
    arrivals = cases.arrivals
    a_l = steps.act.tolist()
    p_l = steps.pool.tolist()
    d_l = steps.delay.tolist()
    x_l = steps.proc.tolist()
    c_l = steps.case.tolist()
    first = steps.first.tolist()
    last = steps.last.tolist()
    pending = [0] * n  # steps of the case's current group not yet complete
    n_steps = len(a_l)
    st_start = [0.0] * n_steps
    st_end = [0.0] * n_steps
    st_server = [-1] * n_steps
    st_ready = [0.0] * n_steps
    npools = len(m.pools)
    cap = s.capacity
    busy = [0] * npools
    free: list[list[int]] = [[] for _ in range(npools)]
    hired = [0] * npools
    high: list[deque] = [deque() for _ in range(npools)]
    low: list[deque] = [deque() for _ in range(npools)]
    wake_at = [math.inf] * npools
    raise_in = [_raise_offsets(profile) for profile in cap]
    advance = [clock.advance for clock in m.delay_clock]
    wall_delay = m.wall_delay or [False] * len(m.acts)
    forward = [clock.forward for clock in m.delay_clock]
    working = m.working_processing
    prio_case = [s.priority_mask[r] for r in cases.rows] if s.priority_mask is not None else None
    prio_pools = s.priority_pools
    carry = m.carry_on
    batches = s.batches
    buffers: dict[int, list[int]] = {a: [] for a in batches}
    generation = {a: 0 for a in batches}
    t0 = float(arrivals[warm]) if n else 0.0
    t1 = float(arrivals[-1]) if n else 0.0
    busy_time = [0.0] * npools
    pool_wait = [0.0] * npools
    end = [0.0] * n
    wait = [0.0] * n
    delay = [0.0] * n
    heap: list[tuple] = [(t, i, 0, i) for i, t in enumerate(arrivals.tolist())]
    heapq.heapify(heap)
    seq = n
    push, pop = heapq.heappush, heapq.heappop
    W = HOURS_PER_WEEK

    def start(k: int, p: int, t: float) -> None:
        nonlocal seq
        busy[p] += 1
        fr = free[p]
        if fr:
            server = fr.pop()
        else:
            server = hired[p]
            hired[p] += 1
        st_server[k] = server
        st_start[k] = t
        q = t - st_ready[k]
        c = c_l[k]
        wait[c] += q
        if c >= warm:
            pool_wait[p] += q
        if working:
            e = advance[p](t, x_l[k])
            lo, hi = max(t0, t), min(t1, e)
            if hi > lo:
                busy_time[p] += forward[p](hi) - forward[p](lo)
        else:
            e = t + x_l[k]
            lo, hi = max(t0, t), min(t1, e)
            if hi > lo:
                busy_time[p] += hi - lo
        seq += 1
        push(heap, (e, seq, 2, k))

    def drain(p: int, t: float) -> None:
        """Start queued work while the pool has free capacity; book a wake-up if stuck."""
        nonlocal seq
        limit = cap[p][int(t) % W]
        hq, lq = high[p], low[p]
        while busy[p] < limit and (hq or lq):
            start(hq.popleft() if hq else lq.popleft(), p, t)
        if (hq or lq) and busy[p] >= limit:
            offset = raise_in[p][int(t) % W]
            if offset is not None:
                at = math.floor(t) + offset
                if at < wake_at[p]:
                    wake_at[p] = at
                    seq += 1
                    push(heap, (float(at), seq, 3, p))

    def request(k: int, t: float) -> None:
        p = p_l[k]
        if prio_case is not None and prio_case[c_l[k]] and (prio_pools is None or p in prio_pools):
            high[p].append(k)
        else:
            low[p].append(k)
        drain(p, t)

    def ready(k: int, t: float) -> None:
        nonlocal seq
        st_ready[k] = t  # queueing (and batching) is measured from here
        a = a_l[k]
        if a in buffers:
            b = batches[a]
            buf = buffers[a]
            buf.append(k)
            if b.size is not None and len(buf) >= b.size:
                release(a, t)
            elif len(buf) == 1:
                at = t + b.max_wait
                if b.at_hours:
                    at = min(at, _next_hour_of_day(t, b.at_hours))
                seq += 1
                push(heap, (at, seq, 4, a * 1_000_000 + generation[a] % 1_000_000))
            return
        p = p_l[k]
        if prio_case is None and not low[p] and busy[p] < cap[p][int(t) % W]:
            start(k, p, t)  # the common case: a free server, nobody waiting
        else:
            request(k, t)

    def release(a: int, t: float) -> None:
        generation[a] += 1
        buf = buffers[a]
        buffers[a] = []
        for k in buf:
            request(k, t)

    def enable(k: int, t: float) -> None:
        nonlocal seq
        p = p_l[k]
        if p < 0:  # automated step: a timer
            st_ready[k] = st_start[k] = t
            seq += 1
            push(heap, (t + x_l[k], seq, 2, k))
            return
        d = d_l[k]
        if d > 0:
            r = t + d if wall_delay[a_l[k]] else advance[p](t, d)
            delay[c_l[k]] += r - t
            seq += 1
            push(heap, (r, seq, 1, k))
        else:
            ready(k, t)

    def enable_group(k: int, t: float) -> None:
        j = last[k]
        pending[c_l[k]] = j - k + 1
        for i in range(k, j + 1):
            enable(i, t)

    while heap:
        t, _, code, k = pop(heap)
        if code == 2:  # completion
            st_end[k] = t
            p = p_l[k]
            c = c_l[k]
            j = k + 1
            if (carry and p >= 0 and last[k] == k and j < first[c + 1] and last[j] == j
                    and p_l[j] == p and (a_l[k], a_l[j]) in carry):  # fmt: skip
                # the same person carries on at once: the server goes straight to the next step
                busy[p] -= 1
                free[p].append(st_server[k])
                st_ready[j] = t
                start(j, p, t)
                continue
            if p >= 0:
                busy[p] -= 1
                free[p].append(st_server[k])
                if high[p] or low[p]:
                    drain(p, t)
            pending[c] -= 1
            if pending[c] == 0:
                nxt = last[k] + 1
                if nxt < first[c + 1]:
                    enable_group(nxt, t)
                else:
                    end[c] = t
        elif code == 1:
            ready(k, t)
        elif code == 0:  # arrival
            if first[k] < first[k + 1]:
                enable_group(first[k], t)
            else:
                end[k] = t
        elif code == 3:  # capacity rises
            if t >= wake_at[k]:
                wake_at[k] = math.inf
            drain(k, t)
        else:  # batch timer
            a, gen = divmod(k, 1_000_000)
            if generation[a] % 1_000_000 == gen and buffers[a]:
                release(a, t)

    cost_rate = np.asarray(m.cost_per_hour + [0.0])[steps.pool]
    cost = np.bincount(steps.case, weights=steps.proc * cost_rate, minlength=n)
    return RunOutput(
        arrivals=arrivals,
        end=np.asarray(end),
        wait=np.asarray(wait),
        delay=np.asarray(delay),
        cost=cost,
        treated=treated,
        rework=steps.rework,
        steps=steps,
        step_start=np.asarray(st_start),
        step_end=np.asarray(st_end),
        step_server=np.asarray(st_server),
        busy_time=busy_time,
        pool_wait=pool_wait,
        window=(t0, t1),
        warm=warm,
    )


def _raise_offsets(profile: list[int]) -> list[int | None]:
    """Per hour of the week: hours until the next hour with more capacity (None: never)."""
    out: list[int | None] = []
    for s in range(HOURS_PER_WEEK):
        offset = next(
            (
                h
                for h in range(1, HOURS_PER_WEEK + 1)
                if profile[(s + h) % HOURS_PER_WEEK] > profile[s]
            ),
            None,
        )
        out.append(offset)
    return out


def _next_hour_of_day(t: float, hours: list[int]) -> float:
    day = math.floor(t / 24) * 24
    for d in (0, 24):
        for h in sorted(hours):
            at = day + d + h
            if at > t:
                return float(at)
    return t + 24.0
