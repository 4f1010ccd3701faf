"""Simulate forward from a moment: the backlog open then, new arrivals, observed up to an end.

:func:`simulate_forward` is what a forecast from a log cut at ``start``
looks like: the twin's open cases (``ProcessTwin.open_cases``, each resumed
after the activity it completed last) are in the system at ``start``, new
cases arrive on the twin's calendar, and the simulated cases that started at
or after ``start`` are observed the way a log cut at ``until`` shows them
(steps completed by then; a case's cycle time from its first recorded start
to its last recorded end, open cases as far as they got).

:func:`simulate_horizon` is the what-if over the horizon a change is judged
on: from the log's end with its backlog, as-is and scenario on the same
cases (common random numbers), the cases that *arrive* within
``horizon_hours`` followed until they finish or a drain period ends (cases
still open then count with their age so far), the way a before/after
measurement of the next days sees them; new cases keep arriving during the
drain, so the window's cases compete with them as they would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from closedloop.tools.errors import ScenarioError
from closedloop.tools.twin.calendar import hours_since, week_epoch
from closedloop.tools.twin.engine import RunOutput, run
from closedloop.tools.twin.kpis import (
    aggregate_kpis,
    estimate,
    kpi_difference,
    run_kpis,
    staffed_clocks,
)
from closedloop.tools.twin.model import EngineModel, Settings, compile_twin
from closedloop.tools.twin.process_twin import ProcessTwin, as_twin
from closedloop.tools.twin.rerouting import routed_rows
from closedloop.tools.twin.routing import START as ROUTE_START
from closedloop.tools.twin.scenarios import AsIs, Scenario, as_scenario, compile_scenario
from closedloop.tools.twin.simulate import MAX_REPLICATIONS, SimulationResult
from closedloop.tools.twin.steps import Cases, draw_cases

__all__ = [
    "DRAIN_HOURS",
    "ForwardRun",
    "forward_cycle_hours",
    "forward_pairs",
    "simulate_forward",
    "simulate_horizon",
]

MAX_FORWARD_CASES = 200_000
SLACK = 1.5  # more arrivals drawn than expected, so the window is always filled
DRAIN_HOURS = 7 * 24.0  # cases of the horizon are followed this long after it (as the harness does)


@dataclass
class ForwardRun:
    """What a log cut at ``until`` would show of the cases started in the window."""

    mean_cycle_hours: float  # nan when no case started in the window
    cases: int
    open_at_end: int
    backlog: int


def _check_horizon(horizon_hours: float, drain_hours: float) -> None:
    if horizon_hours <= 0 or drain_hours < 0:
        raise ScenarioError(
            f"horizon must be > 0 and drain >= 0 hours, got {horizon_hours}, {drain_hours}"
        )


def _draw_size(m: EngineModel, t0: float, t1: float) -> int:
    """How many arrivals to draw from ``t0`` so that [t0, t1) is always filled."""
    clock = m.arrival_clock
    expected = (clock.forward(t1) - clock.forward(t0)) / max(float(m.arrival_units.mean()), 1e-9)
    return int(min(MAX_FORWARD_CASES, max(10, SLACK * expected + 20)))


def _backlog(
    twin: ProcessTwin, index: dict[str, int], rng: np.random.Generator
) -> tuple[list[tuple[int, int, int]], list[int]]:
    """The open cases the engine can resume, oldest first (queues stay first come, first
    served), and for each an attribute row like its own (same values, else same queue class)."""
    resume, rows = [], []
    samples = twin.case_attribute_samples
    by_values: dict[tuple, list[int]] = {}
    for i, row in enumerate(samples):
        by_values.setdefault(_values(row, twin.case_attributes), []).append(i)
    served_first = _served_first(twin)
    for oc in sorted(twin.open_cases, key=lambda oc: oc.since):
        if oc.activity not in index:
            continue
        prev = index.get(oc.previous, -1) if oc.previous not in (None, ROUTE_START) else -1
        resume.append((prev, index[oc.activity], oc.visit))
        like = (
            by_values.get(_values(oc.attributes, twin.case_attributes)) if oc.attributes else None
        )
        if not like and served_first is not None and oc.attributes:
            first = served_first(oc.attributes)
            like = [i for i, r in enumerate(samples) if served_first(r) == first]
        rows.append(int(rng.choice(like)) if like else int(rng.integers(0, max(len(samples), 1))))
    return resume, rows


def _values(row: dict[str, Any], names: list[str]) -> tuple:
    return tuple(str(row.get(n)) for n in names)


def _served_first(twin: ProcessTwin) -> Callable[[dict[str, Any]], bool] | None:
    q = twin.queue_priority
    return None if q is None else (lambda row: str(row.get(q.attribute)) == str(q.value))


def simulate_forward(
    twin: ProcessTwin,
    start: datetime,
    until: datetime,
    seed: int = 0,
    replication: int = 0,
    backlog: bool = True,
    scenario: Scenario | None = None,
    arrivals: list[datetime] | None = None,
    arrivals_until: datetime | None = None,
) -> ForwardRun:
    """One forward run from ``start`` (with the open cases as backlog) observed up to ``until``.

    ``arrivals`` replays these case arrival times instead of drawing them from the twin's
    calendar (a backtest that judges the process model apart from the arrival forecast).
    ``arrivals_until`` (default ``until``) ends the drawn arrivals earlier: a log extracted
    by case start admits no case after its last one, though its events go on.
    """
    m = compile_twin(twin)
    settings = compile_scenario(twin, m, scenario if scenario is not None else AsIs())
    epoch = week_epoch(start)
    t0, t1 = hours_since(epoch, start), hours_since(epoch, until)
    given = None if arrivals is None else np.sort([hours_since(epoch, a) for a in arrivals])
    t_admit = t1 if arrivals_until is None else min(t1, hours_since(epoch, arrivals_until))
    cases, nb = _cases(twin, m, t0, t_admit, seed, replication, backlog, given)
    out = run(m, settings, cases, 0)
    st = out.steps
    steps = pd.DataFrame({"case": st.case, "start": out.step_start, "end": out.step_end})
    steps = steps[(steps["case"] >= nb) & (steps["end"] <= t1)]
    if not twin.has_start_times:
        steps["start"] = steps["end"]  # the log shows completions only
    by_case = steps.groupby("case")
    first, last = by_case["start"].min(), by_case["end"].max()
    inside = first[(first >= t0) & (first < t1)].index
    cycle = (last[inside] - first[inside]).to_numpy(dtype=float)
    ends = out.end[inside.to_numpy(dtype=np.int64)] if len(inside) else np.zeros(0)
    return ForwardRun(
        mean_cycle_hours=float(cycle.mean()) if len(cycle) else float("nan"),
        cases=len(cycle),
        open_at_end=int((ends > t1).sum()),
        backlog=nb,
    )


def _cases(
    twin: ProcessTwin,
    m: EngineModel,
    t0: float,
    t_end: float,
    seed: int,
    replication: int,
    backlog: bool,
    given: np.ndarray | None = None,
) -> tuple[Cases, int]:
    """The backlog at ``t0`` (if asked) and the new cases arriving before ``t_end`` (drawn, or
    at the ``given`` hours)."""
    if given is None:
        new = draw_cases(m, _draw_size(m, t0, t_end), t0, (seed, replication))
    else:
        new = draw_cases(m, len(given), t0, (seed, replication))
        new.arrivals = np.asarray(given, dtype=float)
    keep = int(np.searchsorted(new.arrivals, t_end, side="left"))
    rng = np.random.default_rng([seed, replication, 7])
    resume, rows = (
        _backlog(twin, {a: i for i, a in enumerate(m.acts)}, rng) if backlog else ([], [])
    )
    nb = len(resume)
    cases = Cases(
        arrivals=np.r_[np.full(nb, t0), new.arrivals[:keep]],
        rows=rows + new.rows[:keep],
        u_share=rng.random(nb).tolist() + new.u_share[:keep],
        seed=(seed, replication),
        resume=[*resume, *([None] * keep)],
    )
    return cases, nb


def _window(out: RunOutput, first: int, t0: float, t1: float, t2: float) -> RunOutput:
    """The run restricted to the cases arriving in [t0, t1), each followed up to t2."""
    arr = out.arrivals[first:]
    sel = first + np.flatnonzero((arr >= t0) & (arr < t1))
    return replace(
        out,
        arrivals=out.arrivals[sel],
        end=np.minimum(out.end[sel], t2),
        wait=out.wait[sel],
        delay=out.delay[sel],
        cost=out.cost[sel],
        treated=out.treated[sel],
        rework=out.rework[sel],
        warm=0,
    )


def forward_cycle_hours(
    twin: ProcessTwin,
    horizon_hours: float,
    drain_hours: float = DRAIN_HOURS,
    replications: int = 5,
    seed: int = 0,
    start: datetime | None = None,
    scenario: Scenario | None = None,
) -> list[np.ndarray]:
    """Per replication, the cycle hours of the cases arriving in ``horizon_hours`` from ``start``.

    The same forward run as :func:`simulate_horizon` (the twin's backlog at
    ``start``, default the log's end, then new arrivals; ``scenario`` default
    as-is), each case followed until it ends or ``drain_hours`` after the
    horizon (then its age so far). For a measurement that needs per-case
    values, e.g. a restricted mean capped at its own censoring horizon.
    """
    twin = as_twin(twin)
    moment = start or twin.log_end
    if moment is None:
        raise ScenarioError("the twin has no log end to simulate forward from; give a start")
    _check_horizon(horizon_hours, drain_hours)
    m = compile_twin(twin)
    settings = compile_scenario(twin, m, as_scenario(scenario) if scenario else AsIs())
    t0 = hours_since(week_epoch(moment), moment)
    t1, t2 = t0 + horizon_hours, t0 + horizon_hours + drain_hours
    out_hours = []
    for r in range(replications):
        cases, nb = _cases(twin, m, t0, t2, seed, r, True)
        view = _window(run(m, settings, cases, nb), nb, t0, t1, t2)
        out_hours.append(view.end - view.arrivals)
    return out_hours


@dataclass
class ForwardPair:
    """One forward replication run as-is and with a scenario on the same cases: the cases
    arriving in the horizon (their attribute rows and share draws) and their cycle hours in
    each run, cut at the drain's end."""

    rows: np.ndarray
    u_share: np.ndarray
    as_is_hours: np.ndarray
    changed_hours: np.ndarray
    arrival_hours: np.ndarray | None = None  # since the twin's week epoch (forward_hours)
    toggled_hours: np.ndarray | None = None  # with the change on in the on-blocks only


