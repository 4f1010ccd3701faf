"""What-if simulation of a process twin: a small discrete-event engine (heapq).

Each simulated case arrives (gaps drawn from the twin's empirical sample),
follows the twin's routing probabilities, and at each activity waits an
extraneous delay, queues FIFO for the activity's resource pool (capacity =
number of parallel servers), then is processed. An automated activity skips
the delay and the queue and takes ``automated_duration_hours``; a failed
automation falls back to the human activity afterwards.

As-is and scenario runs of one replication share the same sampled cases
(arrivals, paths, durations, attributes, automation draws: common random
numbers), so the delta isolates the effect of the change. The first 10 % of
cases of each run are a warm-up and are not measured.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from scipy import stats

from closedloop.tools.base import read_tool
from closedloop.tools.conditions import compile_condition
from closedloop.tools.errors import ScenarioError
from closedloop.tools.twin import END, ObservedKpis, ProcessTwin

WARMUP_SHARE = 0.10
MAX_CASES = 200_000
MAX_REPLICATIONS = 200


class AsIs(BaseModel):
    """No change: simulate the process as observed."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["as_is"] = "as_is"


class AddCapacity(BaseModel):
    """Add (or, with a negative ``extra``, remove) servers to a pool.

    ``activity_or_pool`` names a pool or an activity (meaning its pool). The
    resulting capacity must stay >= 1.
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["add_capacity"] = "add_capacity"
    activity_or_pool: str
    extra: int


class AutomateActivity(BaseModel):
    """Automate an activity for a share of the cases in a segment.

    ``segment`` is a condition over case attributes (names without the
    ``case:`` prefix), e.g. ``"category == 'password'"``; None = all cases.
    Treated cases skip the delay and queue and take
    ``automated_duration_hours``; with probability ``failure_rate`` the
    automation fails and the human activity follows as usual.
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["automate_activity"] = "automate_activity"
    activity: str
    segment: str | None = None
    share: float = Field(1.0, ge=0.0, le=1.0)
    automated_duration_hours: float = Field(0.03, ge=0.0)
    failure_rate: float = Field(0.0, ge=0.0, le=1.0)


Change = Annotated[AddCapacity | AutomateActivity, Field(discriminator="kind")]


