"""Honest prediction intervals: simulation noise, fitted parameters and declared assumptions.

:func:`predict` wraps :func:`~closedloop.tools.twin.simulate.simulate` and
widens its interval by the two sources simulation noise alone leaves out:

- **parameters**: a bootstrap over cases of the twin fit (the log's cases
  drawn with replacement, the twin refitted, one replication each); the
  arrival process keeps the original fit's calendar and gaps (duplicated
  cases would arrive together and fake bursts) with its rate drawn from
  its own uncertainty: ``n`` cases seen give the rate to within a factor
  Gamma(n, 1/n), which matters most where a pool runs near saturation;
- **assumptions**: a scenario parameter the log cannot show (e.g. the
  failure rate of a new automation) may be declared as a range
  ``{"failure_rate": (0.05, 0.30)}``, a uniform prior sampled in each draw
  (the point run uses its midpoint); every assumption is listed in the
  result for the approver.

Each draw is one as-is / what-if replication pair at the requested size, so
the spread is that of one realisation of the change.

Two ways to run a draw: the **steady state** (``simulate``: ``cases`` cases
from an empty system, a warm-up left out), or, with ``horizon_hours``, the
**horizon a change is judged on** (``simulate_horizon``: from the log's end
with the twin's open cases as backlog, the cases arriving within the horizon
followed until they finish or a drain period ends). The horizon is what a
measurement of the next days sees. A log with no open cases at its end has
no backlog to start from: there the steady state is used and a note says so
(``from_backlog=False`` runs the horizon from an empty system instead). A
refitted twin keeps the original's arrival process, backlog and log end. The predictive
distribution is a Student t around the point run's mean with the largest
spread seen (simulation only, with assumptions, with parameters; its number
of draws sets the degrees of freedom): p10 / p50
/ p90 and the 95 % interval of the relative change of mean cycle time and
of the change in hours of mean cycle time and of queue waiting.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ScenarioError
from closedloop.tools.log.columns import CASE
from closedloop.tools.twin.calibration import Quantiles, predictive_quantiles, widest
from closedloop.tools.twin.fit import fit_twin
from closedloop.tools.twin.forward import DRAIN_HOURS, simulate_horizon
from closedloop.tools.twin.process_twin import ProcessTwin, as_twin
from closedloop.tools.twin.scenarios import Scenario, as_scenario
from closedloop.tools.twin.simulate import SimulationResult, simulate

__all__ = ["Assumption", "Prediction", "bootstrap_twins", "predict", "resample_cases"]

DEFAULT_BOOTSTRAP = 5
SEED_STRIDE = 10_007  # draws use seeds far from the point run's
KEYS = ("delta_pct", "delta_cycle_hours", "delta_waiting_hours")
ARRIVAL_FIELDS = (
    "mean_interarrival_hours", "interarrival_hours", "arrival_profile", "arrival_rates",
    "arrival_gap_units", "first_case_start", "open_cases", "log_end",
)  # fmt: skip


class Assumption(BaseModel):
    """A scenario parameter the log cannot show, declared as a range (uniform prior)."""

    name: str = Field(description="path in the scenario, e.g. 'failure_rate' or 'changes.0.share'")
    low: float
    high: float
    point: float = Field(description="value used by the point run (the midpoint)")
    source: str = "declared"


class Prediction(BaseModel):
    """A what-if prediction with every source of uncertainty and the assumptions behind it."""

    scenario: Scenario
    result: SimulationResult = Field(description="the point run (assumptions at their midpoint)")
    delta_pct: Quantiles = Field(description="relative change of mean cycle time, %")
    delta_cycle_hours: Quantiles = Field(description="change of mean cycle time, hours")
    delta_waiting_hours: Quantiles = Field(description="change of queue waiting per case, hours")
    replications: int
    bootstrap: int = Field(description="twins refitted on resampled cases (0: none)")
    assumptions: list[Assumption] = Field(default_factory=list)
    spread: dict[str, float] = Field(
        default_factory=dict,
        description="sd of delta_pct per draw: simulation, +assumptions, +parameters",
    )
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    horizon_hours: float | None = Field(
        None, description="cases arriving within this many hours of the log's end (None: steady "
                          "state from an empty system)")


POOL_FIELDS = ("activity_or_pool", "from_pool", "to_pool")  # scenario fields naming a pool


def _in_refit(scenario: Scenario, twin: ProcessTwin, refit: ProcessTwin) -> Scenario:
    """``scenario`` for a bootstrap refit: a pool of ``twin`` the refit did not find is named
    by the refit's pool holding most of its people (a refit groups people anew, and a
    refit that grouped them otherwise is a part of the parameter uncertainty, not to be
    left out). ScenarioError when the refit holds none of them."""

    def rename(name: str) -> str:
        if name in refit.pools or name in refit.activities or name not in twin.pools:
            return name  # unknown names stay, for the scenario check to reject
        pool = refit.pool_of_resources(twin.pools[name].resource_names)
        if pool is None:
            raise ScenarioError(f"no pool of the refit holds the people of pool {name!r}")
        return pool

    def walk(change: dict[str, Any]) -> None:
        for field in POOL_FIELDS:
            if isinstance(change.get(field), str):
                change[field] = rename(change[field])
        if change.get("activities_or_pools"):
            change["activities_or_pools"] = [rename(n) for n in change["activities_or_pools"]]
        for inner in change.get("changes") or []:
            walk(inner)

    data = scenario.model_dump()
    walk(data)
    return as_scenario(data)


def resample_cases(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The frame's cases drawn with replacement (as many as it has; repeats renamed)."""
    codes, ids = pd.factorize(frame[CASE])
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(ids) + 1))
    picked = np.sort(rng.choice(len(ids), len(ids), replace=True))
    copy = pd.Series(picked).groupby(picked).cumcount().to_numpy()  # repeat number of a pick
    sizes = bounds[picked + 1] - bounds[picked]
    rows = np.concatenate([order[bounds[i] : bounds[i + 1]] for i in picked.tolist()])
    out = frame.iloc[rows].reset_index(drop=True)
    k = np.repeat(copy, sizes)
    names = out[CASE].astype(str)
    out[CASE] = names.where(k == 0, names + "~" + pd.Series(k).astype(str))
    return out


