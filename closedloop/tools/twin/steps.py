"""Cases and their paths for the discrete-event engine (:mod:`closedloop.tools.twin.engine`).

:func:`draw_cases` draws what a replication shares between scenarios (arrival
times, attribute rows, automation-share uniforms); :func:`build_steps` walks
every case through the history-aware routing
(:mod:`closedloop.tools.twin.routing`) under a scenario's settings (skips,
automations) and samples each step's pool, processing time and extraneous
delay by inverse CDF, vectorised per activity.

Every case draws its uniforms from a stream fixed by (seed, replication,
block of cases), so an as-is and a what-if run see the same cases: common
random numbers. Automated steps have no pool (pool -1). A bot fails a case
or not once, at the case's first automated step (a bot that takes over a
pool's work on a segment handles the whole case): after a failure people do
that step, once it is noticed, and the rest of the case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from closedloop.tools.twin.model import EngineModel, Settings

__all__ = ["Cases", "Steps", "build_steps", "draw_cases"]

BLOCK = 1024  # cases per block of uniforms
STREAM = 24  # uniforms per case and block; longer paths extend their own stream


@dataclass
class Cases:
    """What a replication draws once and shares between scenarios."""

    arrivals: np.ndarray
    rows: list[int]
    u_share: list[float]
    seed: tuple[int, ...]
    # per case: None, or (previous, activity, visit) of an open case resumed after `activity`
    resume: list[tuple[int, int, int] | None] | None = None


@dataclass
class Steps:
    """Every step of every case, in case order: activity, pool, sampled times."""

    case: np.ndarray
    act: np.ndarray
    pool: np.ndarray
    delay: np.ndarray
    proc: np.ndarray
    first: np.ndarray  # per case: index of its first step (len n + 1)
    rework: np.ndarray  # per case: some activity ran twice
    last: np.ndarray  # per step: last step of its group (steps enabled together, then joined)


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


def _without(
    table: tuple[list[float], list[int]], carry_on: set[tuple[int, int]], after: int
) -> tuple[list[float], list[int]]:
    """The next-activity table without the steps carried on at once after ``after``."""
    cum, nxt = table
    probs = [(b, p) for b, p in zip(nxt, np.diff([0.0, *cum]).tolist(), strict=True)
             if (after, b) not in carry_on and p > 0]  # fmt: skip
    if not probs:
        return [1.0], [-1]
    c = (np.cumsum([p for _, p in probs]) / sum(p for _, p in probs)).tolist()
    c[-1] = 1.0
    return c, [b for b, _ in probs]


def build_steps(m: EngineModel, s: Settings, cases: Cases) -> tuple[Steps, np.ndarray]:
    """Walk every case through the routing; sample durations. Returns steps and treated flags.

    Uniform j of step k of a case: routing (0), processing (1), delay (2),
    automation failure (3), pool (4), so a scenario that leaves a step in place keeps
    its durations (common random numbers).
    """
    n, limit = len(cases.arrivals), m.max_steps
    router, autos, skips, active = s.router, s.automations, s.skips, s.active
    draw, table, start_table = router.draw, router.table, router.start
    acts_l: list[int] = []
    kind_l: list[int] = []  # 0 human, 1 automated
    prev_l: list[int] = []
    first = [0] * (n + 1)
    rework = [False] * n
    treated = [False] * n
    u_parts: list[np.ndarray] = []
    rows, u_share, resume = cases.rows, cases.u_share, cases.resume
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
            where = resume[c] if resume is not None else None
            bot_ok: bool | None = None  # did an automation handle this case without failing
            changed = active is None or bool(active[c])
            if where is None:
                prev, k, visits = -1, 0, {}
                a = draw(start_table, ur[0])
            else:  # an open case: it goes on from the activity it completed last
                p0, a0, v0 = where
                prev, k, visits = a0, 0, {a0: v0}
                a = draw(table(p0, a0, v0), ur[0])
                if (a0, a) in m.carry_on:  # still waiting, so the same person did not carry on
                    a = draw(_without(table(p0, a0, v0), m.carry_on, a0), ur[0])
            while a >= 0 and k < limit:
                if k + 1 >= len(ur):
                    ext = _extension(cases, c, limit)
                    ur = np.concatenate([route[j], ext[:, 0]])
                    uf = np.concatenate([fail[j], ext[:, 3]])
                v = visits.get(a, 0) + 1
                visits[a] = v
                if skips and changed:
                    skip = skips.get(a)
                    if skip is not None and skip.mask[row]:
                        k += 1
                        a = draw(table(prev, a, v), ur[k]) if skip.then is None else skip.then
                        continue
                human = True
                if autos and changed and bot_ok is not False:
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
                        # the bot fails a case or not, once: on failure people take over
                        # this step and the rest of the case
                        if bot_ok is None:
                            bot_ok = bool(uf[k] >= auto.failure_rate)
                        human = not bot_ok
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
        if auto.failure_delay > 0 and len(act) > 1:
            # A failed automation is noticed only later (a wrong resolution reopened): the
            # human step that follows it waits that long first.
            after = np.r_[
                False,
                (act[1:] == a)
                & human[1:]
                & ~human[:-1]
                & (act[:-1] == a)
                & (case[1:] == case[:-1]),
            ]
            delay[after] += auto.failure_delay
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
