"""What-if scenarios for the process twin: typed changes and their compilation.

Every scenario is a pydantic model with a ``kind`` (a discriminated union, so
a JSON dict with ``kind`` validates into the right class). Names of
activities and pools are checked against the twin; anything that does not
fit (unknown names, negative staff, a pool that would never work, an
attribute that is not numeric) raises ScenarioError naming the problem and
the valid choices. Hours are UTC, days are ``mon`` .. ``sun``.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from closedloop.tools.errors import ScenarioError
from closedloop.tools.rules.conditions import compile_condition
from closedloop.tools.twin.calendar import DAYS, HOURS_PER_WEEK, slots_for
from closedloop.tools.twin.model import Automation, Batch, EngineModel, Settings, Skip
from closedloop.tools.twin.process_twin import ProcessTwin
from closedloop.tools.twin.rerouting import route_segment
from closedloop.tools.twin.routing import END

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: list[Day] = ["mon", "tue", "wed", "thu", "fri"]


class _Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AsIs(_Scenario):
    """No change: simulate the process as observed."""

    kind: Literal["as_is"] = "as_is"


class AddCapacity(_Scenario):
    """Add (or, with a negative ``extra``, remove) servers to a pool in every hour it works.

    ``activity_or_pool`` names a pool or an activity (meaning its pool). The
    resulting capacity must stay >= 1.
    """

    kind: Literal["add_capacity"] = "add_capacity"
    activity_or_pool: str
    extra: int


class AutomateActivity(_Scenario):
    """Automate an activity for a share of the cases in a segment.

    ``segment`` is a condition over case attributes (names without the
    ``case:`` prefix), e.g. ``"category == 'password'"``; None = all cases.
    Treated cases skip the delay and queue and take
    ``automated_duration_hours``; with probability ``failure_rate`` the
    automation fails and the human activity follows, after
    ``failure_delay_hours`` (how long a failure takes to be noticed, e.g. a
    wrong resolution until the customer reopens). A duration of 0 with no
    failures skips the activity.
    """

    kind: Literal["automate_activity"] = "automate_activity"
    activity: str
    segment: str | None = None
    share: float = Field(1.0, ge=0.0, le=1.0)
    automated_duration_hours: float = Field(0.03, ge=0.0)
    failure_rate: float = Field(0.0, ge=0.0, le=1.0)
    failure_delay_hours: float = Field(0.0, ge=0.0, le=24 * 365)


class _Hours(_Scenario):
    activity_or_pool: str
    days: list[Day] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)
    from_hour: int = Field(ge=0, le=23)
    to_hour: int = Field(ge=1, le=24, description="exclusive; 24 = midnight")

    @model_validator(mode="after")
    def _ordered(self) -> _Hours:
        if self.to_hour <= self.from_hour:
            raise ValueError(f"to_hour ({self.to_hour}) must be after from_hour ({self.from_hour})")
        return self


class SetShiftCapacity(_Hours):
    """Staff a pool with ``capacity`` servers in a block of hours (0 = closed then)."""

    kind: Literal["shift_capacity"] = "shift_capacity"
    capacity: int = Field(ge=0)


class ChangeCalendar(_Hours):
    """Extend (``working=True``: normal capacity) or shorten (``False``: closed) working hours."""

    kind: Literal["change_calendar"] = "change_calendar"
    working: bool = True


class ChangeRouting(_Scenario):
    """Make ``to_activity`` (or ``"END"``) follow ``from_activity`` with ``probability``.

    The other successors of ``from_activity`` keep their relative shares.
    """

    kind: Literal["change_routing"] = "change_routing"
    from_activity: str
    to_activity: str
    probability: float = Field(ge=0.0, le=1.0)


class RouteSegment(_Scenario):
    """Send a share of a segment's cases straight to another pool (a routing rule).

    Cases in ``segment`` that would enter ``from_pool`` at its entry activity
    (the one by which cases mostly come into it) do the entry activity of
    ``to_pool`` there instead, by that pool, and go on as cases leaving it do
    (see :mod:`closedloop.tools.twin.rerouting`). Pools may be named by an
    activity (its main pool). ScenarioError when the twin cannot steer only
    these cases.
    """

    kind: Literal["route_segment"] = "route_segment"
    segment: str
    from_pool: str
    to_pool: str
    share: float = Field(1.0, ge=0.0, le=1.0)


class AutoApprove(_Scenario):
    """Cases whose numeric ``attribute`` is below ``below`` skip ``activity``.

    They go to ``then_activity`` instead (``"END"`` ends the case); with
    ``then_activity`` None they continue as if ``activity`` had been done.
    """

    kind: Literal["auto_approve"] = "auto_approve"
    activity: str
    attribute: str
    below: float
    then_activity: str | None = None


class Prioritise(_Scenario):
    """Cases in ``segment`` go first in the queues of the given pools (default: all)."""

    kind: Literal["priority"] = "priority"
    segment: str
    activities_or_pools: list[str] | None = None


class BatchActivity(_Scenario):
    """Cases wait before ``activity`` until a batch is released, then queue together.

    A batch is released when ``size`` cases wait, at the ``at_hours`` of each
    day (UTC), or ``max_wait_hours`` after its first case, whichever comes
    first. ``duration_factor`` scales the processing time per case (e.g. 0.7
    for set-up saved by batching).
    """

    kind: Literal["batch"] = "batch"
    activity: str
    size: int | None = Field(None, ge=2)
    at_hours: list[int] = Field(default_factory=list)
    max_wait_hours: float = Field(24.0, gt=0)
    duration_factor: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _release_rule(self) -> BatchActivity:
        if self.size is None and not self.at_hours:
            raise ValueError("a batch needs a size or release hours (at_hours)")
        if any(not 0 <= h <= 23 for h in self.at_hours):
            raise ValueError("at_hours are hours of the day, 0..23")
        return self


Change = Annotated[
    AddCapacity | AutomateActivity | SetShiftCapacity | ChangeCalendar | ChangeRouting
    | RouteSegment | AutoApprove | Prioritise | BatchActivity,
    Field(discriminator="kind"),
]  # fmt: skip


class Combined(_Scenario):
    """Several changes at once (applied in order)."""

    kind: Literal["combined"] = "combined"
    changes: list[Change] = Field(min_length=1)


Scenario = Annotated[
    AsIs | AddCapacity | AutomateActivity | SetShiftCapacity | ChangeCalendar | ChangeRouting
    | RouteSegment | AutoApprove | Prioritise | BatchActivity | Combined,
    Field(discriminator="kind"),
]  # fmt: skip
_SCENARIO = TypeAdapter(Scenario)


def _brief(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(x) for x in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()[:5]
    )


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


def _activity(twin: ProcessTwin, name: str, allow_end: bool = False) -> str:
    if name in twin.activities or (allow_end and name in ("END", END)):
        return name
    raise ScenarioError(
        f"unknown activity {name!r}; activities: {', '.join(sorted(twin.activities))}"
        + ("; or 'END'" if allow_end else "")
    )


def _segment(twin: ProcessTwin, m: EngineModel, segment: str) -> list[bool]:
    mask = compile_condition(segment, names=twin.case_attributes).mask(twin.case_attribute_samples)
    if not any(mask):
        m.notes.append(f"segment {segment!r} matches no case: the change affects nothing")
    return list(mask) or [False]


def compile_scenario(twin: ProcessTwin, m: EngineModel, scenario: Any) -> Settings:
    """Engine settings for a scenario (ScenarioError when it does not fit the twin)."""
    changes = scenario.changes if isinstance(scenario, Combined) else [scenario]
    s = Settings(capacity=[list(c) for c in m.capacity], router=copy.deepcopy(m.router))
    if twin.queue_priority is not None:  # the as-is discipline; a Prioritise change replaces it
        s.priority_mask = _segment(twin, m, twin.queue_priority.segment)
    index = {a: i for i, a in enumerate(m.acts)}
    for change in changes:
        if isinstance(change, AsIs):
            continue
        if isinstance(change, AddCapacity):
            pool = resolve_pool(twin, change.activity_or_pool)
            p = m.pools.index(pool)
            on = [h for h in range(HOURS_PER_WEEK) if s.capacity[p][h] > 0]
            low = min(s.capacity[p][h] for h in on) + change.extra
            if low < 1:
                raise ScenarioError(
                    f"AddCapacity({change.activity_or_pool!r}, extra={change.extra}) would leave pool "
                    f"{pool!r} with capacity {low} (it has {min(m.capacity[p][h] for h in on)}; "
                    "minimum is 1)"
                )
            for h in on:
                s.capacity[p][h] += change.extra
        elif isinstance(change, SetShiftCapacity | ChangeCalendar):
            pool = resolve_pool(twin, change.activity_or_pool)
            p = m.pools.index(pool)
            value = (
                change.capacity if isinstance(change, SetShiftCapacity)
                else (twin.pools[pool].capacity if change.working else 0)
            )  # fmt: skip
            for h in slots_for(list(change.days), change.from_hour, change.to_hour):
                s.capacity[p][h] = value
            if not any(s.capacity[p]):
                raise ScenarioError(
                    f"pool {pool!r} would never work: at least one hour of the week needs capacity"
                )
        elif isinstance(change, AutomateActivity):
            a = index[_activity(twin, change.activity)]
            if a in s.automations:
                raise ScenarioError(
                    f"activity {change.activity!r} is automated twice in one scenario"
                )
            mask = None if change.segment is None else _segment(twin, m, change.segment)
            s.automations[a] = Automation(
                change.share, change.automated_duration_hours, change.failure_rate, mask,
                change.failure_delay_hours,
            )
        elif isinstance(change, ChangeRouting):
            a = index[_activity(twin, change.from_activity)]
            to = _activity(twin, change.to_activity, allow_end=True)
            s.router.set_share(a, index.get(to, -1), change.probability)
        elif isinstance(change, RouteSegment):
            route_segment(twin, m, s, _segment(twin, m, change.segment), change.share,
                          resolve_pool(twin, change.from_pool), resolve_pool(twin, change.to_pool))
        elif isinstance(change, AutoApprove):
            a = index[_activity(twin, change.activity)]
            then = None
            if change.then_activity is not None:
                then = index.get(_activity(twin, change.then_activity, allow_end=True), -1)
            s.skips[a] = Skip(_threshold_mask(twin, m, change.attribute, change.below), then)
        elif isinstance(change, Prioritise):
            s.priority_mask = _segment(twin, m, change.segment)
            if change.activities_or_pools is not None:
                names = {resolve_pool(twin, n) for n in change.activities_or_pools}
                s.priority_pools = {m.pools.index(n) for n in names}
        elif isinstance(change, BatchActivity):
            a = index[_activity(twin, change.activity)]
            s.batches[a] = Batch(
                change.size, list(change.at_hours), change.max_wait_hours, change.duration_factor
            )
    return s


def _threshold_mask(twin: ProcessTwin, m: EngineModel, attribute: str, below: float) -> list[bool]:
    if attribute not in twin.case_attributes:
        raise ScenarioError(
            f"unknown case attribute {attribute!r}; case attributes: "
            f"{', '.join(twin.case_attributes) or '(none)'}"
        )
    values = [row.get(attribute) for row in twin.case_attribute_samples]
    numeric = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numeric:
        raise ScenarioError(f"case attribute {attribute!r} is not numeric (e.g. {values[:3]})")
    mask = [isinstance(v, int | float) and not isinstance(v, bool) and v < below for v in values]
    if not any(mask):
        m.notes.append(f"no case has {attribute} < {below:g}: nothing is auto-approved")
    return mask


__all__ = [
    "DAYS", "AddCapacity", "AsIs", "AutoApprove", "AutomateActivity", "BatchActivity",
    "ChangeCalendar", "ChangeRouting", "Combined", "Prioritise", "RouteSegment", "Scenario",
    "SetShiftCapacity",
    "as_scenario", "compile_scenario", "resolve_pool",
]  # fmt: skip
