"""The ``twin`` room: fit a process twin from an event log and simulate what-if scenarios.

Public API (import from here; the modules behind it may move):

- fitting: :func:`fit_twin` (``fit``) returns a :class:`ProcessTwin`
  (``process_twin``: with :class:`ActivityModel`, :class:`PoolModel`,
  :class:`ObservedKpis`; :func:`as_twin` validates a JSON-like dict). Pools
  are shared by the people who do the same work (by default when the log has
  resources and start times); ``twin.pool_of(activity)`` is the pool doing
  most of an activity, ``twin.pools_of(activity)`` all of them with shares,
  ``twin.pool_of_resources(names)`` the pool holding those people;
- uncertainty: :func:`predict` (``uncertainty``) -> :class:`Prediction` with
  p10 / p50 / p90 and 95 % intervals from simulation noise, a bootstrap over
  cases and declared :class:`Assumption` ranges; :class:`Quantiles`;
- calibration: :func:`backtest_twin` (``backtest``) -> :class:`TwinBacktest`
  (``ProcessTwin.backtest``), :func:`twin_passes_backtest` ->
  :class:`BacktestVerdict` (the Planner's gate);
- censoring: cases open at the log's end are ``ProcessTwin.open_cases``
  (:class:`OpenCase`); :func:`simulate_forward` (``forward``) runs from a
  moment with that backlog; :func:`simulate_horizon` is the what-if over the
  days a change is judged on (from the log's end with its backlog, the cases
  arriving in the horizon followed :data:`DRAIN_HOURS` more), which
  ``predict(..., horizon_hours=...)`` uses;
- simulation: :func:`simulate` (``simulate``) -> :class:`SimulationResult` of
  :class:`KpiEstimates` / :class:`Estimate` (``kpis``; :func:`estimate` is the
  95 % t-interval over replications); :func:`simulate_log` writes a simulated
  event log with :data:`LOG_COLUMNS`;
- scenarios (``scenarios``): :class:`AsIs`, :class:`AddCapacity`,
  :class:`SetShiftCapacity`, :class:`ChangeCalendar`, :class:`AutomateActivity`,
  :class:`ChangeRouting`, :class:`RouteSegment` (a segment sent straight to
  another pool; :func:`route_plan` in ``rerouting`` says where it goes in the
  twin, or why it cannot), :class:`AutoApprove`, :class:`Prioritise`,
  :class:`BatchActivity`, :class:`Combined`, the union :data:`Scenario`,
  :func:`as_scenario`, :func:`resolve_pool`;
- building blocks callers need: :func:`queue_wait_hours` (``queueing``, M/G/c),
  :class:`WeeklyClock`, :func:`working_slots`, :data:`HOURS_PER_WEEK`, :data:`DAYS`
  (``calendar``), :class:`DurationModel`, :class:`DurationSampler`,
  :func:`fit_duration` (``distributions``), :data:`END` (``routing``).

Engine internals (``model``, ``steps``, ``engine``, ``frame``, ``pools``) are
imported from their modules by tests only.
"""

from closedloop.tools.twin.backtest import BacktestVerdict, backtest_twin, twin_passes_backtest
from closedloop.tools.twin.calendar import DAYS, HOURS_PER_WEEK, WeeklyClock, working_slots
from closedloop.tools.twin.calibration import Quantiles, TwinBacktest
from closedloop.tools.twin.distributions import (
    SAMPLE_CAP,
    DurationModel,
    DurationSampler,
    fit_duration,
)
from closedloop.tools.twin.fit import Pooling, fit_twin
from closedloop.tools.twin.forward import (
    DRAIN_HOURS,
    ForwardRun,
    simulate_forward,
    simulate_horizon,
)
from closedloop.tools.twin.kpis import Estimate, KpiEstimates, estimate
from closedloop.tools.twin.process_twin import (
    ActivityModel,
    ObservedKpis,
    OpenCase,
    PoolModel,
    ProcessTwin,
    as_twin,
)
from closedloop.tools.twin.queueing import queue_wait_hours
from closedloop.tools.twin.rerouting import RoutePlan, route_plan
from closedloop.tools.twin.routing import END
from closedloop.tools.twin.scenarios import (
    AddCapacity,
    AsIs,
    AutoApprove,
    AutomateActivity,
    BatchActivity,
    ChangeCalendar,
    ChangeRouting,
    Combined,
    Prioritise,
    RouteSegment,
    Scenario,
    SetShiftCapacity,
    as_scenario,
    resolve_pool,
)
from closedloop.tools.twin.simulate import LOG_COLUMNS, SimulationResult, simulate, simulate_log
from closedloop.tools.twin.uncertainty import Assumption, Prediction, predict

__all__ = [
    "DAYS",
    "DRAIN_HOURS",
    "END",
    "HOURS_PER_WEEK",
    "LOG_COLUMNS",
    "SAMPLE_CAP",
    "ActivityModel",
    "AddCapacity",
    "AsIs",
    "Assumption",
    "AutoApprove",
    "AutomateActivity",
    "BacktestVerdict",
    "BatchActivity",
    "ChangeCalendar",
    "ChangeRouting",
    "Combined",
    "DurationModel",
    "DurationSampler",
    "Estimate",
    "ForwardRun",
    "KpiEstimates",
    "ObservedKpis",
    "OpenCase",
    "PoolModel",
    "Pooling",
    "Prediction",
    "Prioritise",
    "ProcessTwin",
    "Quantiles",
    "RoutePlan",
    "RouteSegment",
    "Scenario",
    "SetShiftCapacity",
    "SimulationResult",
    "TwinBacktest",
    "WeeklyClock",
    "as_scenario",
    "as_twin",
    "backtest_twin",
    "estimate",
    "fit_duration",
    "fit_twin",
    "predict",
    "queue_wait_hours",
    "resolve_pool",
    "route_plan",
    "simulate",
    "simulate_forward",
    "simulate_horizon",
    "simulate_log",
    "twin_passes_backtest",
    "working_slots",
]
