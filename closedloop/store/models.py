"""SQLModel tables for the whole audit chain.

EventLog -> MiningRun -> Insight -> Opportunity -> Simulation/Plan -> Approval
-> Execution -> KpiSnapshot -> Verdict, every row pointing at where it came
from; AuditEvent records every prompt, model answer and tool call by run id.
PushedEventRow holds events systems push (``POST /events``); Alert holds external
process-mining alerts, each imported as an Opportunity (without an insight until a
run mines the process and triage finds the same fingerprint).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Timezone-aware current UTC time (the store's only clock)."""
    return datetime.now(UTC)


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Dataset(SQLModel, table=True):
    """An event log the loop has read (a file or an API collection)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str
    source: str = Field(description="file path or API URL the events came from")
    format: str
    events: int
    cases: int
    sha256: str = Field(index=True)
    artifact: str = Field(default="", description="parquet snapshot of the canonical event frame")
    created_at: datetime = Field(default_factory=utcnow)


class LoopRun(SQLModel, table=True):
    """One pass of the closed loop; its id is the LangGraph thread id."""

    id: str = Field(primary_key=True)
    scope: str = Field(index=True)
    status: str = Field(default="running", description="running|paused|completed|rejected|failed")
    dataset_id: int | None = Field(default=None, foreign_key="dataset.id")
    api_url: str | None = Field(
        default=None, description="enterprise API the loop observes and acts on"
    )
    catalog_version: str | None = Field(
        default=None, index=True, description="the connector catalog the run is bound to"
    )
    owner: str | None = Field(
        default=None,
        description="host:pid of the process driving the run "
        "now (None when nobody is); a dead owner "
        "means the run was interrupted",
    )
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    degraded: str | None = Field(
        default=None,
        description="None while every agent step got a valid answer from its configured model; "
        "else which steps the offline policy decided in its place and why",
    )


class CatalogVersion(SQLModel, table=True):
    """One version of a connector's action catalog: the annotated OpenAPI document it was built
    from (spec plus overlays), keyed by the catalog's hash."""

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(index=True)
    version: str = Field(unique=True, index=True, description="<connector>@<hash of the catalog>")
    content: dict = _json()
    created_at: datetime = Field(default_factory=utcnow)


class MiningRun(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="dataset.id", index=True)
    run_id: str | None = Field(default=None, foreign_key="looprun.id", index=True)
    report: dict = _json()
    duration_s: float
    created_at: datetime = Field(default_factory=utcnow)


class Insight(SQLModel, table=True):
    """One finding of a mining run (bottleneck, rework loop, slow variant)."""

    id: int | None = Field(default=None, primary_key=True)
    mining_run_id: int = Field(foreign_key="miningrun.id", index=True)
    kind: str
    activity: str
    metric: str
    value: float
    detail: dict = _json()


class Opportunity(SQLModel, table=True):
    """A deduplicated finding worth acting on; Priority = Impact x Feasibility / (1 + Risk)."""

    __table_args__ = (UniqueConstraint("fingerprint", name="uq_opportunity_fingerprint"),)
    id: int | None = Field(default=None, primary_key=True)
    insight_id: int | None = Field(
        default=None,
        foreign_key="insight.id",
        index=True,
        description="None for an opportunity imported from an alert",
    )
    fingerprint: str
    process: str
    pattern: str
    activity: str
    attributes: dict = _json()
    impact: float
    feasibility: float
    risk: float
    priority: float
    owner: str = "operations"
    status: str = Field(default="open", description="open|planned|acted|dismissed")
    rationale: str = ""
    seen_count: int = 1
    created_at: datetime = Field(default_factory=utcnow)


class Simulation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    opportunity_id: int = Field(foreign_key="opportunity.id", index=True)
    run_id: str | None = Field(default=None, foreign_key="looprun.id", index=True)
    scenario: dict = _json()
    result: dict = _json()
    seed: int
    replications: int
    created_at: datetime = Field(default_factory=utcnow)


class Plan(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="looprun.id", index=True)
    opportunity_id: int = Field(foreign_key="opportunity.id", index=True)
    simulation_id: int | None = Field(default=None, foreign_key="simulation.id")
    scope: str
    hypothesis: str
    rules: list = _json_list()
    actions: list = _json_list()
    predicted: dict = _json()
    blast_radius: dict = _json()
    risk_tier: str
    cohort: dict = _json()
    guardrails: dict = _json()
    compensations: list = _json_list()
    catalog_version: str | None = Field(default=None, index=True)
    status: str = Field(
        default="proposed",
        description="proposed|shadowed|awaiting_approval|approved|rejected|executed|kept|rolled_back|escalated",
    )
    created_at: datetime = Field(default_factory=utcnow)


class Policy(SQLModel, table=True):
    """Autonomy of one scope: shadow, assisted or supervised, plus the kill switch."""

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(unique=True, index=True)
    mode: str = "assisted"
    kill_switch: bool = False
    caps: dict = _json()
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = "system"


