"""The enterprise action catalog: the only writes closedloop can ever make.

Each action names its HTTP call, its parameters and how to undo it. The gate,
the allowlist and approvals refer to these names; text from logs or models
cannot add to them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from closedloop.tools.act.invoke import ApiRequest
from closedloop.tools.errors import NotAllowedError


class Condition(BaseModel):
    """Which cases a rule applies to: ``field op value`` over case attributes."""

    field: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    op: Literal["eq", "neq", "in"] = "eq"
    value: str | list[str]


class SetQueueStaffing(BaseModel):
    queue: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    agents: int = Field(ge=0, le=50)


class CreateRule(BaseModel):
    name: str = Field(max_length=120)
    condition: Condition
    rule_action: Literal["auto_resolve", "route"] = "auto_resolve"
    route_queue: str | None = None
    treatment_share: float = Field(gt=0, le=1)


class ActionSpec(BaseModel):
    name: str
    description: str
    params_schema: dict[str, Any]
    risk: Literal["low", "medium", "high"]
    reversible: bool = True


CATALOG: dict[str, tuple[ActionSpec, type[BaseModel]]] = {
    "set_queue_staffing": (
        ActionSpec(
            name="set_queue_staffing",
            description="Set the number of agents working a queue (all cases of the queue are affected; no control group).",
            params_schema=SetQueueStaffing.model_json_schema(),
            risk="medium",
        ),
        SetQueueStaffing,
    ),
    "create_rule": (
        ActionSpec(
            name="create_rule",
            description=(
                "Create an automation rule for cases matching a condition: auto_resolve (a bot handles the "
                "case instead of first-level staff) or route (send straight to another queue). Applied to a "
                "treatment share of matching cases; the rest form the control group."
            ),
            params_schema=CreateRule.model_json_schema(),
            risk="low",
        ),
        CreateRule,
    ),
}


def list_catalog() -> list[ActionSpec]:
    """Every action closedloop may request."""
    return [spec for spec, _ in CATALOG.values()]


def validate_params(action: str, params: dict[str, Any]) -> BaseModel:
    """Typed parameters of an allowed action; NotAllowedError for anything else."""
    if action not in CATALOG:
        raise NotAllowedError(f"action {action!r} is not in the catalog; allowed: {sorted(CATALOG)}")
    return CATALOG[action][1].model_validate(params)


def build_request(action: str, params: dict[str, Any], idempotency_key: str) -> ApiRequest:
    """The HTTP call that performs ``action``."""
    p = validate_params(action, params)
    if isinstance(p, SetQueueStaffing):
        return ApiRequest(method="PUT", path=f"/config/staffing/{p.queue}", body={"agents": p.agents},
                          idempotency_key=idempotency_key)
    assert isinstance(p, CreateRule)
    rule_action: dict[str, Any] = {"type": p.rule_action}
    if p.rule_action == "route":
        rule_action["queue"] = p.route_queue
    return ApiRequest(
        method="POST", path="/rules", idempotency_key=idempotency_key,
        body={"name": p.name, "condition": p.condition.model_dump(), "action": rule_action,
              "treatment_share": p.treatment_share},
    )


def build_compensation(action: str, params: dict[str, Any], response: dict[str, Any], idempotency_key: str) -> ApiRequest:
    """The HTTP call that undoes a performed ``action``, from its response."""
    p = validate_params(action, params)
    if isinstance(p, SetQueueStaffing):
        return ApiRequest(method="PUT", path=f"/config/staffing/{p.queue}",
                          body={"agents": int(response["previous_agents"])}, idempotency_key=idempotency_key)
    return ApiRequest(method="DELETE", path=f"/rules/{response['rule_id']}", idempotency_key=idempotency_key)
