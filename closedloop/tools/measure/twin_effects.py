"""The twin's side of a live measurement: its as-is counterfactual and its predicted interference.

A design that compares with a model needs the model's numbers on the
measured scale. :func:`twin_counterfactual` is the as-is twin's mean cycle time
(capped at the measurement's censoring horizon, so it compares with a restricted
mean); :func:`twin_interference` runs the plan's partial rollout and returns the
twin's total effect per treated case (changed world minus as-is, over every
case) and its own treatment-minus-control difference, the two inputs of
:func:`closedloop.tools.measure.interference_correction`. Both use the engine of
``closedloop.tools.twin`` directly because they need per-case cohorts, which
``simulate`` only aggregates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from scipy import stats

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ScenarioError
from closedloop.tools.measure.effect import CarryOverPrediction, Interval
from closedloop.tools.twin import (
    AsIs,
    Combined,
    ProcessTwin,
    Scenario,
    as_scenario,
    as_twin,
    estimate,
)
from closedloop.tools.twin.calendar import hours_since, week_epoch
from closedloop.tools.twin.engine import run
from closedloop.tools.twin.forward import (
    DRAIN_HOURS,
    forward_cycle_hours,
    forward_hours,
    forward_pairs,
)
from closedloop.tools.twin.model import Automation, Settings, compile_twin
from closedloop.tools.twin.scenarios import compile_scenario
from closedloop.tools.twin.steps import draw_cases

WARMUP_SHARE = 0.10


def _interval(values: list[float], source: str) -> Interval:
    e = estimate(values)
    return Interval(mean=e.mean, ci_low=e.ci_low, ci_high=e.ci_high, source=source)


def _predictive_sd(values: Sequence[float]) -> float:
    """The standard deviation of one new period predicted from ``values`` (one per replication):
    their spread widened by the t quantile and by the error of their mean."""
    n = len(values)
    if n < 2:
        return 0.0
    return (float(np.std(values, ddof=1)) * math.sqrt(1 + 1 / n) * stats.t.ppf(0.975, n - 1)
            / 1.96)


def _offset(twin: ProcessTwin) -> float:
    moment = twin.first_case_start or datetime(2024, 1, 1)
    return hours_since(week_epoch(moment), moment)


@read_tool
def twin_counterfactual(
    twin: ProcessTwin,
    tau_hours: float | None = None,
    cases: int = 600,
    replications: int = 5,
    seed: int = 0,
    scenario: Scenario | None = None,
    window_hours: float | None = None,
    refits: Sequence[ProcessTwin] = (),
    model_error: float | None = None,
) -> Interval:
    """Mean cycle time (hours) of the twin without the change, capped at ``tau_hours`` when given.

    A measurement with open cases is a restricted mean up to ``tau``; capping
    the simulated cycle times at the same ``tau`` keeps both on one scale
    (an uncapped counterfactual would make any change look faster).
    ``scenario`` (default as-is) is what "without the change" means. With
    ``window_hours`` the counterfactual is the forward run from the twin's log
    end (its backlog then, the same calendar) for the cases arriving in that
    window, as the measured cases did. Its interval predicts that one period
    (one replication's spread, not only the error of the replications' mean);
    ``refits`` (bootstrap refits of the twin over cases) add the uncertainty of
    its fitted parameters, ``model_error`` (a share, e.g. the twin's backtest
    error) that of the model itself, taken as one standard deviation. Without
    ``window_hours``: the twin's steady state (``cases`` per replication after a
    warm-up).
    """
    twin = as_twin(twin)
    if window_hours is not None and twin.log_end is not None:
        return _forward_counterfactual(twin, tau_hours, replications, seed, scenario, window_hours,
                                       refits, model_error)
    m = compile_twin(twin)
    settings = compile_scenario(twin, m, as_scenario(scenario or AsIs()))
    warm, offset, means = int(cases * WARMUP_SHARE), _offset(twin), []
    for r in range(replications):
        out = run(m, settings, draw_cases(m, cases, offset, (seed, r)), warm)
        cycle = out.end[warm:] - out.arrivals[warm:]
        means.append(float(np.minimum(cycle, tau_hours).mean() if tau_hours else cycle.mean()))
    capped = f", capped at {tau_hours:.1f} h" if tau_hours else ""
    return _interval(means, f"the as-is twin ({replications} replications{capped})")


def _capped_means(twin: ProcessTwin, tau: float | None, window: float, replications: int,
                  seed: int, scenario: Scenario | None) -> list[float]:
    runs = forward_cycle_hours(twin, window, DRAIN_HOURS, replications, seed, scenario=scenario)
    return [float(np.minimum(c, tau).mean() if tau else c.mean()) for c in runs if len(c)]


def _forward_counterfactual(twin: ProcessTwin, tau: float | None, replications: int, seed: int,
                            scenario: Scenario | None, window: float,
                            refits: Sequence[ProcessTwin], model_error: float | None) -> Interval:
    """The forward counterfactual, a prediction of the one period the world lived without the
    change: the spread of one replication's mean (that period's own luck of arrivals and
    durations, which the measured cases share and the twin's mean does not) as a t prediction
    from the replications, with refits the spread of the refitted twins' means (the fitted
    parameters' uncertainty) and, with ``model_error``, the model's own error, combined as
    normal errors."""
    means = _capped_means(twin, tau, window, replications, seed, scenario)
    if not means:
        raise ScenarioError(f"no case arrives in the twin's {window:.0f} h window")
    mean = float(np.mean(means))
    period_sd = float(np.std(means, ddof=1)) if len(means) > 1 else 0.0
    predictive_sd = _predictive_sd(means)
    refit_reps = 2
    by_refit = [float(np.mean(m)) for tw in refits
                if (m := _capped_means(tw, tau, window, refit_reps, seed, scenario))]
    # A refit's mean carries the noise of its own replications too; that part is not parameters.
    param_var = (float(np.var(by_refit, ddof=1)) - period_sd**2 / refit_reps
                 if len(by_refit) > 1 else 0.0)
    model_sd = abs(model_error or 0.0) * mean
    half = 1.96 * math.sqrt(predictive_sd**2 + max(param_var, 0.0) + model_sd**2)
    capped = f", capped at {tau:.1f} h" if tau else ""
    spread = f" and {len(by_refit)} bootstrap refits" if len(by_refit) > 1 else ""
    if model_error:
        spread += f", its backtest error of {100 * abs(model_error):.0f} % as model error"
    return Interval(mean=mean, ci_low=mean - half, ci_high=mean + half,
                    source=f"the as-is twin run forward from its log's end over the same "
                           f"{window:.0f} h ({len(means)} replications, one period's spread"
                           f"{spread}{capped})")


def _cohorts(auto: Automation, rows: np.ndarray, u_share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(treated, control) masks: the segment's cases drawn into the automated share, and the
    segment's other cases, as a system assigns them at arrival."""
    in_segment = np.ones(len(rows), bool) if auto.mask is None else np.asarray(auto.mask)[rows]
    drawn_in = u_share < auto.share
    return in_segment & drawn_in, in_segment & ~drawn_in


