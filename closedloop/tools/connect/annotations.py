"""The ``x-closedloop-*`` annotations of a connector, as pydantic models.

Where they go in an OpenAPI document:

* ``x-closedloop-connector`` (document root): name, idempotency header, auth.
* ``x-closedloop-events`` (the GET operation of the event feed): cursor and
  the mapping of each event's fields onto case, activity, timestamp, ...
* ``x-closedloop-state`` (the GET operation reading configuration/state).
* ``x-closedloop-action`` (each write operation the loop may use): change kind,
  parameters, request mapping, risk, treatment share, data contract,
  compensation and read-back verification.

Values in request mappings, compensations and verifications are JSON with
*sources*: a one-key object ``{"$param": "queue"}`` (an action parameter,
dots go into nested objects), ``{"$response": "/rule_id"}`` (JSON Pointer into
the action's response), ``{"$before": "/staffing/{queue}"}`` (pointer into the
state read before the write; ``{name}`` is filled from the parameters) or
``{"$const": ...}`` (a literal that may itself look like a source). A source
that resolves to null drops its key. The JSON Schema of all this ships beside
this module as ``annotations.schema.json``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CONNECTOR_KEY = "x-closedloop-connector"
EVENTS_KEY = "x-closedloop-events"
STATE_KEY = "x-closedloop-state"
ACTION_KEY = "x-closedloop-action"
OPERATION_KEYS = frozenset({EVENTS_KEY, STATE_KEY, ACTION_KEY})

ChangeKind = Literal[
    "add_capacity", "set_capacity", "automate_activity", "skip_activity",
    "route_segment", "approval_threshold", "priority",
]
Role = Literal["pool", "amount", "segment", "activity", "target", "threshold", "priority"]
Risk = Literal["low", "medium", "high"]
Pointer = Annotated[str, Field(pattern=r"^(/.*)?$", max_length=500,
                               description="JSON Pointer (RFC 6901), '' is the whole value")]
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]{0,79}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
                               description="name of an environment variable holding a secret")]

# Which twin roles each change kind needs among its parameters.
REQUIRED_ROLES: dict[str, frozenset[str]] = {
    "add_capacity": frozenset({"pool", "amount"}),
    "set_capacity": frozenset({"pool", "amount"}),
    "automate_activity": frozenset({"segment"}),
    "skip_activity": frozenset({"segment"}),
    "route_segment": frozenset({"segment"}),
    "approval_threshold": frozenset({"threshold"}),
    "priority": frozenset({"segment", "priority"}),
}
EVENT_FIELDS = ("case", "activity", "timestamp", "start", "resource", "lifecycle", "event_id")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoAuth(_Strict):
    """The API needs no credentials."""

    type: Literal["none"]


class BearerAuthConfig(_Strict):
    """``Authorization: Bearer <token>`` with a static token."""

    type: Literal["bearer"]
    token_env: EnvName
    optional: bool = Field(False, description="send no token when the variable is unset")


class BasicAuthConfig(_Strict):
    """HTTP basic authentication."""

    type: Literal["basic"]
    username_env: EnvName
    password_env: EnvName


class ApiKeyAuthConfig(_Strict):
    """An API key sent in a request header."""

    type: Literal["api_key"]
    header: str = Field(pattern=r"^[A-Za-z0-9\-_]{1,100}$")
    key_env: EnvName
    prefix: str = Field("", max_length=40, description="e.g. 'ApiKey ' before the key")


class OAuth2ClientCredentialsConfig(_Strict):
    """OAuth 2.0 client credentials grant; tokens are cached and refreshed."""

    type: Literal["oauth2_client_credentials"]
    token_url: str = Field(min_length=1, description="absolute, or relative to the API base URL")
    client_id_env: EnvName
    client_secret_env: EnvName
    scopes: list[str] = Field(default_factory=list)
    client_auth: Literal["basic", "post"] = "basic"
    refresh_leeway_s: float = Field(30.0, ge=0, le=3600)


AuthConfig = Annotated[
    NoAuth | BearerAuthConfig | BasicAuthConfig | ApiKeyAuthConfig | OAuth2ClientCredentialsConfig,
    Field(discriminator="type"),
]


class CsrfConfig(_Strict):
    """A CSRF token fetched by a GET before writes (SAP Gateway / OData style)."""

    header: str = Field("X-CSRF-Token", pattern=r"^[A-Za-z0-9\-_]{1,100}$")
    fetch_path: str = Field("", max_length=500,
                            description="GET target relative to the API base URL ('' = its root)")
    fetch_value: str = Field("Fetch", max_length=40)
    required_value: str = Field("Required", max_length=40,
                                description="the header's value on a 403 asking for a new token")


class ConnectorAnnotation(_Strict):
    """``x-closedloop-connector`` at the document root."""

    name: Name
    title: str | None = None
    idempotency_header: str | None = Field(
        None, pattern=r"^[A-Za-z0-9\-_]{1,100}$",
        description="header carrying a unique key on every write, if the API supports it",
    )
    auth: AuthConfig = Field(default_factory=lambda: NoAuth(type="none"))
    csrf: CsrfConfig | None = Field(None, description="fetch a CSRF token before each write")


class ActivityRule(_Strict):
    """An activity name for items whose fields all equal the given values (a list: any of)."""

    when: dict[Pointer, Any] = Field(min_length=1, description="pointer -> value or list")
    activity: str = Field(min_length=1, max_length=200)


TimeFormat = Literal["as_is", "odata_date", "epoch_ms", "epoch_s"]


class FieldMap(_Strict):
    """Where each event field is inside one event item (JSON Pointers)."""

    case: Pointer
    activity: Pointer
    activity_rules: list[ActivityRule] = Field(
        default_factory=list,
        description="first matching rule names the activity; none matching: the activity pointer",
    )
    timestamp: Pointer
    time_format: TimeFormat = Field(
        "as_is", description="odata_date (/Date(ms+hhmm)/), epoch_ms, epoch_s become ISO 8601 UTC",
    )
    start: Pointer | None = None
    resource: Pointer | None = None
    lifecycle: Pointer | None = None
    event_id: Pointer | None = None
    case_attributes: dict[Name, Pointer] = Field(default_factory=dict)
    case_attributes_from: Pointer | None = Field(
        None, description="an object whose every key becomes a case attribute"
    )


class CohortMap(_Strict):
    """How a case's treatment/control cohort shows in its events."""

    pointer: Pointer
    treatment_pattern: str = Field(max_length=200, description="regular expression")
    control_pattern: str = Field(max_length=200, description="regular expression")


