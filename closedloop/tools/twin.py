"""Fit a process twin (a small discrete-event simulation model) from an event frame.

The twin is plain data (a pydantic model, JSON-serialisable) that
:mod:`closedloop.tools.simulate` runs and :mod:`closedloop.tools.optimize`
reasons about. What it holds and how each part is estimated:

- **Arrivals**: an empirical sample of gaps between case starts (hours), plus
  an hour-of-week arrival profile (informational; the engine draws gaps i.i.d.
  from the sample).
- **Routing**: a first-order Markov chain over activities from the
  directly-follows relation of each case (ordered by completion time), with a
  start distribution and an ``END`` pseudo-activity.
- **Times per activity**: each activity instance's sojourn (from the moment it
  was enabled, i.e. the previous completion in the case, to its completion) is
  split into *waiting* and *processing*. With start times in the log,
  processing = complete - start. Without them (e.g. helpdesk), the start is
  estimated as ``max(enabled, the resource's previous completion)``, the usual
  resource-availability heuristic (with no resource either, the whole sojourn
  is waiting). Processing times are stored as empirical
  samples (at most 2,000 values each).
- **Pools and capacity**: one pool per activity (or per ``org:group`` when the
  frame has that column). Capacity = median number of distinct resources active
  on the pool's activities per ISO week (min 1), raised when the estimated
  processing times imply a utilisation above 85 % or more queueing than the
  waiting observed in the log (a warning says so).
- **Extraneous delay**: observed waiting is split into queueing (what an
  M/G/c queue at the estimated capacity explains, Allen-Cunneen approximation)
  and extraneous delay (the rest: timers, customers, calendars). The engine
  replays delays from the empirical waiting sample scaled by the unexplained
  share, then queues for the pool, then processes.
- **Case attributes**: joint samples (one dict per case, ``case:`` prefix
  dropped) so segment conditions can be evaluated on realistic combinations.
  Event attributes that never vary within a case count as case attributes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.errors import EventLogError, ScenarioError

CASE = "case:concept:name"
ACTIVITY = "concept:name"
COMPLETE = "time:timestamp"
START = "start_timestamp"
RESOURCE = "org:resource"
GROUP = "org:group"
END = "__END__"
SAMPLE_CAP = 2000
MAX_UTILISATION = 0.85
_HOUR = pd.Timedelta(hours=1)


class ObservedKpis(BaseModel):
    """KPIs measured directly on the event log (per case)."""

    cases: int
    mean_cycle_time_hours: float
    p90_cycle_time_hours: float
    mean_waiting_hours: float = Field(description="total non-processing time per case")
    mean_processing_hours: float
    throughput_per_day: float


class ActivityModel(BaseModel):
    name: str
    pool: str
    count: int
    visits_per_case: float
    mean_processing_hours: float
    mean_waiting_hours: float = Field(description="observed waiting before the activity")
    mean_delay_hours: float = Field(description="part of the waiting modelled as extraneous")
    processing_hours: list[float] = Field(description="empirical sample, <= 2000 values")
    delay_hours: list[float] = Field(description="empirical sample, <= 2000 values")


class PoolModel(BaseModel):
    name: str
    activities: list[str]
    capacity: int
    estimated_capacity: int | None = Field(
        None, description="median distinct resources per week before the stability raise"
    )
    resources: int = Field(description="distinct resources seen on the pool's activities")
    arrivals_per_hour: float
    mean_processing_hours: float
    processing_scv: float = Field(description="squared coefficient of variation")
    offered_load: float = Field(description="mean busy servers = arrivals x processing")
    utilisation: float
    queue_wait_hours: float = Field(description="analytic mean queue wait per visit")


class ProcessTwin(BaseModel):
    """A fitted simulation model of one process (see module docstring)."""

    n_cases: int
    n_events: int
    span_hours: float
    has_start_times: bool
    mean_interarrival_hours: float
    interarrival_hours: list[float]
    arrival_profile: list[float] = Field(
        description="share of arrivals per hour of week, Mon 0h UTC first"
    )
    start_probabilities: dict[str, float]
    transitions: dict[str, dict[str, float]] = Field(
        description=f"next-activity probabilities; '{END}' ends"
    )
    activities: dict[str, ActivityModel]
    pools: dict[str, PoolModel]
    max_case_length: int
    case_attributes: list[str]
    case_attribute_samples: list[dict[str, Any]]
    observed: ObservedKpis
    warnings: list[str] = Field(default_factory=list)

    def pool_of(self, activity: str) -> str:
        return self.activities[activity].pool


def queue_wait_hours(
    arrivals_per_hour: float, mean_service_hours: float, scv: float, servers: int
) -> float:
    """Mean queue wait (hours) of an M/G/c queue, Allen-Cunneen: Wq(M/M/c) * (1 + scv) / 2.

    Returns ``inf`` when the queue is unstable (offered load >= servers).
    """
    load = arrivals_per_hour * mean_service_hours
    if load <= 0 or mean_service_hours <= 0:
        return 0.0
    if servers < 1 or load >= servers:
        return math.inf
    erlang_b = 1.0
    for k in range(1, servers + 1):
        erlang_b = load * erlang_b / (k + load * erlang_b)
    rho = load / servers
    erlang_c = erlang_b / (1 - rho * (1 - erlang_b))
    return erlang_c * mean_service_hours / (servers - load) * (1 + scv) / 2


def _sample(values: np.ndarray, rng: np.random.Generator) -> list[float]:
    if len(values) > SAMPLE_CAP:
        values = values[np.sort(rng.choice(len(values), SAMPLE_CAP, replace=False))]
    return [round(float(v), 6) for v in values]


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, (bool, int, float)):
        return value
    return str(value)[:200]


def _prepare(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    warnings: list[str] = []
    if not isinstance(frame, pd.DataFrame):
        raise ScenarioError("fit_twin needs a pandas DataFrame (the canonical event frame)")
    missing = [c for c in (CASE, ACTIVITY, COMPLETE) if c not in frame.columns]
    if missing:
        raise EventLogError(
            f"event frame lacks required column(s) {missing}; has {list(frame.columns)}"
        )
    if frame.empty:
        raise ScenarioError("event frame is empty: cannot fit a process twin from zero events")
    df = frame.copy()
    df[COMPLETE] = pd.to_datetime(df[COMPLETE], utc=True, errors="coerce")
    df[START] = (
        pd.to_datetime(df[START], utc=True, errors="coerce") if START in df else df[COMPLETE]
    )
    df[START] = df[START].fillna(df[COMPLETE])
    df[START] = df[START].where(df[START] <= df[COMPLETE], df[COMPLETE])
    bad = df[COMPLETE].isna() | df[CASE].isna() | df[ACTIVITY].isna()
    if bad.any():
        warnings.append(f"dropped {int(bad.sum())} event(s) without case, activity or timestamp")
        df = df[~bad]
    if df.empty:
        raise ScenarioError("no event has a case id, an activity and a valid timestamp")
    df[CASE] = df[CASE].astype(str)
    df[ACTIVITY] = df[ACTIVITY].astype(str)
    if (df[ACTIVITY] == END).any():
        raise ScenarioError(f"activity name {END!r} is reserved for the end of a case")
    df[RESOURCE] = df[RESOURCE].fillna("").astype(str) if RESOURCE in df else ""
    df = df.sort_values([CASE, COMPLETE, START], kind="mergesort").reset_index(drop=True)
    return df, warnings


def _split_times(df: pd.DataFrame, has_starts: bool) -> tuple[np.ndarray, np.ndarray]:
    """Processing and waiting hours per activity instance (see module docstring)."""
    prev_end = df.groupby(CASE, sort=False)[COMPLETE].shift(1)
    enabled = prev_end.where(prev_end.notna() & (prev_end <= df[START]), df[START])
    if has_starts:
        start = df[START]
    else:
        by_res = df[df[RESOURCE] != ""].sort_values([RESOURCE, COMPLETE], kind="mergesort")
        res_prev = by_res.groupby(RESOURCE, sort=False)[COMPLETE].shift(1).reindex(df.index)
        start = enabled.where(res_prev.isna() | (res_prev <= enabled), res_prev)
        # no resource and no start: nothing tells work from waiting, so it all counts as delay
        start = start.where(df[RESOURCE] != "", df[COMPLETE])
        start = start.where(start <= df[COMPLETE], df[COMPLETE])
    proc = ((df[COMPLETE] - start) / _HOUR).to_numpy(dtype=float)
    wait = ((start - enabled) / _HOUR).to_numpy(dtype=float)
    return np.clip(proc, 0, None), np.clip(wait, 0, None)


def _routing(df: pd.DataFrame) -> tuple[dict[str, float], dict[str, dict[str, float]], int]:
    acts = df[ACTIVITY].to_numpy(dtype=object)
    cases = df[CASE].to_numpy(dtype=object)
    first = np.r_[True, cases[1:] != cases[:-1]]
    last = np.r_[cases[1:] != cases[:-1], True]
    starts = pd.Series(acts[first]).value_counts(normalize=True)
    nxt = np.where(last, END, np.append(acts[1:], END))
    pairs = pd.DataFrame({"a": acts, "b": nxt}).value_counts()
    transitions: dict[str, dict[str, float]] = {}
    for (a, b), n in pairs.items():
        transitions.setdefault(str(a), {})[str(b)] = float(n)
    for a, row in transitions.items():
        total = sum(row.values())
        transitions[a] = {b: n / total for b, n in sorted(row.items())}
    max_len = int(df.groupby(CASE, sort=False).size().max())
    return {str(k): float(v) for k, v in starts.items()}, transitions, max_len


def _case_attributes(
    df: pd.DataFrame, rng: np.random.Generator
) -> tuple[list[str], list[dict[str, Any]]]:
    cols = [c for c in df.columns if c.startswith("case:") and c != CASE]
    standard = {CASE, ACTIVITY, COMPLETE, START, RESOURCE, GROUP, "lifecycle:transition"}
    others = [
        c for c in df.columns
        if not c.startswith(("case:", "_")) and c not in standard and f"case:{c}" not in cols
    ]  # fmt: skip
    if others:  # event attributes that never vary within a case describe the case
        varying = df.groupby(CASE, sort=False)[others].nunique(dropna=True).max()
        cols += [f"case:{c}" for c in others if varying[c] <= 1]
        df = df.rename(columns={c: f"case:{c}" for c in others if varying[c] <= 1})
    if not cols:
        return [], []
    per_case = df.groupby(CASE, sort=True)[cols].first()
    for c in cols:
        if per_case[c].dtype == object or pd.api.types.is_string_dtype(per_case[c]):
            numeric = pd.to_numeric(per_case[c], errors="coerce")
            if numeric.notna().sum() == per_case[c].notna().sum() and numeric.notna().any():
                per_case[c] = numeric
    if len(per_case) > SAMPLE_CAP:
        per_case = per_case.iloc[np.sort(rng.choice(len(per_case), SAMPLE_CAP, replace=False))]
    names = [c.removeprefix("case:") for c in cols]
    rows = [
        {name: _plain(v) for name, v in zip(names, values, strict=True)}
        for values in per_case.itertuples(index=False, name=None)
    ]
    return names, rows


def fit_twin(frame: pd.DataFrame, seed: int = 0) -> ProcessTwin:
    """Fit a process twin (simulation model) from a canonical event frame.

    ``frame`` has one row per activity instance with columns
    ``case:concept:name``, ``concept:name``, ``time:timestamp`` (UTC completion),
    optionally ``start_timestamp`` (UTC start; equal to completion when
    unknown), ``org:resource``, ``org:group`` and ``case:<attribute>`` columns.
    ``seed`` only drives the subsampling of large samples, so the same frame
    and seed give the same twin.

    Returns a :class:`ProcessTwin` with arrivals, routing probabilities,
    per-activity processing and delay samples, resource pools with estimated
    capacity, case attribute samples for segments and the observed KPIs
    (mean/p90 cycle time, waiting, throughput). Anything that had to be
    assumed (a single case, no resources, raised capacities) is listed in
    ``warnings``. Raises ScenarioError for an empty frame and EventLogError
    for missing columns.
    """
    rng = np.random.default_rng(seed)
    df, warnings = _prepare(frame)
    known = (df[COMPLETE] > df[START]).to_numpy()
    has_starts = bool(known.mean() >= 0.05)
    if not has_starts:
        warnings.append(
            "no start times: processing estimated as time since max(enabled, resource's previous completion)"
        )
    proc, wait = _split_times(df, has_starts)
    df["_proc"], df["_wait"] = proc, wait

    by_case = df.groupby(CASE, sort=False)
    case_start = by_case[START].min()
    cycle = ((by_case[COMPLETE].max() - case_start) / _HOUR).to_numpy(dtype=float)
    n_cases = len(case_start)
    arrivals = np.sort(((case_start - case_start.min()) / _HOUR).to_numpy(dtype=float))
    gaps = np.diff(arrivals)
    span = float((df[COMPLETE].max() - df[START].min()) / _HOUR)
    if n_cases < 2:
        gaps = np.array([max(float(cycle.mean()), 1.0)])
        warnings.append(f"only one case: assumed one arrival every {gaps[0]:.3g} hours")
    elif gaps.mean() <= 0:
        gaps = np.array([1.0])
        warnings.append("all cases start at the same instant: assumed one arrival per hour")
    mean_gap = float(gaps.mean())
    how = case_start.dt.day_of_week.to_numpy() * 24 + case_start.dt.hour.to_numpy()
    profile = np.bincount(how, minlength=168) / n_cases

    starts, transitions, max_len = _routing(df)
    if len(transitions) == 1:
        warnings.append("the log has a single activity")
    if not proc.any() and not wait.any():
        warnings.append("all durations are zero: every simulated cycle time will be zero")

    has_group = GROUP in df.columns and df[GROUP].notna().any()
    pool_of: dict[str, str] = {}
    for act, rows in df.groupby(ACTIVITY, sort=True):
        groups = rows[GROUP].dropna().astype(str) if has_group else pd.Series([], dtype=str)
        groups = groups[groups != ""]
        pool_of[str(act)] = str(groups.mode().iloc[0]) if len(groups) else str(act)
    df["_pool"] = df[ACTIVITY].map(pool_of)
    df["_week"] = df[COMPLETE].dt.tz_localize(None).dt.to_period("W")

    activities: dict[str, ActivityModel] = {}
    pools: dict[str, PoolModel] = {}
    case_rate = 1.0 / mean_gap
    unstaffed: list[str] = []
    for pool, rows in df.groupby("_pool", sort=True):
        pool = str(pool)
        p_proc = rows["_proc"].to_numpy(dtype=float)
        mean_s = float(p_proc.mean())
        scv = float(p_proc.var() / mean_s**2) if mean_s > 0 else 0.0
        rate = case_rate * len(rows) / n_cases
        load = rate * mean_s
        named = rows[rows[RESOURCE] != ""]
        estimated = None
        if len(named):
            estimated = max(1, math.ceil(named.groupby("_week")[RESOURCE].nunique().median()))
        stable = max(1, estimated or 1, math.ceil(load / MAX_UTILISATION))
        observed_wait = float(rows["_wait"].mean())
        capacity, wq = stable, queue_wait_hours(rate, mean_s, scv, stable)
        # the log bounds the queueing: never predict much more than the waiting observed
        while wq > max(observed_wait, 0.1 * mean_s) and capacity < 10 * (estimated or 1) + 10:
            capacity += 1
            wq = queue_wait_hours(rate, mean_s, scv, capacity)
        if estimated is None:
            unstaffed.append(pool)
        elif capacity > estimated:
            why = []
            if stable > estimated:
                why.append(f"utilisation stays <= {MAX_UTILISATION:.0%} (load {load:.2f})")
            if capacity > stable:
                why.append(f"queueing stays within the observed waiting ({observed_wait:.3g} h)")
            warnings.append(
                f"pool {pool!r}: capacity raised from {estimated} (resources per week) to "
                f"{capacity} so {' and '.join(why)}"
            )
        keep = 0.0 if observed_wait <= 0 else min(1.0, max(0.0, 1 - wq / observed_wait))
        pools[pool] = PoolModel(
            name=pool,
            activities=sorted(rows[ACTIVITY].unique().tolist()),
            capacity=capacity,
            estimated_capacity=estimated,
            resources=int(named[RESOURCE].nunique()),
            arrivals_per_hour=rate,
            mean_processing_hours=mean_s,
            processing_scv=scv,
            offered_load=load,
            utilisation=load / capacity,
            queue_wait_hours=wq,
        )
        for act, arows in rows.groupby(ACTIVITY, sort=True):
            a_proc = arows["_proc"].to_numpy(dtype=float)
            a_wait = arows["_wait"].to_numpy(dtype=float)
            activities[str(act)] = ActivityModel(
                name=str(act),
                pool=pool,
                count=len(arows),
                visits_per_case=len(arows) / n_cases,
                mean_processing_hours=float(a_proc.mean()),
                mean_waiting_hours=float(a_wait.mean()),
                mean_delay_hours=float(a_wait.mean() * keep),
                processing_hours=_sample(a_proc, rng),
                delay_hours=_sample(a_wait * keep, rng),
            )

    if unstaffed:
        shown = ", ".join(repr(p) for p in unstaffed[:10]) + (" ..." if len(unstaffed) > 10 else "")
        warnings.append(
            f"{len(unstaffed)} pool(s) without recorded resources ({shown}): capacity set from "
            "the load" + ("" if has_starts else "; their time counts as delay, not work")
        )
    attr_names, attr_rows = _case_attributes(df, rng)
    per_case_wait = by_case["_wait"].sum().to_numpy(dtype=float)
    per_case_proc = by_case["_proc"].sum().to_numpy(dtype=float)
    observed = ObservedKpis(
        cases=n_cases,
        mean_cycle_time_hours=float(cycle.mean()),
        p90_cycle_time_hours=float(np.percentile(cycle, 90)),
        mean_waiting_hours=float(per_case_wait.mean()),
        mean_processing_hours=float(per_case_proc.mean()),
        throughput_per_day=24.0 * n_cases / span if span > 0 else 0.0,
    )
    return ProcessTwin(
        n_cases=n_cases,
        n_events=len(df),
        span_hours=span,
        has_start_times=has_starts,
        mean_interarrival_hours=mean_gap,
        interarrival_hours=_sample(gaps, rng),
        arrival_profile=[round(float(p), 6) for p in profile],
        start_probabilities=starts,
        transitions=transitions,
        activities=activities,
        pools=pools,
        max_case_length=max_len,
        case_attributes=attr_names,
        case_attribute_samples=attr_rows,
        observed=observed,
        warnings=warnings,
    )
