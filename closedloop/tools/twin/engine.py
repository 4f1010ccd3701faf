"""The discrete-event engine behind :func:`closedloop.tools.twin.simulate.simulate`.

One run simulates ``n`` cases of a compiled twin (:class:`EngineModel`) under
compiled scenario settings (:class:`Settings`):

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
   started work runs to completion (wall-clock processing, as recorded).
   Consecutive steps the twin saw overlap in time (``parallel_pairs``) are
   enabled together and the case moves on when all are done.

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

BLOCK = 1024  # cases per block of uniforms
STREAM = 24  # uniforms per case and block; longer paths extend their own stream
AUTOMATION_RESOURCE = "automation"


@dataclass
class Cases:
    """What a replication draws once and shares between scenarios."""

    arrivals: np.ndarray
    rows: list[int]
    u_share: list[float]
    seed: tuple[int, ...]


@dataclass
class Steps:
    case: np.ndarray
    act: np.ndarray
    pool: np.ndarray
    delay: np.ndarray
    proc: np.ndarray
    first: np.ndarray  # per case: index of its first step (len n + 1)
    rework: np.ndarray  # per case: some activity ran twice
    last: np.ndarray  # per step: last step of its group (steps enabled together, then joined)


@dataclass
class RunOutput:
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


def draw_cases(m: EngineModel, n: int, start: float, seed: tuple[int, ...]) -> Cases:
    """Arrival times (hours since the epoch, first at ``start``) and attribute rows."""
    rng = np.random.default_rng([*seed, 1])
    units = m.arrival_units[rng.integers(0, len(m.arrival_units), n)]
    units[0] = 0.0
    x = m.arrival_clock.forward(start) + np.cumsum(units)
    arrivals = np.maximum(m.arrival_clock.inverse_many(x), start)
    rows = rng.integers(0, max(m.n_rows, 1), n).tolist()
    return Cases(arrivals, rows, rng.random(n).tolist(), seed)


def _uniforms(cases: Cases, block: int, count: int) -> np.ndarray:
    rng = np.random.default_rng([*cases.seed, 2, block])
    return rng.random((count, STREAM, 5))


def _extension(cases: Cases, case: int, steps: int) -> np.ndarray:
    """More uniforms for a case whose path outgrows its STREAM (rare; still reproducible)."""
    return np.random.default_rng([*cases.seed, 3, case]).random((steps, 5))


def build_steps(m: EngineModel, s: Settings, cases: Cases) -> tuple[Steps, np.ndarray]:
    """Walk every case through the routing; sample durations. Returns steps and treated flags.

    Uniform j of step k of a case: routing (0), processing (1), delay (2),
    automation failure (3), pool (4), so a scenario that leaves a step in place keeps
    its durations (common random numbers).
    """
    n, limit = len(cases.arrivals), m.max_steps
    router, autos, skips = s.router, s.automations, s.skips
    draw, table, start_table = router.draw, router.table, router.start
    acts_l: list[int] = []
    kind_l: list[int] = []  # 0 human, 1 automated
    prev_l: list[int] = []
    first = [0] * (n + 1)
    rework = [False] * n
    treated = [False] * n
    u_parts: list[np.ndarray] = []
    rows, u_share = cases.rows, cases.u_share
    for b0 in range(0, n, BLOCK):
        count = min(BLOCK, n - b0)
        U = _uniforms(cases, b0 // BLOCK, count)
        route, fail = U[:, :, 0], U[:, :, 3]
        keys: list[int] = []
        extra: list[tuple[int, np.ndarray]] = []  # (position in keys, uniforms)
        for j in range(count):
            c = b0 + j
            first[c] = len(acts_l)
            ur, uf = route[j], fail[j]
            ext = None
            row = rows[c]
            prev, k, visits = -1, 0, {}
            a = draw(start_table, ur[0])
            while a >= 0 and k < limit:
                if k + 1 >= len(ur):
                    ext = _extension(cases, c, limit)
                    ur = np.concatenate([route[j], ext[:, 0]])
                    uf = np.concatenate([fail[j], ext[:, 3]])
                v = visits.get(a, 0) + 1
                visits[a] = v
                if skips:
                    skip = skips.get(a)
                    if skip is not None and skip.mask[row]:
                        k += 1
                        a = draw(table(prev, a, v), ur[k]) if skip.then is None else skip.then
                        continue
                human = True
                if autos:
                    auto = autos.get(a)
                    if (
                        auto is not None
                        and u_share[c] < auto.share
                        and (auto.mask is None or auto.mask[row])
                    ):
                        treated[c] = True
                        acts_l.append(a)
                        kind_l.append(1)
                        prev_l.append(prev)
                        keys.append(j * STREAM + k)
                        human = uf[k] < auto.failure_rate
                if human:
                    if v > 1:
                        rework[c] = True
                    acts_l.append(a)
                    kind_l.append(0)
                    prev_l.append(prev)
                    if k < STREAM:
                        keys.append(j * STREAM + k)
                    else:
                        extra.append((len(keys), ext[k - STREAM]))
                        keys.append(0)
                k += 1
                prev, a = a, draw(table(prev, a, v), ur[k])
        picked = U.reshape(count * STREAM, 5)[np.asarray(keys, dtype=np.int64)]
        for pos, u in extra:
            picked[pos] = u
        u_parts.append(picked)
    first[n] = len(acts_l)
    u = np.concatenate(u_parts) if u_parts else np.zeros((0, 5))
    act = np.asarray(acts_l, dtype=np.int64)
    kind = np.asarray(kind_l, dtype=np.int64)
    prev = np.asarray(prev_l, dtype=np.int64)
    first_a = np.asarray(first, dtype=np.int64)
    case = np.repeat(np.arange(n), np.diff(first_a))
    proc = np.zeros(len(act))
    delay = np.zeros(len(act))
    human = kind == 0
    pool = np.where(human, np.asarray(m.pool_of + [-1], dtype=np.int64)[act], -1)
    order = np.argsort(act, kind="stable")
    bounds = np.searchsorted(act[order], np.arange(len(m.acts) + 1))
    for a in range(len(m.acts)):
        idx = order[bounds[a] : bounds[a + 1]]
        idx = idx[human[idx]]
        if len(idx) == 0:
            continue
        choice = m.pool_choice.get(a)
        if choice is not None:
            default, after = choice
            for p in np.unique(prev[idx]).tolist():
                sub = idx[prev[idx] == p]
                cum, pools = after.get(p, default)
                pool[sub] = pools[np.searchsorted(cum, u[sub, 4], side="right")]
        for q in np.unique(pool[idx]).tolist():
            sub = idx[pool[idx] == q]
            proc[sub] = m.proc_by_pool.get((a, q), m.proc[a])(u[sub, 1])
        if a in s.batches and s.batches[a].duration_factor != 1.0:
            proc[idx] *= s.batches[a].duration_factor
        for p in np.unique(prev[idx]).tolist():
            sub = idx[prev[idx] == p]
            delay[sub] = m.delay_after.get((p, a), m.delay[a])(u[sub, 2])
    for a, auto in s.automations.items():
        proc[(act == a) & ~human] = auto.duration
    steps = Steps(case, act, pool, delay, proc, first_a, np.asarray(rework),
                  _group_last(m, act, human, case))  # fmt: skip
    return steps, np.asarray(treated)


def _group_last(m: EngineModel, act: np.ndarray, human: np.ndarray, case: np.ndarray) -> np.ndarray:
    """Per step, the last step enabled together with it (itself unless a parallel pair follows).

    A step runs in parallel with the step before it when the twin saw that
    pair overlap in the log; such steps start together and the case moves on
    once all of them are done (an AND split and join).
    """
    n = len(act)
    together = np.zeros(n, dtype=bool)
    if m.parallel and n > 1:
        pair = set(m.parallel)
        same = (case[1:] == case[:-1]) & human[1:] & human[:-1]
        cand = np.flatnonzero(same) + 1
        together[cand] = [(int(act[k - 1]), int(act[k])) in pair for k in cand]
    starts = np.flatnonzero(~together)
    ends = np.r_[starts[1:] - 1, n - 1] if n else starts
    return ends[np.cumsum(~together) - 1] if n else np.zeros(0, dtype=np.int64)


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
    prio_case = [s.priority_mask[r] for r in cases.rows] if s.priority_mask is not None else None
    prio_pools = s.priority_pools
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
        e = t + x_l[k]
        lo = max(t0, t)
        hi = min(t1, e)
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
            r = advance[p](t, d)
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
            if p >= 0:
                busy[p] -= 1
                free[p].append(st_server[k])
                if high[p] or low[p]:
                    drain(p, t)
            c = c_l[k]
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
