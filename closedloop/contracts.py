"""Typed seams between the loop's layers: predictions, measurements, step records, approvals.

A leaf module (imports nothing of closedloop): tools return these models,
agents and graph nodes build them, surfaces (CLI, API, chat) read their JSON.

Step records keep the JSON shape the loop has always written: an optional
field that was never given is left out of ``model_dump()`` (as a key that was
never put in the dict), while a field explicitly set to ``None`` stays.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    TypeAdapter,
    ValidationError,
    model_serializer,
)

RunStatus = Literal[
    "running", "paused", "failed", "completed", "kept", "rolled_back", "escalated", "rejected", "blocked",
    "shadowed", "no_plan", "needs_data", "nothing_to_do", "execution_failed",
]
"""Every status a loop run can have (``LoopRun.status``, the final ``outcome`` of a run)."""


class Record(BaseModel):
    """A model whose dump omits optional fields that were never set (see the module docstring)."""

    @model_serializer(mode="wrap")
    def _omit_unset_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        kept = {k: v for k, v in data.items() if v is not None or k in self.model_fields_set}
        return {"step": kept.pop("step"), **kept} if "step" in kept else kept


# --------------------------------------------------------------------------- prediction
class Prediction(BaseModel):
    """The simulated change of mean cycle time of a plan, with its 95% interval.

    ``delta_hours`` and its interval are over all cases; a partial rollout
    changes only the treated cases, so ``*_per_treated_case_hours`` (the
    overall numbers over ``treated_share``) are what a treatment-vs-control
    measurement is compared with.
    """

    baseline_hours: float
    delta_hours: float
    delta_per_treated_case_hours: float
    treated_share: float = Field(ge=0, le=1)
    ci_low_hours: float
    ci_high_hours: float
    delta_pct: float
    ci_low_pct: float
    ci_high_pct: float
    ci_low_per_treated_case_hours: float
    ci_high_per_treated_case_hours: float
    # From the twin's predict (simulation noise + bootstrap over cases + declared assumptions);
    # None for predictions made from simulation noise alone.
    p10_pct: float | None = None
    p50_pct: float | None = None
    p90_pct: float | None = Field(None, description="the plan's conservative bound (one-sided 90 %)")
    p10_hours: float | None = None
    p90_hours: float | None = None
    bootstrap: int | None = Field(None, description="twins refitted on resampled cases")
    spread_pct: dict[str, float] = Field(default_factory=dict,
                                         description="sd of the change per source of uncertainty")
    assumptions: list[dict[str, Any]] = Field(
        default_factory=list,
        description="parameters the log cannot show: name, range, point, source (for the approver)")


# --------------------------------------------------------------------------- measurement
class CohortStats(BaseModel):
    """Mean of a KPI over one cohort with its confidence interval."""

    n: int
    mean: float
    ci_low: float
    ci_high: float


class GuardrailThresholds(BaseModel):
    """How much a guardrail KPI may worsen before the change is aborted (rollout practice defaults).

    Rates are in percentage points (2.0 = two points). Reopen and failure are
    held to the rework limit (a reopened or failed case is reworked); cost is
    checked only when a limit is given.
    """

    max_rework_increase_points: float = Field(default=2.0, ge=0)
    max_reopen_increase_points: float = Field(default=2.0, ge=0)
    max_failure_increase_points: float = Field(default=2.0, ge=0)
    max_sla_drop_points: float = Field(default=1.0, ge=0)
    max_cost_increase_pct: float | None = Field(default=None, ge=0)
    confidence: float = Field(default=0.95, gt=0, lt=1)


class Guardrails(Record):
    """The limits a live change is watched against (stored with the plan).

    The guardrail-KPI fields are optional and left out of the dump until set,
    so plans stored before them keep their shape.
    """

    max_relative_worsening: float = Field(ge=0)
    min_cases_per_cohort: int = Field(ge=2)
    max_writes: int = Field(ge=0)
    end_activities: list[str]
    start_activities: list[str]
    thresholds: GuardrailThresholds | None = None
    sla_hours: float | None = Field(default=None, gt=0)
    reopen_activities: list[str] | None = None
    failure_activities: list[str] | None = None


DesignName = Literal["switchback", "before_after_with_counterfactual", "treatment_control_corrected",
                     "treatment_control"]
"""How a live change is measured (see ``closedloop.tools.measure.choose_design``)."""


class DesignChoice(BaseModel):
    """The measurement design chosen for a change, and why."""

    design: DesignName
    why: str


class EffectEstimate(BaseModel):
    """The measured total effect of a change on a KPI (with the change minus without), with its interval.

    ``unit`` is what the interval treats as independent (time blocks in a
    switchback, cases otherwise); ``estimator`` says whether open cases were
    censored (restricted mean up to ``tau_hours``) or every case was closed.
    """

    kpi: str = "cycle_time_hours"
    design: DesignName
    why: str
    effect: float
    ci_low: float
    ci_high: float
    confidence: float
    baseline: float
    changed: float
    relative_pct: float | None
    significant: bool
    unit: Literal["block", "case"]
    units_changed: int
    units_baseline: int
    cases: int
    open_cases: int
    estimator: str
    tau_hours: float | None = None
    assumptions: list[str] = Field(default_factory=list)


class RateStat(BaseModel):
    """A share of cases (e.g. reworked) with its standard error; ``count`` when it is a plain count."""

    rate: float
    n: int
    se: float
    count: int | None = None


class GuardrailKpis(BaseModel):
    """Quality and cost KPIs of one cohort or period, measured from its events."""

    cases: int
    open_cases: int
    rework: RateStat
    reopen: RateStat
    failure: RateStat | None = None
    sla_attainment: RateStat | None = None
    sla_hours: float | None = None
    busy_hours: float
    staff_cost: float
    cost_per_case: float
    assumptions: list[str] = Field(default_factory=list)


class GuardrailResult(BaseModel):
    """One guardrail: how much it worsened (positive = worse), its interval, and whether it breached."""

    kpi: str
    unit: Literal["points", "pct"]
    baseline: float
    changed: float
    worsening: float
    ci_low: float | None
    ci_high: float | None
    threshold: float
    breached: bool


class GuardrailCheck(BaseModel):
    """All guardrails of a change: it is aborted when any breached."""

    breached: bool
    breaches: list[str]
    results: list[GuardrailResult]
    rule: str


class SequentialDecision(BaseModel):
    """A sequential test's state on the rework proportion: abort early, keep watching, or no breach."""

    decision: Literal["abort", "continue", "no_breach"]
    n: int
    stopped_at: int | None
    log_likelihood_ratio: float
    upper: float
    lower: float
    p0: float
    p1: float
    alpha: float
    beta: float
    rule: str


