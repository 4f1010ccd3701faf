"""Typed request and response bodies of the REST API and the Teams bot endpoint."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

SCOPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
Mode = Literal["shadow", "assisted", "supervised"]
ApprovalStatus = Literal["pending", "approved", "rejected"]


def _as_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; the store only ever writes UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class ErrorOut(BaseModel):
    """Every error the API answers on purpose (404, 409, 502, 503...)."""

    error: str = Field(description="machine-readable code, e.g. not_found, not_paused")
    detail: str = Field(description="what went wrong, for people")
    run_id: str | None = Field(default=None, description="the run concerned, when one was started")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    teams_bot: Literal["enabled", "disabled"] = Field(
        description="'disabled' until CLOSEDLOOP_TEAMS_APP_ID is set (/api/messages answers 503)"
    )
    teams_webhook: Literal["enabled", "disabled"] = Field(
        default="disabled",
        description="'disabled' until CLOSEDLOOP_TEAMS_SECRET is set (/teams/messages answers 503)",
    )


class PendingInterrupt(BaseModel):
    """What a paused run waits for: an approval or fresh evidence."""

    model_config = ConfigDict(extra="allow")
    kind: str
    run_id: str
    plan_id: int | None = None
    approval_id: int | None = None
    wait_hours: float | None = Field(
        default=None,
        description="evidence: resume after the system has run this many more hours (a "
        "switchback block); none: whenever the observation window has passed",
    )


class AuditChain(BaseModel):
    """The ids that trace a run from data to verdict."""

    run_id: str | None = None
    dataset_id: int | None = None
    mining_run_id: int | None = None
    opportunity_id: int | None = None
    simulation_id: int | None = None
    plan_id: int | None = None
    approval_id: int | None = None
    execution_ids: list[int] = Field(default_factory=list)
    verdict_id: int | None = None


class RunView(BaseModel):
    """A loop run: store row, graph state, pending interrupt and audit chain."""

    run_id: str
    scope: str
    status: str = Field(description="running|paused|completed|rejected|failed|kept|rolled_back|...")
    api_url: str | None
    outcome: str | None = None
    decision: str | None = None
    plan_id: int | None = None
    approval_id: int | None = None
    pending: PendingInterrupt | None = None
    steps: list[dict[str, Any]] = Field(default_factory=list)
    audit_chain: AuditChain
    created_at: UtcDatetime
    updated_at: UtcDatetime


class StartRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    api_url: str | None = Field(
        default=None,
        max_length=2000,
        description="base URL of the enterprise API; only the connector's configured base URL "
        "(CLOSEDLOOP_SANDBOX_URL or the manifest's) is accepted, so its token never "
        "goes elsewhere; omit it to use that URL",
    )
    scope: str | None = Field(
        default=None,
        pattern=SCOPE_PATTERN,
        description="scope whose policy gates the run (default: CLOSEDLOOP_SCOPE)",
    )

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("api_url must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("api_url must not carry credentials (use CLOSEDLOOP_SANDBOX_TOKEN)")
        return value.strip().rstrip("/")


class ApprovalView(BaseModel):
    id: int
    run_id: str
    plan_id: int
    status: str
    channel: str
    decided_by: str | None
    comment: str
    requested_at: UtcDatetime
    decided_at: UtcDatetime | None
    scope: str
    hypothesis: str
    risk_tier: str
    plan_status: str


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject", "ask"] = Field(
        description="approve or reject (resumes the loop once), or ask: a question or comment back to "
        "the loop, stored with the approval, which stays pending"
    )
    by: str | None = Field(
        default=None,
        max_length=200,
        description="ignored: the authenticated caller is recorded as who decided",
    )
    comment: str = Field(default="", max_length=2000, description="free text, stored as data only")

    @model_validator(mode="after")
    def _ask_has_text(self) -> DecisionIn:
        if self.decision == "ask" and not self.comment.strip():
            raise ValueError("decision 'ask' needs the question in comment")
        return self


class DecisionOut(BaseModel):
    approval: ApprovalView
    run: RunView


class AuditEventView(BaseModel):
    id: int
    run_id: str
    actor: str
    kind: str
    payload: dict[str, Any]
    created_at: UtcDatetime


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Mode | None = None
    kill_switch: bool | None = None
    by: str | None = Field(
        default=None,
        max_length=200,
        description="ignored: the authenticated caller is recorded as who changed it",
    )

    @model_validator(mode="after")
    def _something_to_change(self) -> PolicyIn:
        if self.mode is None and self.kill_switch is None:
            raise ValueError("give mode and/or kill_switch")
        return self


class PolicyView(BaseModel):
    scope: str
    mode: str
    kill_switch: bool
    caps: dict[str, Any]
    updated_at: UtcDatetime
    updated_by: str


# --- Teams (Bot Framework) activity, only the fields the bot reads ---------------


class ChannelAccount(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    id: str | None = Field(default=None, max_length=500)
    name: str | None = Field(default=None, max_length=500)
    aad_object_id: str | None = Field(default=None, alias="aadObjectId", max_length=200)


class CardAction(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str | None = None
    verb: str = Field(max_length=100)
    data: dict[str, Any] = Field(default_factory=dict)


class CardActionValue(BaseModel):
    model_config = ConfigDict(extra="ignore")
    action: CardAction


class ConversationAccount(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(max_length=500)


class Activity(BaseModel):
    """A Bot Framework activity: only the fields the bot reads."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    type: str = Field(max_length=100)
    id: str | None = Field(default=None, max_length=500)
    name: str | None = Field(default=None, max_length=200)
    from_: ChannelAccount = Field(alias="from")
    value: Any = None
    text: str | None = Field(default=None, max_length=10_000)
    timestamp: datetime | None = None
    service_url: str | None = Field(default=None, alias="serviceUrl", max_length=2000)
    channel_id: str | None = Field(default=None, alias="channelId", max_length=100)
    conversation: ConversationAccount | None = None
    reply_to_id: str | None = Field(default=None, alias="replyToId", max_length=500)