def _effects(before: np.ndarray, after: np.ndarray, treated: np.ndarray,
             control: np.ndarray) -> tuple[float, float] | None:
    """(total per treated case, treated minus control) of one run, None with < 2 per cohort."""
    if treated.sum() < 2 or control.sum() < 2:
        return None
    return (float((after.mean() - before.mean()) / treated.mean()),
            float(after[treated].mean() - after[control].mean()))


@read_tool
def partial_automation(twin: ProcessTwin, scenario: Scenario) -> bool:
    """Whether ``scenario`` automates work for a share of cases in the twin: the rollout whose
    cohorts :func:`twin_interference` can simulate."""
    twin = as_twin(twin)
    return bool(compile_scenario(twin, compile_twin(twin), as_scenario(scenario)).automations)


@read_tool
def twin_interference(
    twin: ProcessTwin, scenario: Scenario, cases: int = 600, replications: int = 5, seed: int = 0,
    window_hours: float | None = None, tau_hours: float | None = None,
    arrivals: Sequence[datetime] | None = None,
) -> tuple[Interval, Interval]:
    """(total effect per treated case, treatment-minus-control difference) of a partial rollout, in hours.

    ``scenario`` automates work for a share of a segment (its first automation
    defines the cohorts: segment cases drawn into the share are treatment, the
    other segment cases control, as a system assigns them at arrival). The
    total is (mean cycle time of every case with the rollout minus as-is) over
    the treated share; the direct difference is treated minus control in the
    same run. With ``window_hours`` (and a twin with a log end) both come from
    the forward run from the log's end, its backlog included, for the cases
    arriving in that window with cycle times capped at ``tau_hours``, as the
    live measurement sees them, replaying the window's observed ``arrivals``
    where given: relief of a growing queue reaches the control cases too,
    which the steady state (``cases`` per replication after a warm-up, used
    otherwise) does not show. Raises ScenarioError when the scenario has no
    partial automation.
    """
    twin, scenario = as_twin(twin), as_scenario(scenario)
    m = compile_twin(twin)
    what = compile_scenario(twin, m, scenario)
    if not what.automations:
        raise ScenarioError("twin_interference needs a scenario that automates work for a share")
    auto = next(iter(what.automations.values()))
    cap = (lambda h: np.minimum(h, tau_hours)) if tau_hours else (lambda h: h)
    effects = []
    if window_hours is not None and twin.log_end is not None:
        for p in forward_pairs(twin, scenario, window_hours, DRAIN_HOURS, replications, seed,
                               arrivals):
            effects.append(_effects(cap(p.as_is_hours), cap(p.changed_hours),
                                    *_cohorts(auto, p.rows, p.u_share)))
        label = f"the twin's partial rollout run forward from its log's end over {window_hours:.0f} h"
    else:
        base = Settings(capacity=m.capacity, router=m.router)
        warm, offset = int(cases * WARMUP_SHARE), _offset(twin)
        for r in range(replications):
            drawn = draw_cases(m, cases, offset, (seed, r))
            b, w = run(m, base, drawn, warm), run(m, what, drawn, warm)
            effects.append(_effects(cap(b.end[warm:] - b.arrivals[warm:]),
                                    cap(w.end[warm:] - w.arrivals[warm:]),
                                    *_cohorts(auto, np.asarray(drawn.rows)[warm:],
                                              np.asarray(drawn.u_share)[warm:])))
        label = "the twin's partial rollout"
    kept = [e for e in effects if e is not None]
    if not kept:
        raise ScenarioError("the twin's rollout left fewer than 2 treated or control cases")
    label += f" ({len(kept)} replications)"
    totals, directs = [t for t, _ in kept], [d for _, d in kept]
    if window_hours is None or twin.log_end is None:
        return _interval(totals, label), _interval(directs, label)
    # The live window is one period: its total has that period's own luck, which the measured
    # treatment-minus-control difference does not carry (its direct part does, so that stays a mean).
    mean, half = float(np.mean(totals)), 1.96 * _predictive_sd(totals)
    total = Interval(mean=mean, ci_low=mean - half, ci_high=mean + half,
                     source=label + ", one period's spread")
    return total, _interval(directs, label)


