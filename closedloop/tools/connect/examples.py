"""Example values for a connector check: action parameters, and stand-in response documents.

A check builds every action's request without sending it, so it needs
parameters (the params schema's own JSON Schema ``examples`` first, else values
made from the schema) and, for compensations and read-backs that read the
action's response, a stand-in response holding a marker at each pointer read.
"""

from __future__ import annotations

import re
from typing import Any

from closedloop.tools.connect.errors import ConnectorError
from closedloop.tools.connect.templates import fill_pointer, source_of

_STRINGS = ("example", "x", "A1", "1")


def example_params(schema: dict[str, Any], pools: list[str], pool_param: str | None) -> Any:
    """Parameters for an action with ``schema`` (its params JSON Schema).

    The schema's ``examples[0]`` if it has one; else each required property
    from its ``default``/``const``/``enum``/``examples``, its type and bounds. A
    property playing the ``pool`` role takes the first pool the state read
    shows, so the read-back pointer can be found in the state.
    """
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    return _value(schema, pools[0] if pools and pool_param else None, pool_param, "")


def _value(schema: Any, pool: str | None, pool_param: str | None, name: str) -> Any:
    if not isinstance(schema, dict):
        return "example"
    for key in ("default", "const"):
        if key in schema:
            return schema[key]
    for key in ("enum", "examples"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema[key][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return _value(schema[key][0], pool, pool_param, name)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        return {key: _value(properties.get(key, {}), pool, pool_param, key) for key in required}
    if kind == "array":
        return [_value(schema.get("items", {}), pool, pool_param, name)]
    if kind == "boolean":
        return False
    if kind in ("integer", "number"):
        return _number(schema, kind)
    if pool is not None and name == pool_param:
        return pool
    return _string(schema)


def _number(schema: dict[str, Any], kind: str) -> float | int:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is not None and high is not None:
        value: float = (low + high) / 2
    elif low is not None:
        value = low + 1
    elif high is not None:
        value = min(1, high - 1)
    else:
        value = 1
    return int(value) if kind == "integer" else value


def _string(schema: dict[str, Any]) -> str:
    pattern = schema.get("pattern")
    low = int(schema.get("minLength", 0))
    for text in _STRINGS:
        text = text * max(1, -(-low // len(text)))
        if pattern is None or re.search(pattern, text):
            return text
    return "example"


def stand_in(template: Any, kind: str, params: dict[str, Any], where: str) -> dict[str, Any]:
    """A document with a marker (``<response /pointer>``) at every ``kind`` pointer of
    ``template`` (``$response`` or ``$before``), to build a request without a real one."""
    document: dict[str, Any] = {}
    for pointer in pointers_of(template, kind):
        try:
            filled = fill_pointer(pointer, params, where)
        except ConnectorError:
            continue
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in filled[1:].split("/")]
        node = document
        for token in tokens[:-1]:
            child = node.get(token)
            node[token] = child = child if isinstance(child, dict) else {}
            node = child
        if tokens and tokens[-1]:
            node[tokens[-1]] = f"<{kind[1:]} {filled}>"
    return document


def pointers_of(template: Any, kind: str) -> list[str]:
    """The pointer templates of every ``kind`` source (``$response``, ``$before``) in ``template``."""
    source = source_of(template)
    if source is not None:
        return [str(source[1])] if source[0] == kind else []
    if isinstance(template, dict):
        return [p for value in template.values() for p in pointers_of(value, kind)]
    if isinstance(template, list):
        return [p for value in template for p in pointers_of(value, kind)]
    return []


__all__ = ["example_params", "pointers_of", "stand_in"]
