"""The action catalog as the planner sees it: generic models over a connector's catalog.

The catalog itself is built from a connector (``closedloop.tools.connect``):
the only writes closedloop can ever make. Text from logs or models cannot add
to it; the gate, the allowlist and approvals refer to its action names.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from closedloop.tools.base import read_tool
from closedloop.tools.connect import Catalog


class Condition(BaseModel):
    """Which cases a segment covers: ``field op value`` over case attributes."""

    field: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    op: Literal["eq", "neq", "in"] = "eq"
    value: str | list[str]


class ActionSpec(BaseModel):
    """One catalog action as the planner and approvers see it."""

    name: str
    description: str
    params_schema: dict[str, Any]
    risk: Literal["low", "medium", "high"]
    reversible: bool = True
    change_kinds: list[str] = Field(default_factory=list)


@read_tool
def list_catalog(catalog: Catalog) -> list[ActionSpec]:
    """Every action closedloop may request through the connector of ``catalog``."""
    return [ActionSpec(name=a.name, description=a.description, params_schema=a.params_schema,
                       risk=a.risk, reversible=a.reversible, change_kinds=list(a.change_kinds))
            for a in catalog.actions.values()]