class Combined(BaseModel):
    """Several changes at once (capacity in several pools, automations)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["combined"] = "combined"
    changes: list[Change] = Field(min_length=1)


Scenario = Annotated[AsIs | AddCapacity | AutomateActivity | Combined, Field(discriminator="kind")]
_SCENARIO = TypeAdapter(Scenario)


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
    utilisation: dict[str, Estimate] = Field(description="busy share of each pool's servers")
    waiting_by_pool_hours: dict[str, Estimate] = Field(description="queueing per case, by pool")


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


@dataclass
class _Automation:
    share: float
    duration: float
    failure_rate: float
    mask: list[bool] | None


@dataclass
class _Model:
    """Lists (fast to index) derived from a twin."""

    acts: list[str]
    pools: list[str]
    pool_of: list[int]
    capacity: list[int]
    start_cum: list[float]
    start_next: list[int]
    route_cum: list[list[float]]
    route_next: list[list[int]]
    proc: list[list[float]]
    delay: list[list[float]]
    gaps: np.ndarray
    n_rows: int
    max_steps: int
    notes: list[str] = field(default_factory=list)


def _model(twin: ProcessTwin) -> _Model:
    acts = sorted(twin.activities)
    index = {a: i for i, a in enumerate(acts)}
    pools = sorted(twin.pools)
    pidx = {p: i for i, p in enumerate(pools)}

    def cumulative(probs: dict[str, float]) -> tuple[list[float], list[int]]:
        items = [(b, p) for b, p in probs.items() if p > 0 and (b == END or b in index)]
        cum = np.cumsum([p for _, p in items]).tolist()
        cum = [c / cum[-1] for c in cum] if cum else [1.0]
        nxt = [-1 if b == END else index[b] for b, _ in items] or [-1]
        return cum, nxt

    start_cum, start_next = cumulative(twin.start_probabilities)
    routes = [cumulative(twin.transitions.get(a, {END: 1.0})) for a in acts]
    gaps = np.asarray(twin.interarrival_hours or [twin.mean_interarrival_hours], dtype=float)
    return _Model(
        acts=acts,
        pools=pools,
        pool_of=[pidx[twin.activities[a].pool] for a in acts],
        capacity=[twin.pools[p].capacity for p in pools],
        start_cum=start_cum,
        start_next=start_next,
        route_cum=[r[0] for r in routes],
        route_next=[r[1] for r in routes],
        proc=[twin.activities[a].processing_hours or [0.0] for a in acts],
        delay=[twin.activities[a].delay_hours or [0.0] for a in acts],
        gaps=gaps,
        n_rows=len(twin.case_attribute_samples),
        max_steps=max(50, 3 * twin.max_case_length),
    )


def _brief(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(x) for x in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()[:5]
    )


def as_twin(twin: Any) -> ProcessTwin:
    """A ProcessTwin from a twin or its JSON-like dict; ScenarioError when invalid."""
    if isinstance(twin, ProcessTwin):
        return twin
    try:
        return ProcessTwin.model_validate(twin)
    except ValidationError as exc:
        raise ScenarioError(f"invalid process twin: {_brief(exc)}") from None


def as_scenario(scenario: Any) -> Any:
    """A validated scenario from a model or a dict with ``kind``; ScenarioError when invalid."""
    try:
        return _SCENARIO.validate_python(scenario)
    except ValidationError as exc:
        raise ScenarioError(f"invalid scenario: {_brief(exc)}") from None


def resolve_pool(twin: ProcessTwin, name: str) -> str:
    """The pool a pool or activity name refers to; ScenarioError listing valid names if unknown."""
    if name in twin.pools:
        return name
    if name in twin.activities:
        return twin.activities[name].pool
    raise ScenarioError(
        f"unknown activity or pool {name!r}; pools: {', '.join(sorted(twin.pools))}; "
        f"activities: {', '.join(sorted(twin.activities))}"
    )


def _compile(
    twin: ProcessTwin, m: _Model, scenario: Any
) -> tuple[list[int], dict[int, _Automation]]:
    """Capacities and automations (by activity index) the scenario implies."""
    changes = scenario.changes if isinstance(scenario, Combined) else [scenario]
    capacity = list(m.capacity)
    automations: dict[int, _Automation] = {}
    for change in changes:
        if isinstance(change, AddCapacity):
            pool = resolve_pool(twin, change.activity_or_pool)
            i = m.pools.index(pool)
            capacity[i] += change.extra
            if capacity[i] < 1:
                raise ScenarioError(
                    f"AddCapacity({change.activity_or_pool!r}, extra={change.extra}) would leave pool "
                    f"{pool!r} with capacity {capacity[i]} (it has {m.capacity[i]}; minimum is 1)"
                )
        elif isinstance(change, AutomateActivity):
            if change.activity not in twin.activities:
                raise ScenarioError(
                    f"unknown activity {change.activity!r}; activities: {', '.join(m.acts)}"
                )
            a = m.acts.index(change.activity)
            if a in automations:
                raise ScenarioError(
                    f"activity {change.activity!r} is automated twice in one scenario"
                )
            mask = None
            if change.segment is not None:
                cond = compile_condition(change.segment, names=twin.case_attributes)
                mask = cond.mask(twin.case_attribute_samples)
                if not any(mask):
                    m.notes.append(
                        f"segment {change.segment!r} matches no case: nothing is automated"
                    )
            automations[a] = _Automation(
                change.share, change.automated_duration_hours, change.failure_rate, mask
            )
    return capacity, automations


@dataclass
class _Cases:
    arrivals: list[float]
    rows: list[int]
    u_share: list[float]
    paths: list[list[tuple[int, float, float, float]]]  # (activity, delay, processing, u_fail)


def _sample_cases(m: _Model, rng: np.random.Generator, n: int) -> _Cases:
    arrivals = np.cumsum(m.gaps[rng.integers(0, len(m.gaps), n)]).tolist()
    rows = rng.integers(0, max(m.n_rows, 1), n).tolist()
    u_share = rng.random(n).tolist()
    buf = rng.random(8 * n + 64).tolist()
    pos = 0
    paths = []
    for _ in range(n):
        path = []
        if pos + 1 > len(buf):
            buf, pos = rng.random(8 * n + 64).tolist(), 0
        a = m.start_next[min(bisect_right(m.start_cum, buf[pos]), len(m.start_cum) - 1)]
        pos += 1
        while a >= 0 and len(path) < m.max_steps:
            if pos + 4 > len(buf):
                buf, pos = rng.random(8 * n + 64).tolist(), 0
            d, p = m.delay[a], m.proc[a]
            path.append((a, d[int(buf[pos] * len(d))], p[int(buf[pos + 1] * len(p))], buf[pos + 2]))
            cum = m.route_cum[a]
            a = m.route_next[a][min(bisect_right(cum, buf[pos + 3]), len(cum) - 1)]
            pos += 4
        paths.append(path)
    return _Cases(arrivals, rows, u_share, paths)


def _run(
    m: _Model, cs: _Cases, capacity: list[int], autos: dict[int, _Automation]
) -> dict[str, Any]:
    """One discrete-event run; returns the KPIs of the measured cases."""
    n = len(cs.arrivals)
    warm = int(n * WARMUP_SHARE)
    t0, t1 = cs.arrivals[warm], cs.arrivals[-1]
    npools = len(m.pools)
    busy = [0] * npools
    queues: list[list] = [[] for _ in range(npools)]
    qhead = [0] * npools
    busy_time = [0.0] * npools
    pool_wait = [0.0] * npools
    end = [0.0] * n
    wait = [0.0] * n
    delay = [0.0] * n
    treated = [False] * n
    heap = [(t, i, 0, i, 0) for i, t in enumerate(cs.arrivals)]  # (time, seq, kind, case, step)
    seq = n
    push, pop = heapq.heappush, heapq.heappop

    def start_service(i: int, k: int, t: float) -> None:
        nonlocal seq
        a, _, proc, _ = cs.paths[i][k]
        p = m.pool_of[a]
        s, e = max(t, t0), min(t + proc, t1)
        if e > s:
            busy_time[p] += e - s
        seq += 1
        push(heap, (t + proc, seq, 2, i, k))

    def enter(i: int, k: int, t: float) -> None:
        nonlocal seq
        path = cs.paths[i]
        while k < len(path):
            a, d, _, u_fail = path[k]
            auto = autos.get(a)
            if (
                auto is not None
                and cs.u_share[i] < auto.share
                and (auto.mask is None or auto.mask[cs.rows[i]])
            ):
                treated[i] = True
                t += auto.duration
                if u_fail >= auto.failure_rate:
                    k += 1
                    continue
            if d > 0:
                delay[i] += d
                t += d
            seq += 1
            push(heap, (t, seq, 1, i, k))
            return
        end[i] = t

    while heap:
        t, _, kind, i, k = pop(heap)
        if kind == 0:
            enter(i, 0, t)
        elif kind == 1:
            p = m.pool_of[cs.paths[i][k][0]]
            if busy[p] < capacity[p]:
                busy[p] += 1
                start_service(i, k, t)
            else:
                queues[p].append((t, i, k))
        else:
            p = m.pool_of[cs.paths[i][k][0]]
            q = queues[p]
            if qhead[p] < len(q):
                tq, j, kj = q[qhead[p]]
                qhead[p] += 1
                wait[j] += t - tq
                if j >= warm:
                    pool_wait[p] += t - tq
                start_service(j, kj, t)
            else:
                busy[p] -= 1
            enter(i, k + 1, t)

    cycle = np.asarray(end[warm:]) - np.asarray(cs.arrivals[warm:])
    measured = n - warm
    window = t1 - t0
    done = sorted(end)
    lo, hi = int(0.1 * n), max(int(0.9 * n) - 1, 0)
    steady = done[hi] - done[lo]
    return {
        "cycle_time_mean_hours": float(cycle.mean()),
        "cycle_time_p90_hours": float(np.percentile(cycle, 90)),
        "waiting_mean_hours": sum(wait[warm:]) / measured,
        "delay_mean_hours": sum(delay[warm:]) / measured,
        "throughput_per_day": 24.0 * (hi - lo) / steady if steady > 0 else 0.0,
        "utilisation": {
            pool: (busy_time[p] / (capacity[p] * window) if window > 0 else 0.0)
            for p, pool in enumerate(m.pools)
        },
        "waiting_by_pool_hours": {pool: pool_wait[p] / measured for p, pool in enumerate(m.pools)},
        "treated_share": sum(treated[warm:]) / measured,
    }


def _estimate(values: list[float]) -> Estimate:
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    if sd == 0 or not math.isfinite(sd):
        return Estimate(mean=mean, ci_low=mean, ci_high=mean)
    half = float(stats.t.ppf(0.975, len(x) - 1)) * sd / math.sqrt(len(x))
    return Estimate(mean=mean, ci_low=mean - half, ci_high=mean + half)


def _kpis(runs: list[dict[str, Any]]) -> KpiEstimates:
    def by_pool(key: str) -> dict[str, Estimate]:
        return {p: _estimate([r[key][p] for r in runs]) for p in runs[0][key]}

    scalar = {
        k: _estimate([r[k] for r in runs])
        for k in ("cycle_time_mean_hours", "cycle_time_p90_hours", "waiting_mean_hours",
                  "delay_mean_hours", "throughput_per_day")
    }  # fmt: skip
    return KpiEstimates(
        **scalar,
        utilisation=by_pool("utilisation"),
        waiting_by_pool_hours=by_pool("waiting_by_pool_hours"),
    )


def _minus(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {k: (_minus(v, b[k]) if isinstance(v, dict) else v - b[k]) for k, v in a.items()}


@read_tool
def simulate(
    twin: ProcessTwin, scenario: Scenario, cases: int = 500, replications: int = 5, seed: int = 0
) -> SimulationResult:
    """Simulate a what-if scenario against the as-is process and report KPI deltas.

    ``twin`` comes from ``fit_twin``. ``scenario`` is one of (by ``kind``):
    ``{"kind": "as_is"}``; ``{"kind": "add_capacity", "activity_or_pool": "Closed",
    "extra": 2}`` (pool or activity name; negative ``extra`` removes staff, the
    pool keeps >= 1); ``{"kind": "automate_activity", "activity": "...",
    "segment": "product == 'x'", "share": 1.0, "automated_duration_hours": 0.03,
    "failure_rate": 0.0}``; ``{"kind": "combined", "changes": [...]}`` for
    several changes at once.

    Runs ``replications`` pairs of as-is and scenario with ``cases`` cases each
    (the first 10 % are warm-up), using the same random cases in both, and
    returns for as-is, what-if and delta (what-if minus as-is) the mean and
    95 % interval of: mean and p90 cycle time (hours), queue waiting and
    extraneous delay per case (hours), throughput (cases/day), utilisation
    and waiting per pool. ``predicted_delta_pct`` is the relative change of
    mean cycle time in percent (negative = faster). Same inputs and seed give
    identical results. Unknown activities or pools, a capacity below 1 or a
    bad segment raise ScenarioError naming the problem and the valid names.
    """
    twin, scenario = as_twin(twin), as_scenario(scenario)
    if not 10 <= cases <= MAX_CASES:
        raise ScenarioError(f"cases must be between 10 and {MAX_CASES}, got {cases}")
    if not 1 <= replications <= MAX_REPLICATIONS:
        raise ScenarioError(
            f"replications must be between 1 and {MAX_REPLICATIONS}, got {replications}"
        )
    m = _model(twin)
    capacity, autos = _compile(twin, m, scenario)
    base_runs, what_runs, deltas, pcts = [], [], [], []
    for r in range(replications):
        rng = np.random.default_rng([seed, r])
        cs = _sample_cases(m, rng, cases)
        base = _run(m, cs, m.capacity, {})
        what = base if isinstance(scenario, AsIs) else _run(m, cs, capacity, autos)
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
        warmup_cases=int(cases * WARMUP_SHARE),
        capacity_as_is=dict(zip(m.pools, m.capacity, strict=True)),
        capacity_what_if=dict(zip(m.pools, capacity, strict=True)),
        as_is=_kpis(base_runs),
        what_if=_kpis(what_runs),
        delta=_kpis(deltas),
        predicted_delta_pct=_estimate(pcts),
        treated_share=_estimate([w["treated_share"] for w in what_runs]),
        observed=twin.observed,
        notes=notes,
    )
