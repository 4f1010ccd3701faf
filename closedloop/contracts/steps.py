"""The step records each graph node appends to the loop state (a ``step`` discriminator)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
)

from closedloop.contracts.base import Record
from closedloop.contracts.measurement import KpiMeasurement
from closedloop.contracts.prediction import Prediction


class Bottleneck(BaseModel):
    activity: str
    waiting_hours: float
    total_delay_hours: float


class ObserveStep(Record):
    step: Literal["observe"] = "observe"
    events: int
    cases: int
    activities: int
    variants: int
    mean_cycle_time_hours: float
    top_bottlenecks: list[Bottleneck]
    dataset_id: int
    mining_run_id: int


class AgentStep(Record):
    """A step made by an agent: which model answered and whether the offline policy stood in."""

    agent_model: str
    fallback: bool


class OpportunityRef(BaseModel):
    id: int
    activity: str
    kind: str
    priority: float


class TriageStep(AgentStep):
    step: Literal["triage"] = "triage"
    opportunities: list[OpportunityRef]
    missing_data: list[str]
    summary: str


class PlanStep(AgentStep):
    """A plan the Planner made (or, with ``dropped``, the reason it made none)."""

    step: Literal["plan"] = "plan"
    opportunity_id: int
    rationale: str
    dropped: str | None = None
    plan_id: int | None = None
    action: str | None = None
    params: dict[str, Any] | None = None
    hypothesis: str | None = None
    predicted: Prediction | None = None
    risk_tier: str | None = None
    blast_radius: dict[str, Any] | None = None
    simulation_id: int | None = None
    considered: list[dict[str, Any]] = Field(
        default_factory=list, description="every candidate weighed, its prediction and verdict")


class GateStep(Record):
    step: Literal["gate"] = "gate"
    mode: str
    kill_switch: bool
    route: str
    risk_tier: str
    approval_id: int | None


class ApprovalStep(Record):
    step: Literal["approval"] = "approval"
    approval_id: int
    decision: str
    by: str


class ExecutionRecord(BaseModel):
    id: int
    action: str
    status: str
    attempts: int
    idempotency_key: str
    response: Any


class ExecuteStep(AgentStep):
    step: Literal["execute"] = "execute"
    executions: list[ExecutionRecord]
    summary: str


class SwitchStep(Record):
    """A switchback toggle (or the trial's end): which block began, on or off, and when."""

    step: Literal["switch"] = "switch"
    block: int
    on: bool | None
    at: str
    execution_id: int | None = None
    note: str = ""


class WatchStep(AgentStep):
    step: Literal["watch"] = "watch"
    decision: Literal["keep", "rollback", "escalate", "wait"]
    measured: KpiMeasurement
    predicted_delta_hours: float | None
    rationale: str
    verdict_id: int | None


class RollbackStep(Record):
    step: Literal["rollback"] = "rollback"
    compensations: list[dict[str, Any]]


class LearnStep(Record):
    step: Literal["learn"] = "learn"
    outcome: str
    policy_change: dict[str, Any] | None


def _step_kind(value: Any) -> str | None:
    return value.get("step") if isinstance(value, dict) else getattr(value, "step", None)


Step = Annotated[
    Annotated[ObserveStep, Tag("observe")] | Annotated[TriageStep, Tag("triage")]
    | Annotated[PlanStep, Tag("plan")] | Annotated[GateStep, Tag("gate")]
    | Annotated[ApprovalStep, Tag("approval")] | Annotated[ExecuteStep, Tag("execute")]
    | Annotated[SwitchStep, Tag("switch")] | Annotated[WatchStep, Tag("watch")] | Annotated[RollbackStep, Tag("rollback")]
    | Annotated[LearnStep, Tag("learn")],
    Discriminator(_step_kind),
]
"""One record of what a graph node did, told apart by its ``step`` field."""

STEPS: TypeAdapter[list[Step]] = TypeAdapter(list[Step])


def parse_steps(raw: list[dict[str, Any]]) -> list[Step]:
    """The typed step records of a run's state (``state["steps"]``)."""
    return STEPS.validate_python(raw)
