"""The operations of an OpenAPI document that a catalog may call, with their parameters."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from closedloop.tools.connect.spec import deref


class OperationRef(BaseModel):
    """One operation of the spec the catalog may call."""

    operation_id: str
    method: str
    path: str
    path_params: list[str]
    query_params: list[str]
    header_params: list[str]
    required: list[str]

    @property
    def label(self) -> str:
        """``operationId (METHOD /path)`` for messages."""
        return f"{self.operation_id} ({self.method} {self.path})"


def operation_ref(method: str, path: str, operation: dict[str, Any],
                   item: dict[str, Any], doc: dict[str, Any]) -> OperationRef:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*item.get("parameters", []), *operation.get("parameters", [])]:
        param = deref(doc, raw, where=f"{method.upper()} {path} parameters")
        if isinstance(param, dict) and "name" in param and "in" in param:
            merged[(param["in"], param["name"])] = param
    by_place: dict[str, list[str]] = {"path": [], "query": [], "header": []}
    required = []
    for (place, name), param in merged.items():
        if place in by_place:
            by_place[place].append(name)
            if param.get("required") or place == "path":
                required.append(f"{place}:{name}")
    template_names = re.findall(r"\{([^}]+)\}", path)
    return OperationRef(
        operation_id=operation.get("operationId") or f"{method.upper()} {path}",
        method=method.upper(), path=path,
        path_params=sorted(set(by_place["path"]) | set(template_names)),
        query_params=sorted(by_place["query"]), header_params=sorted(by_place["header"]),
        required=sorted(required),
    )


__all__ = ["OperationRef", "operation_ref"]