class KpiMeasurement(Record):
    """A live change's effect on cycle time, measured from the system's own events since it.

    ``design``/``why``/``effect`` say how the effect was measured (the legacy
    ``delta``/``ci_*`` repeat ``effect``'s numbers); ``treatment``/``control``
    are the changed and the baseline cohort or period. ``guardrail_kpis`` are
    per cohort or period, ``guardrail_check`` and ``sequential`` their checks.
    Without enough completed cases the cohort statistics and the delta are absent.
    """

    kpi: str = "cycle_time_hours"
    source: str
    events: int
    min_cases_per_cohort: int
    enough_cases: bool
    treatment_n: int
    control_n: int
    treatment: CohortStats | None = None
    control: CohortStats | None = None
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    relative_pct: float | None = None
    guardrail_breached: bool | None = None
    guardrail: str | None = None
    design: DesignName | None = None
    why: str | None = None
    effect: EffectEstimate | None = None
    guardrail_check: GuardrailCheck | None = None
    guardrail_kpis: dict[str, GuardrailKpis] | None = None
    sequential: SequentialDecision | None = None


# --------------------------------------------------------------------------- approvals
class RunNotFound(LookupError):
    """No loop run or approval with that id."""


class NotPaused(RuntimeError):
    """The run is not waiting for what the caller tried to give it."""


class InvalidApproval(ValueError):
    """An approval answer that is neither 'approve' nor 'reject' (the run stays paused)."""


class ApprovalAnswer(BaseModel):
    """A human's answer to a plan waiting for approval (the value given to ``Command(resume=...)``)."""

    model_config = ConfigDict(extra="ignore")

    decision: Literal["approve", "reject"]
    by: str = "unknown"
    comment: str = ""
    channel: str = "cli"


def parse_approval(value: Any) -> ApprovalAnswer:
    """The approval answer in ``value`` (a dict, an ``ApprovalAnswer`` or a bare 'approve'/'reject')."""
    if isinstance(value, ApprovalAnswer):
        return value
    if isinstance(value, str):
        value = {"decision": value}
    try:
        return ApprovalAnswer.model_validate(value)
    except ValidationError as exc:
        got = value.get("decision") if isinstance(value, dict) else value
        raise InvalidApproval(f"an approval answer must be 'approve' or 'reject', got {got!r}") from exc


# --------------------------------------------------------------------------- step records
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
    | Annotated[WatchStep, Tag("watch")] | Annotated[RollbackStep, Tag("rollback")]
    | Annotated[LearnStep, Tag("learn")],
    Discriminator(_step_kind),
]
"""One record of what a graph node did, told apart by its ``step`` field."""

STEPS: TypeAdapter[list[Step]] = TypeAdapter(list[Step])


def parse_steps(raw: list[dict[str, Any]]) -> list[Step]:
    """The typed step records of a run's state (``state["steps"]``)."""
    return STEPS.validate_python(raw)