def forward_hours(twin: ProcessTwin, moments: Sequence[datetime]) -> np.ndarray:
    """Hours since the week epoch of the twin's log end, the clock of the forward runs."""
    if twin.log_end is None:
        raise ScenarioError("the twin has no log end to simulate forward from")
    epoch = week_epoch(twin.log_end)
    return np.array([hours_since(epoch, m) for m in moments], dtype=float)


def _drawn_after(m: EngineModel, t1: float, t2: float, seed: tuple[int, ...]) -> np.ndarray:
    """Arrival hours in [t1, t2) drawn from the twin's arrival calendar."""
    drawn = draw_cases(m, _draw_size(m, t1, t2), t1, seed).arrivals
    return drawn[drawn < t2]


def forward_pairs(
    twin: ProcessTwin,
    scenario: Scenario,
    horizon_hours: float,
    drain_hours: float = DRAIN_HOURS,
    replications: int = 5,
    seed: int = 0,
    arrivals: Sequence[datetime] | None = None,
    blocks: Sequence[tuple[datetime, datetime, bool]] | None = None,
) -> list[ForwardPair]:
    """Per replication, the cases arriving in ``horizon_hours`` from the log's end, run as-is
    and with ``scenario`` on the same draws (backlog included), as :func:`forward_cycle_hours`
    follows them: for a measurement that compares cohorts of those cases. ``arrivals`` replays
    the window's observed arrival times (the drain's arrivals are still drawn): a measurement
    that saw them need not carry the luck of how many cases came. With ``blocks`` (start, end,
    on) a third run has the change on only for the cases arriving in on-blocks, as a
    switchback trial toggles it (the backlog as the first block, cases after the last block as
    the last): its skips and automations, the changes a case-level toggle can carry."""
    twin, scenario = as_twin(twin), as_scenario(scenario)
    if twin.log_end is None:
        raise ScenarioError("the twin has no log end to simulate forward from")
    _check_horizon(horizon_hours, drain_hours)
    m = compile_twin(twin)
    base_s = Settings(capacity=m.capacity, router=m.router)
    what_s = compile_scenario(twin, m, scenario)
    epoch = week_epoch(twin.log_end)
    t0 = hours_since(epoch, twin.log_end)
    t1, t2 = t0 + horizon_hours, t0 + horizon_hours + drain_hours
    pairs = []
    seen = (
        None
        if arrivals is None
        else np.sort([h for a in arrivals if t0 <= (h := hours_since(epoch, a)) < t1])
    )
    for r in range(replications):
        given = None if seen is None else np.r_[seen, _drawn_after(m, t1, t2, (seed, r, 5))]
        cases, nb = _cases(twin, m, t0, t2, seed, r, True, given)
        at = np.asarray(cases.arrivals, dtype=float)
        sel = nb + np.flatnonzero((at[nb:] >= t0) & (at[nb:] < t1))
        runs = [base_s, what_s]
        if blocks:
            runs.append(replace(what_s, active=_switched_on(twin, blocks, at, nb)))
        hours = [np.minimum(run(m, s, cases, nb).end[sel], t2) - at[sel] for s in runs]
        pairs.append(
            ForwardPair(
                rows=np.asarray(cases.rows, dtype=np.int64)[sel],
                u_share=np.asarray(cases.u_share, dtype=float)[sel],
                as_is_hours=hours[0],
                changed_hours=hours[1],
                arrival_hours=at[sel],
                toggled_hours=hours[2] if blocks else None,
            )
        )
    return pairs


