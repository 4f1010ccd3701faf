"""The process twin as data: what :func:`~closedloop.tools.twin.fit.fit_twin` returns.

A :class:`ProcessTwin` is a pydantic model (JSON round-trip safe) holding the
arrival calendar, routing, per-activity times, resource pools and observed
KPIs of one process; :func:`as_twin` validates one from its JSON-like dict.
How each part is estimated is described in :mod:`closedloop.tools.twin.fit`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from closedloop.tools.errors import ScenarioError
from closedloop.tools.twin.calendar import HOURS_PER_WEEK
from closedloop.tools.twin.calibration import TwinBacktest
from closedloop.tools.twin.discipline import QueuePriority
from closedloop.tools.twin.distributions import DurationModel
from closedloop.tools.twin.routing import END, RoutingContext
from closedloop.tools.twin.routing import START as ROUTE_START

__all__ = ["ActivityModel", "ObservedKpis", "OpenCase", "PoolModel", "ProcessTwin", "as_twin"]


class OpenCase(BaseModel):
    """A case still open when the log ends: where it stands (the twin's initial backlog)."""

    case: str
    activity: str = Field(description="the activity it completed last")
    previous: str | None = Field(None, description="the activity before that (None: first)")
    visit: int = Field(1, description="times `activity` ran in the case so far (capped)")
    since: datetime = Field(description="when it completed `activity` (UTC)")
    attributes: dict[str, Any] = Field(
        default_factory=dict, description="its case attributes (as the twin names them)"
    )


class ObservedKpis(BaseModel):
    """KPIs measured directly on the event log (per case)."""

    cases: int
    mean_cycle_time_hours: float
    p90_cycle_time_hours: float
    mean_waiting_hours: float = Field(description="total non-processing time per case")
    mean_processing_hours: float
    throughput_per_day: float
    p50_cycle_time_hours: float | None = None
    open_cases: int = Field(
        0, description="cases still open at the log's end (their cycle time is as far as seen)"
    )


class ActivityModel(BaseModel):
    """Times, pools and routing context of one activity of the twin."""

    name: str
    pool: str
    count: int
    visits_per_case: float
    mean_processing_hours: float
    mean_waiting_hours: float = Field(description="observed waiting before the activity")
    mean_delay_hours: float = Field(description="part of the waiting modelled as extraneous")
    processing_hours: list[float] = Field(description="empirical sample, <= 2000 values")
    delay_hours: list[float] = Field(
        description="empirical sample of extraneous delays (hours of `delay_clock`), <= 2000"
    )
    processing: DurationModel | None = Field(None, description="fitted processing time")
    delay: DurationModel | None = Field(None, description="fitted extraneous delay (hours of `delay_clock`)")
    delay_after: dict[str, DurationModel] = Field(
        default_factory=dict,
        description=f"delay given the previous activity ('{ROUTE_START}' = first of the case)",
    )
    delay_clock: Literal["working", "wall"] = Field(
        "working",
        description="the clock the extraneous delay runs on: the pool's working hours (work "
        "inside the organisation), or the wall clock, nights included (a customer, a carrier)",
    )
    pool_shares: dict[str, float] = Field(
        default_factory=dict,
        description="pools sharing this activity -> share of its instances (empty: only `pool`)",
    )
    pool_after: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="pool shares given the previous activity"
    )
    processing_by_pool: dict[str, DurationModel] = Field(
        default_factory=dict, description="processing time when done by that pool"
    )


class PoolModel(BaseModel):
    """One resource pool of the twin: capacity, calendar, load and analytic queue."""

    model_config = ConfigDict(ser_json_inf_nan="constants")  # an unstable queue waits inf

    name: str
    activities: list[str]
    capacity: int = Field(description="servers while the pool is on shift")
    estimated_capacity: int | None = Field(
        None, description="median distinct resources per week before the stability raise"
    )
    resources: int = Field(description="distinct resources seen on the pool's activities")
    arrivals_per_hour: float = Field(description="visits per on-shift hour")
    mean_processing_hours: float
    processing_scv: float = Field(description="squared coefficient of variation")
    offered_load: float = Field(description="mean busy servers on shift = arrivals x processing")
    utilisation: float = Field(description="offered load / capacity on shift")
    observed_utilisation: float | None = Field(
        None,
        description="share of the pool's staffed working hours its members were recorded busy "
        "over the log's span (needs start times and resources)",
    )
    queue_wait_hours: float = Field(
        description="analytic mean queue wait per visit (inf: the load exceeds the capacity)"
    )
    working_hours: list[int] = Field(
        default_factory=lambda: list(range(HOURS_PER_WEEK)),
        description="hours of the week (Mon 0h UTC = 0) the pool works",
    )
    calendar: str = Field("always", description="the working hours in words (UTC)")
    hourly_capacity: list[int] | None = Field(
        None,
        description="servers in each hour of the week (Mon 0h UTC = 0) when some members work "
        "only some of the pool's hours; None: capacity in every working hour",
    )
    part_time: dict[str, str] = Field(
        default_factory=dict,
        description="members who work only some of the pool's hours -> those hours in words",
    )
    contention_hours: float | None = Field(
        None,
        description="observed waiting per visit while the resource that did it was busy "
        "with other work (needs start times)",
    )
    resource_names: list[str] = Field(
        default_factory=list, description="the pool's members (resources), busiest first"
    )
    cost_per_hour: float = Field(1.0, description="cost of one resource hour (default 1)")