def _relieved_pools(twin: ProcessTwin, scenario: Scenario) -> set[str]:
    """The twin's pools whose load the scenario changes: those doing an activity it automates
    or skips, and the pool a route takes cases from."""
    changes = scenario.changes if isinstance(scenario, Combined) else [scenario]
    pools: set[str] = set()
    for c in changes:
        activity = getattr(c, "activity", None) or getattr(c, "from_activity", None)
        if activity in twin.activities:
            pools.update(twin.pools_of(activity))
        if getattr(c, "from_pool", None) in twin.pools:
            pools.add(c.from_pool)
    return pools


@read_tool
def rollout_shares_resources(twin: ProcessTwin, scenario: Scenario) -> bool:
    """Whether treated and control cases of a rollout share people in the twin.

    True when the scenario changes the load of a pool of people (an activity it
    automates, a pool it routes cases away from): the control cases keep queueing
    for that pool, whose load the treated cases change. A scenario touching no
    pool shares none.
    """
    return bool(_relieved_pools(as_twin(twin), as_scenario(scenario)))


@read_tool
def twin_carry_over(
    twin: ProcessTwin,
    scenario: Scenario,
    blocks: Sequence[tuple[datetime, datetime, bool]],
    washout_hours: float,
    tau_hours: float | None = None,
    replications: int = 10,
    seed: int = 0,
    arrivals: Sequence[datetime] | None = None,
) -> CarryOverPrediction:
    """What a switchback over ``blocks`` misses of the total effect, in hours: the change at full
    rollout minus the switchback's on-minus-off estimate, both in the twin's forward runs from
    its log end on the same draws (the window's observed ``arrivals`` replayed where given),
    with the off-blocks' mean cycle time toggled and as-is.

    A queue carries its state from one block into the next for longer than a washout when its
    people are nearly always busy: an off-block inherits the shorter queue an on-block left,
    and the other way round, so on and off look more alike than the world with and without
    the change. Blocks are (start, end, on); a case's block is the one it arrives in, and
    arrivals in a block's first ``washout_hours`` are left out, as the live estimate does.
    Cycle times are capped at ``tau_hours`` as the measurement's restricted mean. The miss's
    interval predicts one period's carry-over (a t prediction from the replications).
    ScenarioError when the scenario has no skip or automation (the changes a case-level
    toggle carries) or too few cases arrive in the blocks.
    """
    twin, scenario = as_twin(twin), as_scenario(scenario)
    what = compile_scenario(twin, compile_twin(twin), scenario)
    if not (what.skips or what.automations):
        raise ScenarioError("the carry-over of a switchback needs a change that skips or "
                            "automates work per case")
    starts = forward_hours(twin, [b[0] for b in blocks]) + washout_hours
    ends = forward_hours(twin, [b[1] for b in blocks])
    window = float(ends.max() - forward_hours(twin, [twin.log_end])[0])
    cap = (lambda h: np.minimum(h, tau_hours)) if tau_hours else (lambda h: h)

    def arm_mean(hours: np.ndarray, at: np.ndarray, on: bool) -> float | None:
        means = [(float(cap(hours[inside]).mean()), int(inside.sum()))
                 for lo, hi, b in zip(starts, ends, blocks, strict=True)
                 if bool(b[2]) == on and (inside := (at >= lo) & (at < hi)).any()]
        return (float(np.average([m for m, _ in means], weights=[n for _, n in means]))
                if means else None)

    misses, off_toggled, off_as_is = [], [], []
    for p in forward_pairs(twin, scenario, window, DRAIN_HOURS, replications, seed, arrivals,
                           blocks=blocks):
        on, off = (arm_mean(p.toggled_hours, p.arrival_hours, s) for s in (True, False))
        if on is None or off is None:
            continue
        full = float(cap(p.changed_hours).mean() - cap(p.as_is_hours).mean())
        misses.append(full - (on - off))
        off_toggled.append(off)
        off_as_is.append(arm_mean(p.as_is_hours, p.arrival_hours, False))
    if len(misses) < 2:
        raise ScenarioError("too few of the twin's cases arrive in the switchback's blocks")
    mean, half = float(np.mean(misses)), 1.96 * _predictive_sd(misses)
    miss = Interval(mean=mean, ci_low=mean - half, ci_high=mean + half,
                    source=f"the twin's switchback over the same {len(blocks)} blocks against its "
                           f"full rollout, run forward from its log's end ({len(misses)} "
                           "replications, one period's spread)")
    return CarryOverPrediction(miss=miss, off_toggled_hours=float(np.mean(off_toggled)),
                               off_as_is_hours=float(np.mean(off_as_is)))