def bootstrap_twins(
    frame: pd.DataFrame, twin: ProcessTwin, count: int, seed: int = 0
) -> list[ProcessTwin]:
    """``count`` twins refitted on resampled cases, the original's arrival calendar kept and its
    rate drawn from the rate's sampling uncertainty. Each refit reads extraneous delays the way
    the original chose (the bootstrap is conditional on that choice, which costs three replays
    of the log to make)."""
    rng = np.random.default_rng([seed, 99])
    kept = {f: getattr(twin, f) for f in ARRIVAL_FIELDS}
    pooling = twin.pooling if twin.pooling in ("activity", "profiles") else "auto"
    n = max(twin.n_cases, 1)
    out = []
    for _ in range(count):
        refit = fit_twin(
            resample_cases(frame, rng), seed=seed, pooling=pooling,  # type: ignore[arg-type]
            delay_readings=twin.delay_readings)  # fmt: skip
        factor = float(rng.gamma(n, 1.0 / n))
        rate = {"mean_interarrival_hours": twin.mean_interarrival_hours / factor,
                "arrival_rates": [r * factor for r in twin.arrival_rates]
                if twin.arrival_rates else None}
        out.append(refit.model_copy(update={**kept, **rate}))
    return out


def _set(data: dict[str, Any], path: str, value: float) -> None:
    keys = path.split(".")
    node: Any = data
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if isinstance(node, list) or last not in node:
        raise KeyError(path)
    node[last] = value


def _resolve(scenario: Any, name: str) -> str:
    """The full path of an assumption: a field of the scenario or of its one change having it."""
    data = scenario.model_dump()
    if name in data or "." in name:
        return name
    hits = [f"changes.{i}.{name}" for i, c in enumerate(data.get("changes", [])) if name in c]
    if len(hits) != 1:
        raise ScenarioError(
            f"assumption {name!r} names no single field of the scenario ({scenario.kind}); "
            "use a path such as 'changes.0.failure_rate'"
        )
    return hits[0]


def with_values(scenario: Any, values: dict[str, float]) -> Any:
    """The scenario with the assumed values set (ScenarioError when a path does not exist)."""
    data = scenario.model_dump()
    for path, value in values.items():
        try:
            _set(data, path, value)
        except (KeyError, IndexError, ValueError, TypeError):
            raise ScenarioError(f"assumption {path!r} is not a field of the scenario") from None
    return as_scenario(data)


def declare(scenario: Any, ranges: dict[str, tuple[float, float]] | None) -> list[Assumption]:
    """Validated assumptions from ``{name: (low, high)}``."""
    out = []
    for name, bounds in (ranges or {}).items():
        low, high = (float(b) for b in bounds)
        if high < low:
            raise ScenarioError(f"assumption {name!r}: high {high} is below low {low}")
        out.append(Assumption(name=_resolve(scenario, name), low=low, high=high,
                              point=(low + high) / 2))  # fmt: skip
    with_values(scenario, {a.name: a.point for a in out})  # every path and value must fit
    return out


