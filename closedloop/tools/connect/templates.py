"""Values with sources: how annotations say where a request value comes from.

A one-key object ``{"$param": "condition.field"}``, ``{"$response": "/rule_id"}``,
``{"$before": "/staffing/{queue}"}`` or ``{"$const": ...}`` stands for a value;
everything else is literal JSON. Pointer templates fill ``{name}`` from the
parameters (escaped as one JSON Pointer token each).
"""

from __future__ import annotations

import re
from typing import Any

from closedloop.tools.connect.errors import RequestBuildError
from closedloop.tools.connect.spec import escape_token, pointer_get

SOURCES = frozenset({"$param", "$response", "$before", "$const"})
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
_DROP = object()


def source_of(value: Any) -> tuple[str, Any] | None:
    """``(kind, argument)`` when ``value`` is a source object, else None."""
    if isinstance(value, dict) and len(value) == 1:
        (key, argument), = value.items()
        if key in SOURCES:
            return key, argument
    return None


def template_problems(value: Any, params: set[str], allowed: set[str], where: str) -> list[str]:
    """Every problem of a template: unknown sources, unknown parameters, wrong argument types."""
    problems: list[str] = []
    source = source_of(value)
    if source is not None:
        kind, argument = source
        if kind not in allowed:
            problems.append(f"{where}: {kind} is not available here (use {sorted(allowed)})")
        elif kind == "$const":
            pass
        elif not isinstance(argument, str):
            problems.append(f"{where}: {kind} needs a string")
        elif kind == "$param":
            if argument.split(".")[0] not in params:
                problems.append(f"{where}: unknown parameter {argument!r}")
        else:
            if argument and not argument.startswith("/"):
                problems.append(f"{where}: {kind} needs a JSON Pointer starting with '/'")
            problems.extend(
                f"{where}: unknown parameter {name!r} in pointer"
                for name in _PLACEHOLDER.findall(argument) if name.split(".")[0] not in params
            )
    elif isinstance(value, dict):
        for key, sub in value.items():
            if key.startswith("$") and key not in SOURCES:
                problems.append(f"{where}.{key}: unknown source {key!r} (use {sorted(SOURCES)})")
            problems.extend(template_problems(sub, params, allowed, f"{where}.{key}"))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            problems.extend(template_problems(sub, params, allowed, f"{where}[{i}]"))
    return problems


def param_value(params: dict[str, Any], dotted: str) -> Any:
    """A parameter's value, following dots into nested objects; None when absent."""
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def fill_pointer(template: str, params: dict[str, Any], where: str) -> str:
    """A pointer template with each ``{name}`` replaced by its escaped parameter value."""
    def replace(match: re.Match[str]) -> str:
        value = param_value(params, match.group(1))
        if value is None:
            raise RequestBuildError(f"{where}: parameter {match.group(1)!r} has no value")
        return escape_token(str(value))

    return _PLACEHOLDER.sub(replace, template)


def render(
    value: Any, params: dict[str, Any], where: str,
    response: Any = None, before: Any = None,
) -> Any:
    """The concrete JSON of a template; keys whose value resolves to null are dropped."""
    result = _render(value, params, where, response, before)
    return None if result is _DROP else result


def _render(value: Any, params: dict[str, Any], where: str, response: Any, before: Any) -> Any:
    source = source_of(value)
    if source is not None:
        kind, argument = source
        if kind == "$const":
            return argument
        if kind == "$param":
            found = param_value(params, argument)
            return _DROP if found is None else found
        document = response if kind == "$response" else before
        label = "response" if kind == "$response" else "before-state"
        if document is None:
            raise RequestBuildError(f"{where}: needs the {label}, none was given")
        pointer = fill_pointer(argument, params, where)
        try:
            return pointer_get(document, pointer)
        except KeyError as exc:
            raise RequestBuildError(f"{where}: the {label} has nothing at {pointer!r}") from exc
    if isinstance(value, dict):
        rendered = {k: _render(v, params, f"{where}.{k}", response, before)
                    for k, v in value.items()}
        return {k: v for k, v in rendered.items() if v is not _DROP}
    if isinstance(value, list):
        items = [_render(v, params, f"{where}[{i}]", response, before)
                 for i, v in enumerate(value)]
        return [v for v in items if v is not _DROP]
    return value


__all__ = ["SOURCES", "fill_pointer", "param_value", "render", "source_of", "template_problems"]