class CaseScope(_Strict):
    """Where a case ends for the loop's KPIs: at the first of ``until`` (a milestone).

    Later events (a customer paying weeks after delivery) are outside what the
    loop can change and measure; the loop clips each case there, in history
    and after a change alike, so prediction and measurement share one KPI.
    """

    until: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=50, description="activities that end a case for the KPIs")
    why: str = Field(min_length=1, max_length=500, description="shown with every cycle time")


class Cursor(_Strict):
    """Paging: ``token`` (a cursor from the page goes into ``param``), ``offset`` (``param``
    advances by the items read) or ``next_link`` (the page holds the next page's URL)."""

    kind: Literal["token", "offset", "next_link"] = "token"
    param: str | None = Field(None, min_length=1, max_length=100)
    response_pointer: Pointer | None = Field(
        None, description="token: next cursor; next_link: next URL; null/absent = caught up")
    has_more_pointer: Pointer | None = Field(
        None, description="offset: a boolean saying more pages follow (else: a short page ends)")
    initial: str | int | None = None

    @model_validator(mode="after")
    def _fits_kind(self) -> Cursor:
        if self.kind in ("token", "offset") and self.param is None:
            raise ValueError(f"cursor kind {self.kind!r} needs 'param'")
        if self.kind in ("token", "next_link") and self.response_pointer is None:
            raise ValueError(f"cursor kind {self.kind!r} needs 'response_pointer'")
        if self.kind == "next_link" and self.param is not None:
            raise ValueError("cursor kind 'next_link' takes no 'param' (the link is the URL)")
        return self


class FixedRequest(_Strict):
    """Fixed path, query and header values of a read (for a generic ``/table/{name}`` path)."""

    path: dict[str, str | int] = Field(default_factory=dict)
    query: dict[str, str | int | bool] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)


class Since(_Strict):
    """Incremental reads by a time watermark filling ``{since}`` in the feed's request."""

    initial: str = Field(min_length=1, max_length=100, description="watermark of the first read")
    format: str | None = Field(
        None, max_length=100,
        description="strftime format of the watermark (UTC); default: the timestamp as read",
    )