@read_tool
def predict(
    twin: ProcessTwin,
    scenario: Scenario,
    frame: pd.DataFrame | None = None,
    assumptions: dict[str, tuple[float, float]] | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    cases: int = 600,
    replications: int = 5,
    seed: int = 0,
    sla_hours: float | None = None,
    horizon_hours: float | None = None,
    from_backlog: bool = True,
    drain_hours: float = DRAIN_HOURS,
    refits: list[ProcessTwin] | None = None,
) -> Prediction:
    """Predict a scenario's effect with simulation, parameter and assumption uncertainty.

    ``twin`` is the fitted twin; ``frame`` the event frame it was fitted on
    (needed for the bootstrap over cases: ``bootstrap`` refits, one draw
    each; without a frame or with 0 the parameters count as known and a note
    says so). ``assumptions`` maps scenario fields (``"failure_rate"``, or a
    path such as ``"changes.1.failure_rate"``) to a ``(low, high)`` range.
    Returns a :class:`Prediction`: the point run (``simulate`` with
    ``cases`` x ``replications``, assumptions at their midpoint), p10 / p50 /
    p90 and 95 % intervals of the change, each assumption, and the spread
    per source. ScenarioError for an unknown assumption or a bad range.

    With ``horizon_hours`` every draw simulates forward from the log's end
    (the twin's open cases as backlog when ``from_backlog``, else from an
    empty system) and measures the cases arriving within the horizon,
    followed ``drain_hours`` more (``cases`` is then unused); without it, or
    when the twin has no open cases or no log end to start from, the steady
    state of ``cases`` cases is simulated (a note says which). ``refits``:
    twins already refitted by :func:`bootstrap_twins` (so that predictions of
    several scenarios share them and the refits are paid once); they stand
    in for ``bootstrap`` and ``frame``.
    """
    began = time.perf_counter()
    twin, scenario = as_twin(twin), as_scenario(scenario)
    declared = declare(scenario, assumptions)
    if bootstrap < 0:
        raise ScenarioError(f"bootstrap must be >= 0, got {bootstrap}")
    point_scenario = with_values(scenario, {a.name: a.point for a in declared})
    notes: list[str] = []
    horizon = horizon_hours
    if horizon is not None and from_backlog and not (twin.open_cases and twin.log_end):
        horizon = None
        notes.append("no open cases at the log's end to start from: steady-state prediction "
                     f"({cases} cases from an empty system), not the {horizon_hours:g} h horizon")

    def run(tw: ProcessTwin, sc: Scenario, reps: int, run_seed: int) -> SimulationResult:
        if horizon is None:
            return simulate(tw, sc, cases=cases, replications=reps, seed=run_seed,
                            sla_hours=sla_hours)  # fmt: skip
        return simulate_horizon(tw, sc, horizon, drain_hours=drain_hours, replications=reps,
                                seed=run_seed, sla_hours=sla_hours, backlog=from_backlog)

    point = run(twin, point_scenario, replications, seed)
    groups: dict[str, dict[str, list[float]]] = {"simulation": point.per_replication}
    rng = np.random.default_rng([seed, 17])

    def draws(twins: list[ProcessTwin], offset: int) -> dict[str, list[float]]:
        got: dict[str, list[float]] = {k: [] for k in KEYS}
        skipped = renamed = 0
        for i, tw in enumerate(twins):
            values = {a.name: float(rng.uniform(a.low, a.high)) for a in declared}
            drawn = with_values(scenario, values)
            try:
                here = _in_refit(drawn, twin, tw) if tw is not twin else drawn
                r = run(tw, here, 1, seed + SEED_STRIDE * (offset + i + 1))
            except ScenarioError:  # a refit that found no pool with those people
                skipped += 1
                continue
            renamed += here != drawn
            for k in KEYS:
                got[k].extend(r.per_replication[k])
        if renamed:
            notes.append(f"{renamed} of {len(twins)} bootstrap refits grouped the scenario's "
                         "people into other pools: the change applies to the pool holding them")
        if skipped:
            notes.append(f"{skipped} of {len(twins)} bootstrap refits left out: the scenario names "
                         "a pool or activity they did not find")
        return got

    if declared:
        groups["assumptions"] = draws([twin] * replications, 0)
    if refits:
        groups["parameters"] = draws(refits, replications)
    elif bootstrap and frame is not None:
        groups["parameters"] = draws(bootstrap_twins(frame, twin, bootstrap, seed), replications)
    elif bootstrap:
        notes.append("no event frame given: parameter uncertainty (bootstrap) left out")
    else:
        notes.append("bootstrap = 0: parameter uncertainty left out")
    center_from = [v for g in groups if g != "parameters" for v in [groups[g]]]

    def summary(key: str) -> Quantiles:
        center = float(np.mean([x for g in center_from for x in g[key]]))
        q = predictive_quantiles(center, *widest(*(g[key] for g in groups.values())))
        return q.at_least(-100.0) if key == "delta_pct" else q  # all of the time, at most

    spread = {name: widest(g["delta_pct"])[0] for name, g in groups.items()}
    return Prediction(
        scenario=scenario,
        result=point,
        delta_pct=summary("delta_pct"),
        delta_cycle_hours=summary("delta_cycle_hours"),
        delta_waiting_hours=summary("delta_waiting_hours"),
        replications=replications,
        bootstrap=len(refits) if refits else bootstrap if frame is not None else 0,
        assumptions=declared,
        spread=spread,
        notes=notes + point.notes,
        seconds=time.perf_counter() - began,
        horizon_hours=horizon,
    )
