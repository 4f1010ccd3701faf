"""Broken and hostile connectors get clear errors naming what is wrong."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from closedloop.tools.connect import (
    AnnotationError,
    OverlayError,
    SpecError,
    apply_overlay,
    build_catalog,
    load_overlay_text,
    load_spec_text,
)
from closedloop.tools.connect.spec import MAX_DOCUMENT_BYTES


def _spec() -> dict[str, Any]:
    action = {
        "name": "set_size", "description": "Size of a pool.", "change_kind": "set_capacity",
        "roles": {"pool": "pool", "amount": "size"}, "risk": "medium",
        "params": {"type": "object", "required": ["pool", "size"],
                   "properties": {"pool": {"type": "string"}, "size": {"type": "integer"}}},
        "request": {"path": {"pool": {"$param": "pool"}}, "body": {"size": {"$param": "size"}}},
    }
    return {
        "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "x-closedloop-connector": {"name": "t"},
        "paths": {
            "/events": {"get": {"operationId": "events", "parameters": [
                {"name": "after", "in": "query", "schema": {"type": "integer"}}],
                "x-closedloop-events": {
                    "items": "/items", "cursor": {"param": "after", "response_pointer": "/next"},
                    "fields": {"case": "/c", "activity": "/a", "timestamp": "/t"}}}},
            "/state": {"get": {"operationId": "state", "x-closedloop-state": {}}},
            "/pools/{pool}": {"put": {"operationId": "putPool", "x-closedloop-action": action}},
        },
    }


def test_the_valid_baseline_builds() -> None:
    assert list(build_catalog(_spec()).actions) == ["set_size"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s.pop("x-closedloop-connector"), "document root: x-closedloop-connector is missing"),
    (lambda s: s["paths"]["/pools/{pool}"]["put"]["x-closedloop-action"].pop("risk"),
     r"operation putPool \(PUT /pools/\{pool\}\): x-closedloop-action is missing 'risk'"),
    (lambda s: s["paths"]["/pools/{pool}"]["put"]["x-closedloop-action"]["request"].pop("path"),
     r"putPool .*request.path does not fill path parameter\(s\) \['pool'\]"),
    (lambda s: s["paths"]["/pools/{pool}"]["put"]["x-closedloop-action"].pop("roles"),
     r"putPool .*x-closedloop-action.roles is missing \['amount', 'pool'\]"),
    (lambda s: s["paths"]["/pools/{pool}"]["put"]["x-closedloop-action"].update(
        compensation={"operation": "nope"}),
     "compensation.operation names operation 'nope', which the spec does not have"),
    (lambda s: s["paths"]["/pools/{pool}"]["put"]["x-closedloop-action"]["request"].update(
        body={"size": {"$param": "sise"}}), "request.body.size: unknown parameter 'sise'"),
    (lambda s: s["paths"]["/pools/{pool}"]["put"]["x-closedloop-action"]["request"].update(
        body={"size": {"$response": "/x"}}), r"\$response is not available here"),
    (lambda s: s["paths"]["/pools/{pool}"]["put"]["x-closedloop-action"]["params"][
        "properties"]["size"].update(format="int32"), r"params.size: unsupported keyword"),
    (lambda s: s["paths"]["/pools/{pool}"]["put"]["x-closedloop-action"].update(
        data_contract={"required_fields": ["resource"]}),
     r"required_fields \['resource'\] are not mapped by x-closedloop-events"),
    (lambda s: s["paths"]["/pools/{pool}"]["put"].update({"x-closedloop-acton": {}}),
     r"putPool .*unknown annotation\(s\) \['x-closedloop-acton'\]"),
    (lambda s: s["paths"]["/events"]["get"].pop("x-closedloop-events"),
     "no operation carries x-closedloop-events"),
    (lambda s: s["paths"]["/events"]["get"]["x-closedloop-events"]["cursor"].update(param="pg"),
     r"cursor.param 'pg' is not a query parameter"),
    (lambda s: s["paths"]["/state"].update(
        post={"operationId": "p", "x-closedloop-state": {}}),
     "x-closedloop-state appears on 2 operations"),
])
def test_missing_or_wrong_annotations_are_named(change: Any, message: str) -> None:
    spec = copy.deepcopy(_spec())
    change(spec)
    with pytest.raises(AnnotationError, match=message):
        build_catalog(spec)


def _overlay(*actions: dict[str, Any]) -> str:
    return json.dumps({"overlay": "1.0.0", "info": {"title": "o", "version": "1"},
                       "actions": list(actions)})


def test_overlay_that_targets_nothing_or_is_malformed() -> None:
    spec = _spec()
    nothing = load_overlay_text(_overlay({"target": "$.paths['/nope'].get", "update": {"x": 1}}))
    with pytest.raises(OverlayError, match=r"action 1 \(target \"\$.paths\['/nope'\].get\"\): "
                                           "selects nothing"):
        apply_overlay(spec, nothing)
    broken = load_overlay_text(_overlay({"target": "$.paths[", "update": {}}))
    with pytest.raises(OverlayError, match="invalid JSONPath"):
        apply_overlay(spec, broken)
    with pytest.raises(OverlayError, match="not an Overlay 1.0 document: overlay"):
        load_overlay_text(json.dumps({"overlay": "2.0", "info": {"title": "o", "version": "1"},
                                      "actions": [{"target": "$"}]}))
    merge_into_string = load_overlay_text(_overlay({"target": "$.openapi", "update": {"a": 1}}))
    with pytest.raises(OverlayError, match="cannot merge a dict into a str"):
        apply_overlay(spec, merge_into_string)


def test_overlay_remove_and_update_work() -> None:
    overlay = load_overlay_text(_overlay(
        {"target": "$.paths.*[?@.operationId == 'state']", "remove": True},
        {"target": "$.info", "update": {"x-owner": {"team": "ops"}}},
    ))
    result = apply_overlay(_spec(), overlay)
    assert "get" not in result["paths"]["/state"]
    assert result["info"]["x-owner"] == {"team": "ops"}


def _openapi(extra: dict[str, Any]) -> str:
    return json.dumps({"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
                       "paths": {}, **extra})


def test_hostile_specs() -> None:
    loop = {"components": {"schemas": {"A": {"$ref": "#/components/schemas/B"},
                                       "B": {"$ref": "#/components/schemas/A"}}}}
    with pytest.raises(SpecError, match=r"\$ref loop .*#/components/schemas/B -> "
                                        "#/components/schemas/A"):
        load_spec_text(_openapi(loop))
    remote = {"components": {"schemas": {"A": {"$ref": "https://evil.example/x.json#/A"}}}}
    with pytest.raises(SpecError, match="is not local"):
        load_spec_text(_openapi(remote))
    dangling = {"components": {"schemas": {"A": {"$ref": "#/components/schemas/Z"}}}}
    with pytest.raises(SpecError, match="points to nothing"):
        load_spec_text(_openapi(dangling))
    recursive = {"components": {"schemas": {"Tree": {"type": "object", "properties": {
        "children": {"type": "array", "items": {"$ref": "#/components/schemas/Tree"}}}}}}}
    assert load_spec_text(_openapi(recursive))["components"]["schemas"]["Tree"]
    deep: Any = {}
    for _ in range(200):
        deep = {"a": deep}
    with pytest.raises(SpecError, match="nested deeper than 64 levels"):
        load_spec_text(_openapi({"x-deep": deep}))
    with pytest.raises(SpecError, match="nested deeper"):
        load_spec_text('{"openapi": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(SpecError, match="limit is"):
        load_spec_text(_openapi({"x-pad": "x" * MAX_DOCUMENT_BYTES}))
    with pytest.raises(SpecError, match="Swagger 2.0 found"):
        load_spec_text('{"swagger": "2.0", "paths": {}}')
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec_text("- just\n- a list\n")


def test_yaml_alias_bombs_and_self_references_stop_early() -> None:
    lines = ["openapi: 3.0.3", "info: {title: t, version: '1'}", "paths: {}", 'a0: &a0 ["x"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    with pytest.raises(SpecError, match="more than .* nodes"):
        load_spec_text("\n".join(lines))
    with pytest.raises(SpecError, match="nested deeper"):
        load_spec_text("openapi: 3.0.3\npaths: {}\nloop: &l [*l]\n")