class ProcessTwin(BaseModel):
    """A fitted simulation model of one process (see :mod:`closedloop.tools.twin.fit`)."""

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
    pooling: str = Field("activity", description="how pools were formed: activity or profiles")
    processing_clock: Literal["wall", "working"] = Field(
        "wall",
        description="'working': processing times count only the pool's working hours (and the "
        "engine runs them on its calendar); 'wall': elapsed time (twins fitted before)",
    )
    first_case_start: datetime | None = None
    arrival_rates: list[float] | None = Field(
        None, description="cases per hour for each hour of the week; None = even"
    )
    arrival_gap_units: list[float] = Field(
        default_factory=list, description="gaps between case starts in expected arrivals"
    )
    routing_contexts: list[RoutingContext] = Field(default_factory=list)
    parallel_pairs: list[tuple[str, str]] = Field(
        default_factory=list,
        description="(activity, next activity) that mostly overlap in time: run in parallel",
    )
    carry_on_pairs: list[tuple[str, str]] = Field(
        default_factory=list,
        description="(activity, next activity) the same person does back to back: not queued",
    )
    log_end: datetime | None = Field(None, description="the last event of the log (the cut)")
    end_activities: list[str] = Field(
        default_factory=list, description="activities that end cases (learned from settled cases)"
    )
    open_cases: list[OpenCase] = Field(
        default_factory=list,
        description="cases open at the log's end: censored in the fit (their last step is not "
        "read as the end) and the backlog a forward simulation can start from",
    )
    backtest: TwinBacktest | None = Field(
        None, description="fit on the earlier part of the log, predict the later part"
    )
    queue_priority: QueuePriority | None = Field(
        None, description="cases the pools serve first, learned from the log (None: FIFO)"
    )
    delay_readings: dict[str, Literal["wall", "ready"]] = Field(
        default_factory=dict,
        description="activities whose extraneous delay is read up to when the case was ready, "
        "on the wall clock or in working hours (others: the hours a member was free)",
    )

    def pool_of(self, activity: str) -> str:
        """The pool that does most of ``activity`` (KeyError for an unknown activity)."""
        return self.activities[activity].pool

    def pools_of(self, activity: str) -> dict[str, float]:
        """Every pool doing ``activity`` -> its share of the instances (main pool first)."""
        am = self.activities[activity]
        shares = am.pool_shares or {am.pool: 1.0}
        return dict(sorted(shares.items(), key=lambda kv: (kv[0] != am.pool, -kv[1], kv[0])))

    def pool_of_resources(self, resources: list[str] | set[str]) -> str | None:
        """The pool holding most of the named resources (people), or None if it holds none.

        E.g. the pool of one queue's agents: ``pool_of_resources(agents_of_queue)``.
        Ties go to the pool with the larger share of its members named.
        """
        wanted = {str(r) for r in resources}
        best, key = None, (0, 0.0)
        for name in sorted(self.pools):
            members = set(self.pools[name].resource_names)
            hits = len(members & wanted)
            candidate = (hits, hits / len(members) if members else 0.0)
            if hits and candidate > key:
                best, key = name, candidate
        return best


def as_twin(twin: Any) -> ProcessTwin:
    """A ProcessTwin from a twin or its JSON-like dict; ScenarioError when invalid."""
    if isinstance(twin, ProcessTwin):
        return twin
    try:
        return ProcessTwin.model_validate(twin)
    except ValidationError as exc:
        brief = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ScenarioError(f"invalid process twin: {brief}") from None
