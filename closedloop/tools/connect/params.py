"""Typed action parameters from the JSON Schema subset an annotation may use.

A connector declares each action's parameters as JSON Schema; validating
them at run time uses a pydantic model built here, so only the keywords below
are accepted (anything else is an error, never silently ignored): ``type``,
``enum``, ``const``, ``anyOf``/``oneOf``, ``properties``, ``required``,
``additionalProperties`` (objects with properties forbid unknown keys),
``items``, ``minItems``/``maxItems``, ``minimum``/``maximum``,
``exclusiveMinimum``/``exclusiveMaximum``, ``minLength``/``maxLength``,
``pattern``, ``default``, ``description``, ``title``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

SUPPORTED = frozenset({
    "type", "enum", "const", "anyOf", "oneOf", "properties", "required",
    "additionalProperties", "items", "minItems", "maxItems", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern",
    "default", "description", "title",
})
_SCALARS: dict[str, Any] = {
    "string": str, "integer": int, "number": float, "boolean": bool, "null": type(None),
}
_CONSTRAINTS = {
    "minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt", "exclusiveMaximum": "lt",
    "minLength": "min_length", "maxLength": "max_length", "pattern": "pattern",
    "minItems": "min_length", "maxItems": "max_length",
}
MAX_SCHEMA_DEPTH = 12


class ParamsSchemaError(ValueError):
    """A parameter schema uses something this subset does not support (names where)."""


def params_model(name: str, schema: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model validating parameters against ``schema`` (an object schema)."""
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise ParamsSchemaError("params: must be a JSON Schema with type 'object'")
    if not isinstance(schema.get("properties"), dict) or not schema["properties"]:
        raise ParamsSchemaError("params: needs 'properties' naming at least one parameter")
    model = _object_model(_model_name(name), schema, "params", 0)
    return model


def _model_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_")) + "Params"


def _type_of(schema: Any, where: str, depth: int) -> Any:
    if depth > MAX_SCHEMA_DEPTH:
        raise ParamsSchemaError(f"{where}: nested deeper than {MAX_SCHEMA_DEPTH} levels")
    if not isinstance(schema, dict):
        raise ParamsSchemaError(f"{where}: expected a schema object, got {type(schema).__name__}")
    unknown = sorted(set(schema) - SUPPORTED)
    if unknown:
        raise ParamsSchemaError(f"{where}: unsupported keyword(s) {unknown}")
    constraints = {_CONSTRAINTS[k]: v for k, v in schema.items() if k in _CONSTRAINTS}
    if "const" in schema:
        base: Any = Literal[schema["const"]]
    elif "enum" in schema:
        values = schema["enum"]
        if not isinstance(values, list) or not values:
            raise ParamsSchemaError(f"{where}: 'enum' must be a non-empty list")
        base = Literal[tuple(values)]
    elif "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema.get("oneOf")
        if not isinstance(options, list) or not options:
            raise ParamsSchemaError(f"{where}: 'anyOf'/'oneOf' must be a non-empty list")
        members = [_type_of(o, f"{where}.anyOf[{i}]", depth + 1) for i, o in enumerate(options)]
        base = Union[tuple(members)]  # noqa: UP007 - built at run time
    else:
        base = _typed(schema, where, depth)
    return Annotated[base, Field(**constraints)] if constraints else base


def _typed(schema: dict[str, Any], where: str, depth: int) -> Any:
    kind = schema.get("type")
    if kind is None:
        raise ParamsSchemaError(f"{where}: needs a 'type' (or enum, const, anyOf)")
    if isinstance(kind, list):
        members = [_typed({**schema, "type": k}, where, depth) for k in kind]
        return Union[tuple(members)]  # noqa: UP007 - built at run time
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "array":
        items = schema.get("items")
        return list[_type_of(items, f"{where}.items", depth + 1)] if items else list[Any]
    if kind == "object":
        if "properties" in schema:
            return _object_model(_model_name(where.replace(".", "_")), schema, where, depth)
        return dict[str, Any]
    raise ParamsSchemaError(f"{where}: unknown type {kind!r}")


def _object_model(name: str, schema: dict[str, Any], where: str, depth: int) -> type[BaseModel]:
    properties = schema["properties"]
    required = schema.get("required", [])
    if not isinstance(properties, dict) or not isinstance(required, list):
        raise ParamsSchemaError(f"{where}: 'properties' must be an object, 'required' a list")
    missing = [r for r in required if r not in properties]
    if missing:
        raise ParamsSchemaError(f"{where}: required {missing} not among the properties")
    if schema.get("additionalProperties", False) is not False:
        raise ParamsSchemaError(f"{where}: only 'additionalProperties: false' is supported")
    fields: dict[str, Any] = {}
    for key, sub in properties.items():
        if not key.isidentifier() or key.startswith("_"):
            raise ParamsSchemaError(f"{where}: parameter name {key!r} must be an identifier")
        annotation = _type_of(sub, f"{where}.{key}", depth + 1)
        description = sub.get("description") if isinstance(sub, dict) else None
        if key in required:
            fields[key] = (annotation, Field(description=description))
        elif isinstance(sub, dict) and sub.get("default") is not None:
            fields[key] = (annotation, Field(sub["default"], description=description))
        else:
            fields[key] = (annotation | None, Field(None, description=description))
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


__all__ = ["SUPPORTED", "ParamsSchemaError", "params_model"]
