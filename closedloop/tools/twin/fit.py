"""Fit a process twin (a discrete-event simulation model) from an event frame.

The twin is plain data (:class:`~closedloop.tools.twin.process_twin.ProcessTwin`,
a pydantic model, JSON round-trip safe) that
:mod:`closedloop.tools.twin.simulate` runs and :mod:`closedloop.tools.optimize.staffing`
reasons about. What it holds and how each part is estimated:

- **Arrivals**: a weekly calendar of arrival rates (cases per hour for each
  hour of the week, :func:`~closedloop.tools.twin.calendar.arrival_rates`)
  and the empirical gaps between case starts measured in *expected
  arrivals* under that calendar, so the engine reproduces both the weekly
  rhythm and the burstiness. Logs shorter than two weeks get a flat rate.
- **Routing**: start probabilities, a first-order chain (``transitions``)
  and history-aware contexts (previous activity, visit count) with back-off
  (:mod:`closedloop.tools.twin.routing`), so loops keep their real lengths;
  a step still pending at the log's end weighs on the outcomes that took longer
  than it has waited (Kaplan-Meier), and so do the delays of those outcomes.
- **Times per activity** (:mod:`closedloop.tools.twin.frame`): processing
  time (complete - start, or estimated from the resource's previous
  completion when the log has no starts) fitted with the best of lognormal,
  gamma, exponential and empirical by cross-validated Wasserstein distance
  (:mod:`closedloop.tools.twin.distributions`); waiting split into
  resource contention and extraneous delay.
- **Pools** (:mod:`closedloop.tools.twin.pools`): per activity, per
  ``org:group``, or shared between activities with similar resource
  profiles (``pooling="profiles"``); each with a capacity (median distinct
  resources per week, raised when the load needs it) and a working calendar
  (hours of the week it works).
- **Extraneous delay**: an M/G/c queue (Allen-Cunneen) at the pool's capacity
  and on-shift load says how much of the observed waiting is queueing (the
  engine produces that itself); the rest is extraneous delay (customers,
  timers), measured in the pool's *working hours* (so a Friday-evening-to-
  Monday wait is not replayed as three days from a Tuesday), per activity and
  per previous activity where the log has enough of them. Where a pool keeps
  working hours and the log shows its busy periods, two alternatives are
  estimated per activity (:mod:`closedloop.tools.twin.elapsed`): the delay up
  to when the case was ready, on the wall clock (a customer's time runs at
  night) or in working hours; an activity takes one when replaying the log's
  own arrivals brings its waits clearly closer to the log's. With start times,
  ``PoolModel.contention_hours`` also reports how much waiting fell while the
  resource that did the work was busy with other work.
- **Capacity**: with ``pooling="profiles"`` and start times (the default for
  such logs), the staff seen per week (a member seen working on k cases at
  once, such as a carrier, counts k times), at most the peak number of
  intervals ever open at once (even when stretched: the log's queues are real), and
  the extraneous delay is the waiting in working hours while a member was
  free (:mod:`closedloop.tools.twin.occupancy`); otherwise at least the staff
  seen, raised until utilisation <= 85 % and the analytic queue wait stays
  within the observed waiting (a warning says so). A member who works only
  some of the pool's hours (a part-timer, :mod:`closedloop.tools.twin.members`)
  counts only in them (``PoolModel.hourly_capacity``), and their tasks' work
  is read in their own hours.
- **Working time**: processing counts only the pool's working hours (its
  calendar), or the member's own where their starts tell them
  (:func:`~closedloop.tools.twin.members.own_hours`), so a task left open
  overnight or over a weekend is not read as work and fitting does not
  inflate capacity; the engine runs it on the pool's calendar
  (``ProcessTwin.processing_clock == "working"``).
- **Queue discipline** (:mod:`closedloop.tools.twin.discipline`): first come,
  first served, unless the log shows a case segment passing the others in the
  queues (then that segment goes first); a step the same person starts the
  moment the previous one ends, in nearly every case (``carry_on_pairs``, e.g.
  an escalation right after triage), is not queued again.
- **Case attributes**: joint samples (one dict per case, ``case:`` prefix
  dropped) so segment conditions can be evaluated on realistic combinations.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd

from closedloop.tools.log.columns import ACTIVITY, CASE, COMPLETE, RESOURCE, START
from closedloop.tools.twin.calendar import (
    HOURS_PER_WEEK,
    MIN_EVENTS_FOR_POOL_CALENDAR,
    WeeklyClock,
    arrival_rates,
    daily_window_slots,
    describe_slots,
    week_epoch,
    working_slots,
)
from closedloop.tools.twin.censoring import detect_censoring, expected_visits, open_cases
from closedloop.tools.twin.discipline import discover_queue_priority
from closedloop.tools.twin.distributions import fit_duration
from closedloop.tools.twin.elapsed import choose_delays, imputed_delays, wall_clock_bounds
from closedloop.tools.twin.frame import (
    HOUR,
    case_attributes,
    contention_hours,
    prepare,
    sample,
    split_times,
)
from closedloop.tools.twin.members import hourly_capacity, own_hours, part_timers
from closedloop.tools.twin.occupancy import IdleClock, member_slots, peak_busy
from closedloop.tools.twin.pools import (
    MIN_POOL_SHARE,
    instance_pools,
    resource_names,
    shares,
    weekly_resources,
)
from closedloop.tools.twin.process_twin import ActivityModel, ObservedKpis, PoolModel, ProcessTwin
from closedloop.tools.twin.queueing import MAX_UTILISATION, queue_wait_hours, stable_capacity
from closedloop.tools.twin.routing import START as ROUTE_START
from closedloop.tools.twin.routing import carry_on_pairs, discover_routing, parallel_pairs
from closedloop.tools.twin.survival import redistributed_weights, reweighted

__all__ = ["Pooling", "fit_twin"]
# Also importable from here for callers written before the facade (tests/test_twin_cli.py);
# new code imports it from closedloop.tools.twin.
__all__ += ["ProcessTwin"]

MIN_DELAY_CONTEXT = 30  # instances needed to keep a delay distribution per previous activity
Pooling = Literal["auto", "activity", "profiles"]


def _arrivals(
    case_start: pd.Series, warnings: list[str], cycle: np.ndarray
) -> tuple[np.ndarray, list[float] | None, np.ndarray]:
    """Gaps (hours), arrival rates per hour of week, gaps in expected arrivals."""
    starts = case_start.sort_values()
    epoch = week_epoch(starts.iloc[0].floor("us").to_pydatetime())
    hours = ((starts - pd.Timestamp(epoch)) / HOUR).to_numpy(dtype=float)
    gaps = np.diff(hours)
    if len(starts) < 2:
        gaps = np.array([max(float(cycle.mean()), 1.0)])
        warnings.append(f"only one case: assumed one arrival every {gaps[0]:.3g} hours")
        return gaps, None, np.array([1.0])
    if gaps.mean() <= 0:
        warnings.append("all cases start at the same instant: assumed one arrival per hour")
        return np.array([1.0]), None, np.array([1.0])
    rates = arrival_rates(starts)
    if rates is None:
        return gaps, None, gaps / gaps.mean()
    units = np.diff(WeeklyClock(rates).forward_many(hours))
    return gaps, rates, units


def _delays(rows: pd.DataFrame, clock: WeeklyClock, keep: float) -> np.ndarray:
    """Extraneous delay of each instance: its waiting in the pool's working hours x ``keep``.

    ``keep`` is the share of the waiting the analytic queue at the pool's
    capacity does not explain (the engine produces that queueing itself).
    """
    a = rows["_h_enabled"].to_numpy(dtype=float)
    b = rows["_h_start"].to_numpy(dtype=float)
    return clock.between(a, b) * keep


def _arrival_weights(
    df: pd.DataFrame, censored: np.ndarray | None, follow: np.ndarray | None
) -> np.ndarray:
    """Per instance, the weight of the step that led to it (1 for a case's first): a step
    still pending at the log's end hands its weight to the longer steps from the same
    activity, so the delays of a slow branch are not read from its quick cases alone."""
    if censored is None or follow is None or not censored.any():
        return np.ones(len(df))
    step = redistributed_weights(follow, censored, df[[ACTIVITY]])
    first = np.r_[True, df[CASE].to_numpy()[1:] != df[CASE].to_numpy()[:-1]]
    return np.where(first, 1.0, np.r_[1.0, step[:-1]])


def _activity(
    name: str,
    arows: pd.DataFrame,
    visits: float,
    rng: np.random.Generator,
    wall_clock: bool,
    clocks: dict[str, WeeklyClock],
) -> ActivityModel:
    """The model of one activity from all its instances (columns set in fit_twin); its
    extraneous delay in the pool's working hours, or on the wall clock with ``wall_clock``.
    ``clocks`` holds each pool's working calendar."""
    proc = arows["_proc"].to_numpy(dtype=float)
    raw, weights = arows["_delay"].to_numpy(dtype=float), arows["_weight"].to_numpy(dtype=float)
    delays = reweighted(raw, weights)
    after = {}
    for prev, idx in arows.groupby("_prev", sort=True).indices.items():
        if len(idx) >= MIN_DELAY_CONTEXT:
            after[str(prev)] = fit_duration(reweighted(raw[idx], weights[idx]), rng)
    pool_shares = shares(arows["_pool"], pd.Series(name, index=arows.index))[name]
    main = max(pool_shares, key=lambda p: (pool_shares[p], p))
    # A pool too rare to get a share of this activity hands its instances to the main pool,
    # which does them in the simulation: their processing times stay in the sample, read in
    # the main pool's working hours (in their own pool's, a task paused overnight by someone
    # with no calendar of their own would be stretched over the main pool's nights again).
    served = arows["_pool"].where(arows["_pool"].isin(list(pool_shares)), main)
    moved = (served != arows["_pool"]).to_numpy()
    if moved.any():
        proc = proc.copy()
        proc[moved] = clocks[main].between(
            arows["_h_start"].to_numpy()[moved], arows["_h_end"].to_numpy()[moved]
        )
    by_pool, pool_after = {}, {}
    if len(pool_shares) > 1:
        for pool, idx in served.groupby(served, sort=True).indices.items():
            if len(idx) >= MIN_DELAY_CONTEXT:
                by_pool[str(pool)] = fit_duration(proc[idx], rng)
        pool_after = shares(arows["_pool"], arows["_prev"], MIN_DELAY_CONTEXT)
    return ActivityModel(
        name=name,
        pool=main,
        count=len(arows),
        visits_per_case=visits,
        mean_processing_hours=float(proc.mean()),
        mean_waiting_hours=float(arows["_wait"].mean()),
        mean_delay_hours=float(delays.mean()),
        processing_hours=sample(proc, rng),
        delay_hours=sample(delays, rng),
        processing=fit_duration(proc, rng),
        delay=fit_duration(delays, rng),
        delay_after=after,
        delay_clock="wall" if wall_clock else "working",
        pool_shares=pool_shares if len(pool_shares) > 1 else {},
        pool_after=pool_after,
        processing_by_pool=by_pool,
    )


def _calendar_times(rows: pd.DataFrame, has_starts: bool) -> tuple[np.ndarray, np.ndarray]:
    """Start and enabled hours of the instances that show when a pool works.

    With start times, an instance that took no time (a record logged as work ends, such as
    a rejection noted at 17:02 after an approval begun at 16:50) shows no one at work then.
    """
    worked = (rows["_h_end"] > rows["_h_start"]).to_numpy() if has_starts else None
    if worked is None or not worked.any():
        return rows["_h_start"].to_numpy(), rows["_h_enabled"].to_numpy()
    return rows["_h_start"].to_numpy()[worked], rows["_h_enabled"].to_numpy()[worked]


def _part_timers(
    rows: pd.DataFrame, parallel: dict[str, int], slots: list[bool], rng: np.random.Generator
) -> dict[str, list[int]]:
    """The pool's members who work only some of its hours -> those hours (members.py)."""
    worked = (rows["_h_end"] > rows["_h_start"]).to_numpy() & (rows[RESOURCE] != "").to_numpy()
    w = rows[worked]
    return part_timers(w[RESOURCE].to_numpy(), w[ACTIVITY].to_numpy(), parallel,
                       w["_h_enabled"].to_numpy(), w["_h_start"].to_numpy(),
                       w["_h_end"].to_numpy(), slots, rng)  # fmt: skip


def _members_hours(rows: pd.DataFrame, slots: list[bool], part_time: dict[str, list[int]],
                   observed: bool) -> dict[str, list[int]]:  # fmt: skip
    """Members whose own hours differ from the pool's: where their starts tell them
    (members.own_hours), else a part-timer's hours."""
    if not observed:
        return {}
    pool_hours = [h for h in range(HOURS_PER_WEEK) if slots[h]]
    worked = (rows["_h_end"] > rows["_h_start"]).to_numpy() & (rows[RESOURCE] != "").to_numpy()
    starts, who = rows["_h_start"].to_numpy()[worked], rows[RESOURCE].to_numpy()[worked]
    out = {}
    for member in pd.unique(who):
        hours = own_hours(starts[who == member]) or part_time.get(str(member))
        if hours is not None and hours != pool_hours:
            out[str(member)] = hours
    return out


def fit_twin(
    frame: pd.DataFrame,
    seed: int = 0,
    pooling: Pooling = "auto",
    censor: bool = True,
    delay_readings: dict[str, str] | None = None,
) -> ProcessTwin:
    """Fit a process twin (simulation model) from a canonical event frame.

    ``frame`` has one row per activity instance with columns
    ``case:concept:name``, ``concept:name``, ``time:timestamp`` (UTC completion),
    optionally ``start_timestamp`` (UTC start; equal to completion when
    unknown), ``org:resource``, ``org:group`` and ``case:<attribute>`` columns.
    ``seed`` only drives subsampling and cross-validation splits, so the same
    frame and seed give the same twin. ``pooling``: "auto" (default: profiles
    when the log names resources, else activity), "profiles" (resources with
    similar work form one shared pool; an activity may be shared by pools),
    or "activity" (one resource pool per activity, or per ``org:group``).
    Processing times count only the working hours of the pool's calendar.
    With ``censor`` (default) cases still open at the log's end
    (:mod:`closedloop.tools.twin.censoring`) are not read as finished: their
    last step is not a step to the end, visits per case (and so each pool's
    load) come from the routing chain, and they are kept as the twin's
    ``open_cases`` (the backlog a forward simulation can start from).
    ``delay_readings`` (activity -> "wall" or "ready"), when given, is how each activity's
    extraneous delay is read, instead of choosing it by replaying the log (a bootstrap refit
    keeps its parent's choice and skips those replays).

    Returns a :class:`ProcessTwin` with arrival calendar, history-aware
    routing, fitted processing and delay distributions, resource pools with
    capacity and working calendar, case attribute samples for segments and
    the observed KPIs (mean/p50/p90 cycle time, waiting, throughput).
    Anything that had to be assumed (a single case, no resources, raised
    capacities) is listed in ``warnings``. Raises ScenarioError for an empty
    frame and EventLogError for missing columns.
    """
    rng = np.random.default_rng(seed)
    df, warnings = prepare(frame)
    has_starts = bool((df[COMPLETE] > df[START]).mean() >= 0.05)
    if not has_starts:
        warnings.append(
            "no start times: processing estimated as time since max(enabled, resource's previous completion)"
        )
    enabled, start = split_times(df, has_starts)
    df["_enabled"], df["_start"] = enabled, start
    df["_proc"] = ((df[COMPLETE] - start) / HOUR).clip(lower=0).to_numpy(dtype=float)
    df["_wait"] = ((start - enabled) / HOUR).clip(lower=0).to_numpy(dtype=float)
    df["_prev"] = df.groupby(CASE, sort=False)[ACTIVITY].shift(1).fillna(ROUTE_START)

    by_case = df.groupby(CASE, sort=False)
    case_start = by_case[START].min()
    cycle = ((by_case[COMPLETE].max() - case_start) / HOUR).to_numpy(dtype=float)
    n_cases = len(case_start)
    gaps, rates, units = _arrivals(case_start, warnings, cycle)
    mean_gap = float(gaps.mean())
    span = float((df[COMPLETE].max() - df[START].min()) / HOUR)
    how = case_start.dt.day_of_week.to_numpy() * 24 + case_start.dt.hour.to_numpy()
    profile = np.bincount(how, minlength=HOURS_PER_WEEK) / n_cases

    cens = detect_censoring(df) if censor else None
    censored = cens.censored if cens is not None else None
    follow = cens.follow if cens is not None else None
    starts, transitions, contexts = discover_routing(
        df[CASE].to_numpy(dtype=object), df[ACTIVITY].to_numpy(dtype=object), censored, follow
    )
    df["_weight"] = _arrival_weights(df, censored, follow)
    act_count = df[ACTIVITY].value_counts()
    visits = {str(a): float(c) / n_cases for a, c in act_count.items()}
    if cens is not None and cens.open_case_ids:
        chain = expected_visits(starts, transitions)
        if chain is not None:
            visits.update({a: v for a, v in chain.items() if a in visits})
        warnings.append(
            f"{len(cens.open_case_ids)} case(s) still open at the log's end (last event within "
            f"{cens.horizon_hours:.3g} h of it, no end activity): censored, not read as finished"
        )
    if len(transitions) == 1:
        warnings.append("the log has a single activity")
    if not df["_proc"].any() and not df["_wait"].any():
        warnings.append("all durations are zero: every simulated cycle time will be zero")

    named = df[RESOURCE] != ""
    # without start times busy periods are guesses, and shared pools would rest on them
    mode = (
        pooling if pooling != "auto" else ("profiles" if has_starts and named.any() else "activity")
    )
    df["_pool"] = instance_pools(df, mode)
    df["_busy"] = contention_hours(df, enabled, start) if has_starts else np.nan
    week = df[COMPLETE].dt.tz_localize(None).dt.to_period("W")
    epoch = pd.Timestamp(week_epoch(df[START].min().floor("us").to_pydatetime()))
    df["_h_start"] = ((start - epoch) / HOUR).to_numpy(dtype=float)
    df["_h_enabled"] = ((enabled - epoch) / HOUR).to_numpy(dtype=float)
    df["_h_end"] = ((df[COMPLETE] - epoch) / HOUR).to_numpy(dtype=float)
    df["_proc_wall"] = df["_proc"]
    span_start, span_end = float(df["_h_start"].min()), float(df["_h_end"].max())
    overall = working_slots(*_calendar_times(df, has_starts))

    pools: dict[str, PoolModel] = {}
    clocks: dict[str, WeeklyClock] = {}
    case_rate = 1.0 / mean_gap
    unstaffed: list[str] = []
    df["_delay"] = 0.0
    df["_wall_delay"] = np.nan
    df["_ready_delay"] = np.nan
    wall_rng = np.random.default_rng([seed, 11])  # its own stream: other draws stay as they were
    member_rng = np.random.default_rng([seed, 13])  # its own stream, as above
    for pool, rows in df.groupby("_pool", sort=True):
        pool = str(pool)
        hourly: list[int] | None = None  # servers per hour, when part-timers make it vary
        staffed: float  # servers on shift on average
        times = _calendar_times(rows, has_starts)
        slots = (
            working_slots(*times, MIN_EVENTS_FOR_POOL_CALENDAR)
            or daily_window_slots(*times)
            or overall
            or [True] * HOURS_PER_WEEK
        )
        clock = clocks[pool] = WeeklyClock([1.0 if s else 0.0 for s in slots])
        on_hours = int(sum(slots))
        mine = (rows[RESOURCE] != "").to_numpy()
        observed_busy = mode == "profiles" and has_starts and bool(mine.any())
        b_s, b_e = rows["_h_start"].to_numpy()[mine], rows["_h_end"].to_numpy()[mine]
        # a member working on k cases at once counts k times
        parallel = member_slots(rows[RESOURCE].to_numpy()[mine], b_s, b_e) if observed_busy else {}
        part_time = _part_timers(rows, parallel, slots, member_rng) if observed_busy else {}
        # work counts only in working hours (the member's own where their starts tell them,
        # else the pool's): a task left open overnight is not work
        p_proc = clock.between(rows["_h_start"].to_numpy(), rows["_h_end"].to_numpy())
        for member, hours in _members_hours(rows, slots, part_time, observed_busy).items():
            theirs = (rows[RESOURCE] == member).to_numpy()
            own = WeeklyClock([1.0 if h in hours else 0.0 for h in range(HOURS_PER_WEEK)])
            p_proc[theirs] = own.between(
                rows["_h_start"].to_numpy()[theirs], rows["_h_end"].to_numpy()[theirs]
            )
        df.loc[rows.index, "_proc"] = p_proc
        mean_s = float(p_proc.mean())
        scv = float(p_proc.var() / mean_s**2) if mean_s > 0 else 0.0
        done = rows[ACTIVITY].value_counts()
        # visits per case from the routing chain: open cases have not made all theirs yet
        pool_visits = sum(visits[str(a)] * n / act_count[a] for a, n in done.items())
        rate = case_rate * pool_visits * HOURS_PER_WEEK / on_hours
        load = rate * mean_s
        estimated = weekly_resources(rows, week)
        observed_wait = float(rows["_wait"].mean())
        if observed_busy and estimated is not None:
            # shared pools with observed busy periods: the staff seen (at most as many as were
            # ever busy at once) is the capacity, even when stretched: raising it would hide
            # the queueing the log shows
            servers = weekly_resources(rows, week, parallel) or estimated
            capacity = max(1, min(servers, peak_busy(b_s, b_e) or servers))
            if capacity > estimated:
                warnings.append(f"pool {pool!r}: capacity {capacity}, not {estimated} (people per "
                                f"week): members work on up to {max(parallel.values())} cases at once")
            hourly = hourly_capacity(capacity, slots, parallel, part_time)
            staffed = capacity
            if hourly is not None:
                staffed = float(np.mean(np.asarray(hourly)[np.asarray(slots)]))
                warnings.append(
                    f"pool {pool!r}: {', '.join(sorted(part_time))} work(s) only some of its "
                    f"hours: {staffed:.2f} of {capacity} servers on shift on average"
                )
            wq = queue_wait_hours(rate, mean_s, scv, capacity)
            if load >= MAX_UTILISATION * staffed:
                warnings.append(
                    f"pool {pool!r}: {staffed:.3g} resources carry a load of {load:.2f} on shift "
                    f"({load / staffed:.0%}): simulated queues build up as in the log"
                )
        else:
            capacity, wq = stable_capacity(rate, mean_s, scv, estimated, observed_wait)
            staffed = capacity
        if estimated is None:
            unstaffed.append(pool)
        elif capacity > estimated and not observed_busy:
            why = []
            if math.ceil(load / MAX_UTILISATION) > estimated:
                why.append(f"utilisation stays <= {MAX_UTILISATION:.0%} (load {load:.2f})")
            if capacity > max(estimated, math.ceil(load / MAX_UTILISATION)):
                why.append(f"queueing stays within the observed waiting ({observed_wait:.3g} h)")
            warnings.append(
                f"pool {pool!r}: capacity raised from {estimated} (resources per week) to "
                f"{capacity} so {' and '.join(why)}"
            )
        if observed_busy and estimated is not None:
            # waiting while a member was free is not queueing for the pool: extraneous delay
            idle = IdleClock(b_s, b_e, capacity, clock, hourly)
            en, st = rows["_h_enabled"].to_numpy(), rows["_h_start"].to_numpy()
            df.loc[rows.index, "_delay"] = idle.free_hours(en, st)
            if on_hours < HOURS_PER_WEEK:  # a delay outside the organisation runs at night too
                # when the case was ready (its delay over) is known up to an interval: impute it
                # on the wall clock, and in working hours (waiting while every member was
                # busy may still have been delay)
                low, high = wall_clock_bounds(en, st, idle)
                w_low, w_high = clock.between(en, en + low), clock.between(en, en + high)
                wall, ready = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
                for act, idx in rows.groupby(ACTIVITY, sort=True).indices.items():
                    if delay_readings is not None and act not in delay_readings:
                        continue  # read the default way: nothing to impute
                    wall[idx] = imputed_delays((low[idx], high[idx]), wall_rng)
                    ready[idx] = imputed_delays((w_low[idx], w_high[idx]), wall_rng)
                df.loc[rows.index, "_wall_delay"] = wall
                df.loc[rows.index, "_ready_delay"] = ready
        else:
            keep = 0.0 if observed_wait <= 0 else min(1.0, max(0.0, 1 - wq / observed_wait))
            df.loc[rows.index, "_delay"] = _delays(rows, clock, keep)
        worked = float(clock.between(np.array([span_start]), np.array([span_end]))[0])
        pools[pool] = PoolModel(
            name=pool,
            activities=sorted(a for a, n in done.items() if n >= MIN_POOL_SHARE * act_count[a]),
            capacity=capacity,
            estimated_capacity=estimated,
            resources=int(rows.loc[rows[RESOURCE] != "", RESOURCE].nunique()),
            arrivals_per_hour=rate,
            mean_processing_hours=mean_s,
            processing_scv=scv,
            offered_load=load,
            utilisation=load / staffed,
            observed_utilisation=(
                float(p_proc[mine].sum()) / (capacity * worked)
                if has_starts and mine.any() and worked > 0
                else None
            ),
            queue_wait_hours=wq,
            working_hours=[h for h in range(HOURS_PER_WEEK) if slots[h]],
            hourly_capacity=hourly,
            part_time={
                m: describe_slots([h in hs for h in range(HOURS_PER_WEEK)])
                for m, hs in sorted(part_time.items())
            },
            calendar=describe_slots(slots) if on_hours < HOURS_PER_WEEK else "always",
            contention_hours=float(rows["_busy"].mean()) if has_starts else None,
            resource_names=resource_names(rows),
        )
    activities = {
        str(act): _activity(str(act), arows, visits[str(act)], rng, False, clocks)
        for act, arows in df.groupby(ACTIVITY, sort=True)
    }
    # the same activities with their delay read up to when each case was ready: on the wall
    # clock, or in working hours. Only the delay changes: instances done in a pool that works
    # always keep their own delay and, above all, their processing times (dropping them lost
    # an activity's slow tail whenever one person doing it had no calendar of their own).
    alternatives: dict[str, dict[str, ActivityModel]] = {"wall": {}, "ready": {}}
    imputed = df["_wall_delay"].notna()
    for act, arows in df.groupby(ACTIVITY, sort=True):
        read = imputed[arows.index]
        if read.sum() >= MIN_DELAY_CONTEXT and arows.loc[read, "_wall_delay"].mean() > 0:
            for name, col in (("wall", "_wall_delay"), ("ready", "_ready_delay")):
                if delay_readings is not None and delay_readings.get(str(act)) != name:
                    continue
                alternatives[name][str(act)] = _activity(
                    str(act), arows.assign(_delay=arows[col].fillna(arows["_delay"])),
                    visits[str(act)], wall_rng, name == "wall", clocks)  # fmt: skip

    if unstaffed:
        shown = ", ".join(repr(p) for p in unstaffed[:10]) + (" ..." if len(unstaffed) > 10 else "")
        warnings.append(
            f"{len(unstaffed)} pool(s) without recorded resources ({shown}): capacity set from "
            "the load" + ("" if has_starts else "; their time counts as delay, not work")
        )
    attr_names, attr_rows = case_attributes(df, rng)
    priority = (
        discover_queue_priority(df, attr_names, "_h_enabled", "_h_start", "_pool")
        if has_starts else None
    )  # fmt: skip
    per_case_wait = by_case["_wait"].sum().to_numpy(dtype=float)
    per_case_proc = by_case["_proc_wall"].sum().to_numpy(dtype=float)
    observed = ObservedKpis(
        cases=n_cases,
        mean_cycle_time_hours=float(cycle.mean()),
        p90_cycle_time_hours=float(np.percentile(cycle, 90)),
        p50_cycle_time_hours=float(np.percentile(cycle, 50)),
        mean_waiting_hours=float(per_case_wait.mean()),
        mean_processing_hours=float(per_case_proc.mean()),
        throughput_per_day=24.0 * n_cases / span if span > 0 else 0.0,
        open_cases=len(cens.open_case_ids) if cens is not None else 0,
    )
    twin = ProcessTwin(
        n_cases=n_cases,
        n_events=len(df),
        span_hours=span,
        has_start_times=has_starts,
        mean_interarrival_hours=mean_gap,
        interarrival_hours=sample(gaps, rng),
        arrival_profile=[round(float(p), 6) for p in profile],
        start_probabilities=starts,
        transitions=transitions,
        activities=activities,
        pools=pools,
        max_case_length=int(by_case.size().max()),
        case_attributes=attr_names,
        case_attribute_samples=attr_rows,
        observed=observed,
        warnings=warnings,
        pooling=mode,
        processing_clock="working",
        first_case_start=case_start.min().floor("us").to_pydatetime(),
        arrival_rates=rates,
        arrival_gap_units=sample(units, rng),
        routing_contexts=contexts,
        parallel_pairs=parallel_pairs(df) if has_starts else [],
        carry_on_pairs=carry_on_pairs(df) if has_starts else [],
        log_end=df[COMPLETE].max().floor("us").to_pydatetime(),
        end_activities=cens.end_activities if cens is not None else [],
        open_cases=open_cases(df, cens, attr_names) if cens is not None else [],
        queue_priority=priority,
    )
    if not any(alternatives.values()):
        return twin
    if delay_readings is None:
        arrivals = np.sort(df.groupby(CASE, sort=False)["_h_start"].min().to_numpy(dtype=float))
        observed_wait = df.groupby(ACTIVITY)["_wait"].mean().to_dict()
        chosen = choose_delays(twin, alternatives, arrivals, observed_wait, seed)
    else:
        chosen = {a: n for a, n in delay_readings.items() if a in alternatives.get(n, {})}
    twin.delay_readings = dict(sorted(chosen.items()))  # type: ignore[assignment]
    for name, why in (("wall", "runs on the wall clock (nights and weekends too)"),
                      ("ready", "lasts until the case was ready, members busy or not")):  # fmt: skip
        acts = sorted(a for a, n in chosen.items() if n == name)
        twin.activities.update({a: alternatives[name][a] for a in acts})
        if acts:
            twin.warnings.append(
                f"extraneous delay before {', '.join(acts)} {why}: replaying the log's own "
                "arrivals, the waits there come closer to the log's than with the delay read "
                "as the working hours in which a member was free"
            )
    return twin