class Approval(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    run_id: str = Field(foreign_key="looprun.id", index=True)
    status: str = Field(default="pending", description="pending|approved|rejected")
    channel: str = "cli"
    decided_by: str | None = None
    comment: str = ""
    requested_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = None


class Execution(SQLModel, table=True):
    """One enterprise API call with its idempotency key and compensation."""

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    approval_id: int | None = Field(default=None, foreign_key="approval.id")
    action: str
    idempotency_key: str = Field(unique=True, index=True)
    request: dict = _json()
    status: str = Field(
        default="pending",
        description="pending (intent committed, outcome not known yet)|succeeded|"
        "unverified|unknown|failed|compensated|compensation_failed",
    )
    attempts: int = 0
    response: dict = _json()
    compensation: dict = _json()
    catalog_version: str | None = Field(default=None, index=True)
    verified: bool | None = Field(default=None, description="read-back showed the change")
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class KpiSnapshot(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    kpi: str
    cohort: str = Field(description="treatment|control")
    n: int
    mean: float
    ci_low: float
    ci_high: float
    source: str = Field(description="where the numbers come from, e.g. the sandbox events URL")
    window_start: datetime | None = None
    window_end: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Verdict(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    decision: str = Field(description="keep|rollback|escalate")
    kpi: str
    delta: float
    ci_low: float
    ci_high: float
    predicted_delta: float | None = None
    rationale: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    """Every prompt, model answer, tool call and decision, by run id."""

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    actor: str
    kind: str = Field(
        description="prompt|model_answer|tool_call|tool_result|tool_error|gate|decision"
    )
    payload: dict = _json()
    created_at: datetime = Field(default_factory=utcnow)


class PushedEventRow(SQLModel, table=True):
    """One event a system pushed; ``id`` is its arrival order (the paging cursor)."""

    __tablename__ = "pushedevent"
    __table_args__ = (UniqueConstraint("source", "event_id", name="uq_pushedevent_source_event"),)
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(index=True)
    event_id: str
    case_id: str
    activity: str
    timestamp: datetime
    start_timestamp: datetime | None = None
    resource: str | None = None
    lifecycle: str | None = None
    cohort: str | None = None
    attributes: dict = _json()
    digest: str = Field(
        description="hash of the content: a replay with other content is a conflict"
    )
    received_at: datetime = Field(default_factory=utcnow)


class Alert(SQLModel, table=True):
    """An external process-mining alert (webhook payload) and the opportunity it became."""

    __table_args__ = (UniqueConstraint("source", "alert_id", name="uq_alert_source_alert_id"),)
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(index=True, description="who sent it, e.g. celonis")
    alert_id: str | None = Field(
        default=None, description="the sender's id: a redelivery is a replay"
    )
    fingerprint: str = Field(index=True)
    opportunity_id: int = Field(foreign_key="opportunity.id", index=True)
    mapped: dict = _json()
    payload: dict = _json()
    received_at: datetime = Field(default_factory=utcnow)


class DeadLetter(SQLModel, table=True):
    """A write (or its compensation) that could not be completed after every retry; ``closedloop
    deadletter replay`` sends it again with the same idempotency key."""

    id: int | None = Field(default=None, primary_key=True)
    execution_id: int = Field(foreign_key="execution.id", index=True)
    run_id: str = Field(index=True)
    kind: str = Field(description="write|compensation")
    reason: str
    status: str = Field(default="open", index=True, description="open|resolved")
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = None


class PolicyVersion(SQLModel, table=True):
    """Every version of a scope's policy, kept forever (who, through which channel, on what
    evidence)."""

    __table_args__ = (UniqueConstraint("scope", "version", name="uq_policyversion_scope_version"),)
    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(index=True)
    version: int
    mode: str
    kill_switch: bool
    caps: dict = _json()
    by: str
    channel: str
    evidence: dict = _json()
    created_at: datetime = Field(default_factory=utcnow)


class ModelCall(SQLModel, table=True):
    """One turn of an agent's model (a configured LLM or the offline policy): tokens, estimated
    cost and latency, whether it answered, and whether it was the fallback after a failure."""

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    agent: str = Field(index=True)
    model: str
    offline: bool = Field(description="the offline rule policy answered (no model service)")
    fallback: bool = Field(default=False, description="it stood in for a failed configured model")
    ok: bool = Field(default=True, description="False: the model service failed on this turn")
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = Field(
        default=None, description="estimated from the model's price per token; None: unknown"
    )
    latency_ms: float = 0.0
    created_at: datetime = Field(default_factory=utcnow)


class JobRecord(SQLModel, table=True):
    """A long job of the REST API (mining a pushed source or an uploaded log) with its progress,
    kept here so its state outlives the serving process: a job whose process died before it
    finished is failed as interrupted (``closedloop.api.jobs``), never lost."""

    __tablename__ = "job"
    id: str = Field(primary_key=True)
    kind: str
    status: str = Field(default="queued", index=True, description="queued|running|done|failed")
    stage: str = "queued"
    progress: float = 0.0
    by: str
    owner: str = Field(description="the serving process running it (host:pid:start)")
    request: dict = _json()
    result: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
