"""Extraneous delays that run on the wall clock, not on the pool's working hours.

The fit reads the part of a wait not spent queueing as *extraneous delay*:
by default the working hours in which the pool had a free member
(:meth:`~closedloop.tools.twin.occupancy.IdleClock.free_hours`), replayed by the
engine on the pool's working hours. That fits a delay inside the
organisation (a hand-off, other work). A delay outside it (a customer
sending documents, a parcel bouncing back) runs day and night: it ends at
any hour, and work whose delay ended overnight is all there at the next
opening. Read in working hours, such a delay loses its nights: the twin
spreads that work over the day instead of stacking it at the opening, and
a case whose delay began late in the day resumes the same evening instead
of the next morning.

For each wait ``[enabled, start]`` the wall-clock delay ``D`` is known
exactly when the pool was available (on shift, a member free) just before
the start: the case started the moment it was ready. Otherwise it became
ready somewhere in the unavailable stretch before the start:
``D`` lies between that stretch's beginning and the start (interval
censored). :func:`imputed_delays` estimates the delay's distribution per
activity from both kinds (Turnbull's self-consistency algorithm on a grid)
and draws each censored value within its own interval, on the wall clock
or, in working hours, as the time up to when the case was ready (waiting
while every member was busy may still have been delay: the default reads
it all as queueing). :func:`choose_delays` keeps an alternative for an
activity only when the twin reproduces the log better with it: the log's
own arrivals are replayed through the twin as fitted and with each
alternative, and the mean wait before the activity must come clearly
closer to the log's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from closedloop.tools.twin.engine import run
from closedloop.tools.twin.model import compile_twin
from closedloop.tools.twin.occupancy import IdleClock
from closedloop.tools.twin.process_twin import ActivityModel, ProcessTwin
from closedloop.tools.twin.scenarios import AsIs, compile_scenario
from closedloop.tools.twin.steps import draw_cases

__all__ = ["DelayBounds", "choose_delays", "imputed_delays", "in_sample_waits",
           "wall_clock_bounds"]  # fmt: skip

EXACT_HOURS = 1e-4  # a start this close to the last available moment: started when ready
EPS_HOURS = 1e-7
GRID_POINTS = 300
FIT_SAMPLE = 4000  # instances the distribution is estimated on (all are imputed)
ITERATIONS = 60
MARGIN = 0.85  # an alternative must bring the wait's error below this share of the fitted one's
MIN_GAIN = 0.05  # ... and by at least this share of the observed wait

DelayBounds = tuple[np.ndarray, np.ndarray]


def wall_clock_bounds(enabled: np.ndarray, started: np.ndarray, idle: IdleClock) -> DelayBounds:
    """Per wait, the interval ``[low, high]`` (hours) holding its wall-clock delay."""
    e = np.asarray(enabled, dtype=float)
    s = np.maximum(np.asarray(started, dtype=float), e)
    last_free = idle.first_reach(idle.at(s) - EPS_HOURS)  # the last available moment before s
    exact = s - last_free <= EXACT_HOURS
    low = np.where(exact, s - e, np.clip(last_free - e, 0.0, None))
    return np.minimum(low, s - e), s - e


def imputed_delays(bounds: DelayBounds, rng: np.random.Generator) -> np.ndarray:
    """One delay per wait (in the bounds' unit): exact ones kept, censored ones drawn within
    their bounds from the distribution estimated on all of them (Turnbull self-consistency on
    a grid)."""
    low, high = bounds
    if not len(low):
        return np.zeros(0)
    censored = high - low > EXACT_HOURS
    if not censored.any():
        return high.copy()
    grid = np.unique(np.quantile(np.r_[low, high], np.linspace(0.0, 1.0, GRID_POINTS)))
    fit = rng.choice(len(low), min(len(low), FIT_SAMPLE), replace=False)
    lo, hi = low[fit][:, None], high[fit][:, None]
    inside = (grid[None, :] >= lo - EXACT_HOURS) & (grid[None, :] <= hi + EXACT_HOURS)
    nearest = np.abs(grid[None, :] - hi).argmin(axis=1)
    inside[np.arange(len(fit)), nearest] |= ~inside.any(axis=1)  # an interval between points
    p = np.full(len(grid), 1.0 / len(grid))
    for _ in range(ITERATIONS):
        w = inside * p
        w /= w.sum(axis=1, keepdims=True)
        p = w.mean(axis=0)
    cdf = np.cumsum(p)
    out = high.copy()
    c = np.flatnonzero(censored)
    first = np.searchsorted(grid, low[c] - EXACT_HOURS, side="left")
    last = np.searchsorted(grid, high[c] + EXACT_HOURS, side="right") - 1
    below = np.where(first > 0, cdf[np.maximum(first - 1, 0)], 0.0)
    mass = np.where(last >= first, cdf[np.maximum(last, 0)] - below, 0.0)
    u = below + rng.random(len(c)) * mass
    k = np.clip(np.searchsorted(cdf, u, side="left"), first, np.maximum(last, first))
    drawn = np.clip(grid[np.minimum(k, len(grid) - 1)], low[c], high[c])
    out[c] = np.where(mass > 1e-12, drawn, (low[c] + high[c]) / 2)
    return out


def in_sample_waits(twin: ProcessTwin, arrivals: np.ndarray, seed: int) -> dict[str, float]:
    """Mean simulated wait before each activity when the log's own cases arrive (hours since
    the twin's week epoch) into an empty system; steps after the last arrival's week left out."""
    m = compile_twin(twin)
    settings = compile_scenario(twin, m, AsIs())
    cases = draw_cases(m, len(arrivals), float(arrivals[0]), (seed, 23))
    cases.arrivals = np.asarray(arrivals, dtype=float)
    out = run(m, settings, cases, 0)
    steps = out.steps
    wait = out.step_start - np.r_[np.nan, out.step_end[:-1]]
    wait[steps.first[:-1]] = np.nan  # a case's first step waits for nothing before it
    seen = (out.step_end <= arrivals[-1]) & (steps.act >= 0) & np.isfinite(wait)
    frame = pd.DataFrame({"act": steps.act[seen], "wait": wait[seen]})
    return {m.acts[int(a)]: float(w) for a, w in frame.groupby("act")["wait"].mean().items()}


def choose_delays(
    twin: ProcessTwin,
    alternatives: dict[str, dict[str, ActivityModel]],
    arrivals: np.ndarray,
    observed_wait: dict[str, float],
    seed: int,
) -> dict[str, str]:
    """Per activity, the alternative delay model (by name) that reproduces the log best.

    Each alternative replaces some activities' models; the log's own arrivals are replayed
    through the twin as fitted and through each alternative. An activity takes the
    alternative whose mean wait before it comes closest to the log's, if that brings the
    error to at most MARGIN of the fitted twin's and by at least MIN_GAIN of the wait.
    """
    if len(arrivals) < 2:
        return {}
    base = in_sample_waits(twin, arrivals, seed)
    replays = {
        name: in_sample_waits(
            twin.model_copy(update={"activities": {**twin.activities, **models}}), arrivals, seed
        )
        for name, models in alternatives.items()
    }
    chosen = {}
    for act in sorted({a for models in alternatives.values() for a in models}):
        seen = observed_wait.get(act)
        if seen is None or seen <= 0 or act not in base:
            continue
        error = abs(base[act] - seen)
        errors = {n: abs(r[act] - seen) for n, r in replays.items()
                  if act in alternatives[n] and act in r}  # fmt: skip
        if not errors:
            continue
        best = min(errors, key=lambda n: (errors[n], n))
        if errors[best] < MARGIN * error and error - errors[best] > MIN_GAIN * seen:
            chosen[act] = best
    return chosen
