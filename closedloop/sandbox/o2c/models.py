"""Typed request and response bodies of the o2c sandbox's OData-shaped API.

Responses are documented here and built as plain dicts in the app (pages are
large); every body sits in OData v2's ``{"d": ...}`` envelope.
"""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

Segment = Literal["enterprise", "mid_market", "small_business", "new_customer"]
T = TypeVar("T")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Results(BaseModel, Generic[T]):
    """A page of an entity set."""

    model_config = ConfigDict(populate_by_name=True)

    results: list[T]
    next_link: str | None = Field(None, alias="__next",
                                  description="URL of the next page; absent when caught up")
    skiptoken: str | None = Field(None, alias="__skiptoken",
                                  description="the $skiptoken of __next")
    count: str | None = Field(None, alias="__count", description="with $inlinecount=allpages")


class SalesOrder(BaseModel):
    """An entity of ``A_SalesOrder``."""

    SalesOrder: str
    SalesOrganization: str
    SoldToParty: str
    CustomerSegment: str
    SalesRegion: str
    TotalNetAmount: float
    TransactionCurrency: str
    CustomerPaymentTerms: str
    Experiment: str = Field(description="'<RuleID>:treatment' or ':control'; '' when no rule")
    CreationDateTime: str
    OverallStatus: str
    ApprovalStatus: str
    DueDate: str | None


class StatusHistoryEntry(BaseModel):
    """An entity of ``A_SalesOrderStatusHistory``: one completed activity of an order."""

    ChangeSequence: int = Field(description="increasing; the feed's cursor")
    ChangeDocument: str = Field(description="unique event id")
    SalesOrder: str
    Activity: str
    ActivityStartedAt: str = Field(description="ISO 8601 UTC, simulation clock")
    ActivityCompletedAt: str = Field(description="ISO 8601 UTC, simulation clock")
    Resource: str
    Team: str
    SoldToParty: str
    CustomerSegment: str
    SalesRegion: str
    TotalNetAmount: float
    TransactionCurrency: str
    CustomerPaymentTerms: str
    Experiment: str


class TeamEntity(BaseModel):
    """An entity of ``A_Team``."""

    Team: str
    Headcount: int
    WorkingHoursStart: int = Field(description="hour of day, UTC, Monday to Friday")
    WorkingHoursEnd: int
    BusyMembers: int
    WaitingItems: int
    PreviousHeadcount: int | None = Field(None, description="only in the answer to a PUT")


class TeamUpdate(_Strict):
    """New headcount (and optionally working hours) of a team."""

    Headcount: int = Field(ge=0, le=50)
    WorkingHoursStart: int | None = Field(None, ge=0, le=23)
    WorkingHoursEnd: int | None = Field(None, ge=1, le=24)

    @model_validator(mode="after")
    def _hours_in_order(self) -> TeamUpdate:
        if (self.WorkingHoursStart is None) != (self.WorkingHoursEnd is None):
            raise ValueError("give both WorkingHoursStart and WorkingHoursEnd, or neither")
        if self.WorkingHoursStart is not None and self.WorkingHoursEnd is not None \
                and self.WorkingHoursStart >= self.WorkingHoursEnd:
            raise ValueError("WorkingHoursStart must be before WorkingHoursEnd")
        return self


class ApprovalThreshold(BaseModel):
    """An entity of ``A_ApprovalThreshold``: orders at or above the amount need approval."""

    SalesOrganization: str
    ThresholdAmount: float
    Currency: str
    PreviousThresholdAmount: float | None = Field(None, description="only in a PUT's answer")


class ThresholdUpdate(_Strict):
    """New manual-approval threshold."""

    ThresholdAmount: float = Field(ge=0, le=10_000_000)


class AutoApprovalRuleIn(_Strict):
    """Skip manual approval for orders of a segment up to an amount, for a treatment share."""

    RuleName: str = Field(min_length=1, max_length=200)
    CustomerSegment: Segment
    MaxAmount: float = Field(gt=0, le=10_000_000)
    TreatmentShare: float = Field(ge=0.0, le=1.0)


class AutoApprovalRule(AutoApprovalRuleIn):
    """An entity of ``A_AutoApprovalRule``."""

    model_config = ConfigDict(extra="ignore")

    RuleID: str
    CreatedAt: str = Field(description="simulation time the rule became active")


class Configuration(BaseModel):
    """Answer of the ``GetConfiguration`` function import."""

    SalesOrganization: str
    Currency: str
    ApprovalThresholdAmount: float
    Staffing: dict[str, int] = Field(description="headcount per team")
    WorkingHours: dict[str, list[int]] = Field(description="[start, end) UTC hour per team")
    AutoApprovalRules: list[AutoApprovalRule]
    Now: str = Field(description="simulation time")


class D(BaseModel, Generic[T]):
    """OData v2's ``{"d": ...}`` wrapper."""

    d: T


class OrdersPage(D[Results[SalesOrder]]):
    """A page of sales orders."""


class HistoryPage(D[Results[StatusHistoryEntry]]):
    """A page of the status history (event feed)."""


class TeamsPage(D[Results[TeamEntity]]):
    """All teams."""


class RulesPage(D[Results[AutoApprovalRule]]):
    """Active auto-approval rules."""


class OrderOut(D[SalesOrder]):
    """One sales order."""


class TeamOut(D[TeamEntity]):
    """One team."""


class ThresholdOut(D[ApprovalThreshold]):
    """The approval threshold."""


class RuleOut(D[AutoApprovalRule]):
    """One auto-approval rule."""


class ConfigurationOut(D[Configuration]):
    """The whole writable configuration."""


class ODataErrorMessage(BaseModel):
    """Human-readable part of an error."""

    lang: str
    value: str


class ODataErrorDetail(BaseModel):
    """Machine-readable code and message."""

    code: str
    message: ODataErrorMessage


class ODataErrorBody(BaseModel):
    """An OData v2 error."""

    error: ODataErrorDetail
