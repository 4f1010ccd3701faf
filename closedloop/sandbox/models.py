"""Typed request and response bodies of the sandbox's HTTP API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from closedloop.sandbox.params import CASE_ATTRIBUTES

CaseField = Literal["category", "priority", "channel", "customer_tier"]
QueueName = Literal["L1", "L2"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(BaseModel):
    """Liveness answer."""

    status: Literal["ok"] = "ok"


class ClockState(BaseModel):
    """The simulation clock."""

    now: str = Field(description="Simulation time, ISO 8601 UTC")
    speed: float = Field(description="Simulated seconds per real second (0 = manual clock)")


class AdvanceRequest(_Strict):
    """How far to run the simulation forward."""

    hours: float = Field(gt=0, le=24 * 90, description="Simulated hours to advance (max 90 days)")


class AdvanceResult(BaseModel):
    """Outcome of a manual clock advance."""

    now: str
    events_generated: int


class Event(BaseModel):
    """One lifecycle event of a ticket."""

    seq: int
    event_id: str
    case_id: str
    activity: str
    lifecycle: Literal["start", "complete"]
    timestamp: str = Field(description="ISO 8601 UTC from the simulation clock")
    resource: str
    attributes: dict[str, str]


class EventsPage(BaseModel):
    """A page of events; pass next_after_seq as after_seq for the next page."""

    events: list[Event]
    next_after_seq: int | None = Field(
        description="Last seq of this page when more events match now; null when caught up"
    )


class Condition(_Strict):
    """A test on one case attribute."""

    field: CaseField
    op: Literal["eq", "in", "neq"]
    value: str | list[str]

    @model_validator(mode="after")
    def _check_value(self) -> Condition:
        domain = CASE_ATTRIBUTES[self.field]
        if self.op == "in":
            if not isinstance(self.value, list) or not self.value:
                raise ValueError("op 'in' needs a non-empty list value")
            values = self.value
        else:
            if not isinstance(self.value, str):
                raise ValueError(f"op '{self.op}' needs a single string value")
            values = [self.value]
        unknown = [v for v in values if v not in domain]
        if unknown:
            raise ValueError(
                f"unknown {self.field} value(s) {unknown}; allowed: {', '.join(domain)}"
            )
        return self


class AutoResolveAction(_Strict):
    """Replace human L1 work with the resolution bot."""

    type: Literal["auto_resolve"]


class RouteAction(_Strict):
    """Send matching tickets straight to a queue for resolution (skipping L1 triage)."""

    type: Literal["route"]
    queue: QueueName


Action = Annotated[AutoResolveAction | RouteAction, Field(discriminator="type")]


class RuleIn(_Strict):
    """A new automation rule and the share of matching tickets it treats."""

    name: str = Field(min_length=1, max_length=200)
    condition: Condition
    action: Action
    treatment_share: float = Field(ge=0.0, le=1.0)


class RuleOut(RuleIn):
    """A stored rule."""

    model_config = ConfigDict(extra="ignore")

    rule_id: str
    created_at: str = Field(description="Simulation time the rule became active")


class RuleDeleted(BaseModel):
    """Answer to a rule deletion."""

    rule_id: str
    deleted: bool


class StaffingIn(_Strict):
    """New number of agents for a queue."""

    agents: int = Field(ge=0, le=50)


class StaffingOut(BaseModel):
    """Answer to a staffing change."""

    queue: str
    agents: int
    previous_agents: int


class SandboxConfig(BaseModel):
    """Current staffing and active rules."""

    staffing: dict[str, int]
    rules: list[RuleOut]


class QueueState(BaseModel):
    """Live state of one queue."""

    agents: int
    busy: int
    waiting: int


class WriteRecord(BaseModel):
    """A write request as received (replays included)."""

    method: str
    path: str
    idempotency_key: str
    replayed: bool
    status: int = Field(description="HTTP status returned")
    at_seq: int = Field(description="Last event seq when the write was received")
    at: str = Field(description="Simulation time when the write was received")


class ErrorBody(BaseModel):
    """A clear error: a machine-readable code and a human sentence."""

    error: str
    detail: str