class EventFeedAnnotation(_Strict):
    """``x-closedloop-events`` on the operation that pages through events."""

    items: Pointer = Field(description="where the list of events is in a page")
    cursor: Cursor
    request: FixedRequest = Field(
        default_factory=FixedRequest,
        description="fixed values; strings may hold {since} and {page_size}",
    )
    since: Since | None = None
    page_size_param: str | None = None
    page_size: int = Field(1000, ge=1, le=100_000)
    fields: FieldMap
    cohort: CohortMap | None = None
    case_scope: CaseScope | None = Field(
        None, description="end cases at a milestone for the KPIs (default: their last event)")


class StateAnnotation(_Strict):
    """``x-closedloop-state`` on the operation that reads configuration/state."""

    request: FixedRequest = Field(default_factory=FixedRequest)
    values: dict[Name, Pointer] = Field(default_factory=dict,
                                        description="named values, e.g. headcount per pool")
    pool_capacity: str | None = Field(
        None, max_length=500, description="pointer template to one pool's capacity: /x/{pool}"
    )


class RequestMap(_Strict):
    """How an action's parameters fill the request (values may hold sources)."""

    path: dict[str, Any] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, Any] = Field(default_factory=dict)
    body: Any = None


class Compensation(RequestMap):
    """The call that undoes an action: its operation and where its values come from."""

    operation: str = Field(min_length=1, description="operationId")


class Contains(_Strict):
    """A list holds an item whose ``key`` equals ``value``."""

    key: str = Field(min_length=1)
    value: Any


class ReadCall(_Strict):
    """A read made for an action (before-state of one record): operation and its values."""

    operation: str = Field(min_length=1, description="operationId of a GET")
    path: dict[str, Any] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, Any] = Field(default_factory=dict)


class Verify(_Strict):
    """Read-back: after the write, this read must show the change."""

    operation: str | None = Field(None, description="operationId; default: the state read")
    path: dict[str, Any] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, Any] = Field(default_factory=dict)
    pointer: str = Field(max_length=500, description="pointer template into the read's body")
    equals: Any = None
    contains: Contains | None = None


class ChangeKindByParam(_Strict):
    """The change kind depends on one parameter's value."""

    param: str
    values: dict[str, ChangeKind] = Field(min_length=1)


class TreatmentShare(_Strict):
    """The system applies the change to this share of matching cases (the rest: control)."""

    param: str


class DataContract(_Strict):
    """Event fields the action needs in the log (names of the event feed's mapping)."""

    required_fields: list[str] = Field(default_factory=list)


class ActionAnnotation(_Strict):
    """``x-closedloop-action`` on a write operation the loop may use."""

    name: Name
    description: str = Field(min_length=1, max_length=2000)
    change_kind: ChangeKind | ChangeKindByParam
    roles: dict[Role, str] = Field(default_factory=dict,
                                   description="twin role -> parameter name")
    params: dict[str, Any] = Field(description="JSON Schema (object) of the parameters")
    request: RequestMap
    risk: Risk
    treatment_share: TreatmentShare | None = None
    data_contract: DataContract = Field(default_factory=DataContract)
    compensation: Compensation | None = None
    before: str | ReadCall | None = Field(
        None, description="operationId (or operation and values) read before; default: state read"
    )
    verify: Verify | None = None


class Annotations(_Strict):
    """All annotation kinds, for the shipped JSON Schema (one ``$defs`` entry each)."""

    connector: ConnectorAnnotation | None = Field(None, alias=CONNECTOR_KEY)
    events: EventFeedAnnotation | None = Field(None, alias=EVENTS_KEY)
    state: StateAnnotation | None = Field(None, alias=STATE_KEY)
    action: ActionAnnotation | None = Field(None, alias=ACTION_KEY)


__all__ = [
    "ACTION_KEY",
    "CONNECTOR_KEY",
    "EVENTS_KEY",
    "EVENT_FIELDS",
    "OPERATION_KEYS",
    "REQUIRED_ROLES",
    "STATE_KEY",
    "ActionAnnotation",
    "ActivityRule",
    "Annotations",
    "ApiKeyAuthConfig",
    "AuthConfig",
    "BasicAuthConfig",
    "BearerAuthConfig",
    "CaseScope",
    "ChangeKind",
    "ChangeKindByParam",
    "CohortMap",
    "Compensation",
    "ConnectorAnnotation",
    "Contains",
    "CsrfConfig",
    "Cursor",
    "DataContract",
    "EventFeedAnnotation",
    "FieldMap",
    "FixedRequest",
    "NoAuth",
    "OAuth2ClientCredentialsConfig",
    "ReadCall",
    "RequestMap",
    "Since",
    "StateAnnotation",
    "TimeFormat",
    "TreatmentShare",
    "Verify",
]