def _switched_on(twin: ProcessTwin, blocks: Sequence[tuple[datetime, datetime, bool]],
                 arrivals: np.ndarray, backlog: int) -> np.ndarray:
    """Per case, whether the change is on when it arrives: the state of its block, the first
    block's for the backlog and before it, the last block's after it."""
    edges = forward_hours(twin, [b[0] for b in blocks])
    states = np.array([bool(b[2]) for b in blocks])
    at = np.searchsorted(edges, arrivals, side="right") - 1
    on = states[np.clip(at, 0, len(states) - 1)]
    on[:backlog] = states[0]
    return on


def simulate_horizon(
    twin: ProcessTwin,
    scenario: Scenario,
    horizon_hours: float,
    drain_hours: float = DRAIN_HOURS,
    replications: int = 5,
    seed: int = 0,
    sla_hours: float | None = None,
    start: datetime | None = None,
    backlog: bool = True,
) -> SimulationResult:
    """As-is and ``scenario`` from ``start`` (default: the log's end) over ``horizon_hours``.

    Each replication runs the twin's open cases (with ``backlog``) and new
    arrivals up to ``horizon_hours + drain_hours`` twice, as-is and with the
    scenario, on the same cases; the KPIs are those of the cases arriving in
    the horizon, their cycle time cut at the drain's end (``cases`` of the
    result: the mean number of them). Returns the same
    :class:`SimulationResult` as :func:`~closedloop.tools.twin.simulate.simulate`
    (``warmup_cases`` = the backlog). ScenarioError for a bad size or a twin
    without a log end.
    """
    twin, scenario = as_twin(twin), as_scenario(scenario)
    moment = start or twin.log_end
    if moment is None:
        raise ScenarioError("the twin has no log end to simulate forward from; give a start")
    _check_horizon(horizon_hours, drain_hours)
    if not 1 <= replications <= MAX_REPLICATIONS or seed < 0:
        raise ScenarioError(f"replications must be 1..{MAX_REPLICATIONS} and seed >= 0")
    m = compile_twin(twin)
    base_s = Settings(capacity=m.capacity, router=m.router)
    what_s = compile_scenario(twin, m, scenario)
    clocks = staffed_clocks(base_s), staffed_clocks(what_s)
    t0 = hours_since(week_epoch(moment), moment)
    t1, t2 = t0 + horizon_hours, t0 + horizon_hours + drain_hours
    runs: tuple[list, list] = ([], [])
    deltas, pcts, sizes, backlogs = [], [], [], []
    for r in range(replications):
        cases, nb = _cases(twin, m, t0, t2, seed, r, backlog)
        kpis = []
        for i, settings in enumerate((base_s, what_s)):
            if i and isinstance(scenario, AsIs):
                kpis.append(kpis[0])
                break
            out = run(m, settings, cases, nb)
            routed = routed_rows(settings)
            if routed is not None:  # a routed case is treated though no step of it is automated
                out.treated = out.treated | routed[np.asarray(cases.rows, dtype=np.int64)]
            view = _window(out, nb, t0, t1, t2)
            if not len(view.arrivals):
                raise ScenarioError(f"no case arrives in the {horizon_hours:g} h horizon")
            kpis.append(run_kpis(m, settings, view, clocks[i], sla_hours))
        for side, k in zip(runs, kpis, strict=True):
            side.append(k)
        deltas.append(kpi_difference(kpis[1], kpis[0]))
        b = kpis[0]["cycle_time_mean_hours"]
        pcts.append(100.0 * (kpis[1]["cycle_time_mean_hours"] - b) / b if b > 0 else 0.0)
        sizes.append(len(view.arrivals))
        backlogs.append(nb)
    notes = list(twin.warnings) + m.notes
    return SimulationResult(
        scenario=scenario,
        cases=int(np.mean(sizes)),
        replications=replications,
        seed=seed,
        warmup_cases=int(np.mean(backlogs)),
        capacity_as_is={p: max(c) for p, c in zip(m.pools, base_s.capacity, strict=True)},
        capacity_what_if={p: max(c) for p, c in zip(m.pools, what_s.capacity, strict=True)},
        as_is=aggregate_kpis(runs[0]),
        what_if=aggregate_kpis(runs[1]),
        delta=aggregate_kpis(deltas),
        predicted_delta_pct=estimate(pcts),
        treated_share=estimate([w["treated_share"] for w in runs[1]]),
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
