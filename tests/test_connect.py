"""The helpdesk sandbox through its connector: spec over HTTP + overlay -> the exact requests the
sandbox expects (method, path, body, Idempotency-Key), written out literally below."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from closedloop.sandbox.server import SandboxServer
from closedloop.tools.connect import (
    COHORT,
    CONNECTORS_DIR,
    Catalog,
    NotInCatalogError,
    RequestBuildError,
    apply_overlay,
    build_action_request,
    build_catalog,
    build_compensation_request,
    build_events_request,
    build_read_request,
    fetch_spec,
    load_overlay,
    make_auth,
    map_events_page,
    verify_readback,
)
from closedloop.tools.connect.schema import annotations_json_schema, shipped_schema
from closedloop.tools.errors import NotAllowedError
from closedloop.tools.log.columns import ACTIVITY, CASE, RESOURCE, TIMESTAMP

OVERLAY = CONNECTORS_DIR / "helpdesk.overlay.yaml"
PARAMS: list[tuple[str, dict[str, Any]]] = [
    ("set_queue_staffing", {"queue": "L1", "agents": 5}),
    ("set_queue_staffing", {"queue": "L2", "agents": 0}),
    ("create_rule", {"name": "bot for passwords",
                     "condition": {"field": "category", "op": "eq", "value": "password"},
                     "rule_action": "auto_resolve", "treatment_share": 0.5}),
    ("create_rule", {"name": "network to L2",
                     "condition": {"field": "category", "op": "in", "value": ["network"]},
                     "rule_action": "route", "route_queue": "L2", "treatment_share": 1.0}),
    ("create_rule", {"name": "defaults", "condition": {"field": "channel", "value": "email"},
                     "treatment_share": 0.25}),
]
# What the sandbox must receive for each entry of PARAMS: (method, path, JSON body).
EXPECTED: list[tuple[str, str, Any]] = [
    ("PUT", "/config/staffing/L1", {"agents": 5}),
    ("PUT", "/config/staffing/L2", {"agents": 0}),
    ("POST", "/rules", {"name": "bot for passwords",
                        "condition": {"field": "category", "op": "eq", "value": "password"},
                        "action": {"type": "auto_resolve"}, "treatment_share": 0.5}),
    ("POST", "/rules", {"name": "network to L2",
                        "condition": {"field": "category", "op": "in", "value": ["network"]},
                        "action": {"type": "route", "queue": "L2"}, "treatment_share": 1.0}),
    ("POST", "/rules", {"name": "defaults",
                        "condition": {"field": "channel", "op": "eq", "value": "email"},
                        "action": {"type": "auto_resolve"}, "treatment_share": 0.25}),
]
DESCRIPTIONS = {
    "set_queue_staffing": "Set the number of agents working a queue (all cases of the queue are "
                          "affected; no control group).",
    "create_rule": "Create an automation rule for cases matching a condition: auto_resolve (a bot "
                   "handles the case instead of first-level staff) or route (send straight to "
                   "another queue). Applied to a treatment share of matching cases; the rest form "
                   "the control group.",
}


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(seed=11) as running:
        yield running


@pytest.fixture(scope="module")
def spec(server: SandboxServer) -> dict[str, Any]:
    return fetch_spec(f"{server.url}/openapi.json")


@pytest.fixture(scope="module")
def catalog(spec: dict[str, Any]) -> Catalog:
    return build_catalog(apply_overlay(spec, load_overlay(OVERLAY)))


def _same(request: httpx.Request, method: str, path: str, body: Any, key: str) -> None:
    assert request.method == method
    assert request.url.path == path
    assert json.loads(request.content or b"null") == body
    assert request.headers["Idempotency-Key"] == key


def test_overlay_annotates_without_changing_the_spec(spec: dict[str, Any]) -> None:
    original = copy.deepcopy(spec)
    annotated = apply_overlay(spec, load_overlay(OVERLAY))
    assert spec == original
    assert "x-closedloop-connector" in annotated and "x-closedloop-connector" not in spec
    assert "x-closedloop-action" in annotated["paths"]["/rules"]["post"]


def test_catalog_has_the_two_helpdesk_actions(catalog: Catalog) -> None:
    ours = {a["name"]: a for a in catalog.action_specs()}
    assert set(ours) == set(DESCRIPTIONS)
    assert (ours["set_queue_staffing"]["risk"], ours["set_queue_staffing"]["reversible"]) == (
        "medium", True)
    assert (ours["create_rule"]["risk"], ours["create_rule"]["reversible"]) == ("low", True)
    for name, description in DESCRIPTIONS.items():
        assert ours[name]["description"] == description
    assert catalog.actions["set_queue_staffing"].change_kinds == ["set_capacity"]
    assert catalog.actions["create_rule"].change_kinds == ["automate_activity", "route_segment"]
    assert catalog.actions["create_rule"].treatment_share_param == "treatment_share"
    assert catalog.actions["set_queue_staffing"].treatment_share_param is None
    assert catalog.version.startswith("helpdesk-sandbox@")


@pytest.mark.parametrize(("action", "params", "expected"),
                         [(*p, e) for p, e in zip(PARAMS, EXPECTED, strict=True)])
def test_each_request_is_exactly_what_the_sandbox_expects(
    catalog: Catalog, server: SandboxServer, action: str, params: dict[str, Any],
    expected: tuple[str, str, Any],
) -> None:
    request = build_action_request(catalog, action, params, server.url, "key-0001-abcd")
    _same(request, *expected, "key-0001-abcd")


def _expected_undo(action: str, params: dict[str, Any], body: dict[str, Any]) -> tuple[str, str, Any]:
    if action == "set_queue_staffing":
        return "PUT", f"/config/staffing/{params['queue']}", {"agents": body["previous_agents"]}
    return "DELETE", f"/rules/{body['rule_id']}", None


def test_perform_compensate_and_verify_on_the_live_sandbox(
    catalog: Catalog, server: SandboxServer,
) -> None:
    with httpx.Client() as client:
        for number, (action, params) in enumerate(PARAMS):
            key = f"live-{number:04d}-key"
            before = client.send(build_read_request(catalog, server.url)).json()
            response = client.send(build_action_request(catalog, action, params, server.url, key))
            assert response.status_code < 300, response.text
            body = response.json()
            after = client.send(build_read_request(catalog, server.url)).json()
            assert verify_readback(catalog, action, params, body, after)
            assert not verify_readback(catalog, action, params, body, before)
            undo = build_compensation_request(catalog, action, params, server.url, response=body,
                                              before=before, idempotency_key=key + "-undo")
            _same(undo, *_expected_undo(action, params, body), key + "-undo")
            assert client.send(undo).status_code == 200
            assert client.send(build_read_request(catalog, server.url)).json() == before


def test_event_feed_reads_pages_into_canonical_rows(
    catalog: Catalog, server: SandboxServer,
) -> None:
    with httpx.Client(base_url=server.url) as client:
        client.post("/clock/advance", json={"hours": 24})
        client.post("/rules", headers={"Idempotency-Key": "feed-rule-0001"},
                    json={"name": "r", "condition": {"field": "category", "op": "eq",
                                                     "value": "password"},
                          "action": {"type": "auto_resolve"}, "treatment_share": 0.5})
        client.post("/clock/advance", json={"hours": 24})
        expected = client.get("/events", params={"limit": 10000}).json()["events"]
        rows, cursor, pages = [], None, 0
        while True:
            page = client.send(build_events_request(catalog, server.url, cursor, page_size=400))
            batch, cursor = map_events_page(catalog, page.json())
            rows.extend(batch)
            pages += 1
            if cursor is None:
                break
    assert pages > 1 and len(rows) == len(expected)
    first, raw = rows[0], expected[0]
    assert (first[CASE], first[ACTIVITY], first[TIMESTAMP], first[RESOURCE]) == (
        raw["case_id"], raw["activity"], raw["timestamp"], raw["resource"])
    assert first["case:category"] == raw["attributes"]["category"]
    cohorts = {r[COHORT] for r in rows}
    assert {"treatment", "control", None} <= cohorts


def test_outside_the_catalog_nothing_can_be_built(catalog: Catalog, server: SandboxServer) -> None:
    with pytest.raises(NotInCatalogError, match="'advance_clock' is not in the catalog"):
        build_action_request(catalog, "advance_clock", {"hours": 1}, server.url, "key-0002-abcd")
    with pytest.raises(NotAllowedError, match="advance_clock_clock_advance_post"):
        catalog.operation("advance_clock_clock_advance_post")
    with pytest.raises(NotInCatalogError):
        build_read_request(catalog, server.url, "get_writes_writes_get")
    with pytest.raises(RequestBuildError, match="agents"):
        build_action_request(catalog, "set_queue_staffing", {"queue": "L1", "agents": 99},
                             server.url, "key-0003-abcd")
    with pytest.raises(RequestBuildError, match="queue: String should match pattern"):
        build_action_request(catalog, "set_queue_staffing", {"queue": "../x", "agents": 1},
                             server.url, "key-0004-abcd")
    with pytest.raises(RequestBuildError, match="idempotency key"):
        build_action_request(catalog, "set_queue_staffing", {"queue": "L1", "agents": 1},
                             server.url)


def test_bearer_token_of_the_overlay_against_a_protected_sandbox() -> None:
    with SandboxServer(seed=3, api_token="t0ken-abc") as protected:
        headers = {"Authorization": "Bearer t0ken-abc"}
        spec = fetch_spec(f"{protected.url}/openapi.json",
                          client=httpx.Client(headers=headers))
        catalog = build_catalog(apply_overlay(spec, load_overlay(OVERLAY)))
        auth = make_auth(catalog.connector.auth, {"CLOSEDLOOP_SANDBOX_TOKEN": "t0ken-abc"})
        request = build_read_request(catalog, protected.url)
        with httpx.Client() as client:
            assert client.send(request).status_code == 401
            assert client.send(request, auth=auth).status_code == 200


def test_shipped_schema_is_current_and_accepts_the_overlay() -> None:
    schema = shipped_schema()
    assert schema == json.loads(json.dumps(annotations_json_schema(), sort_keys=True))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    overlay = load_overlay(OVERLAY)
    for action in overlay.actions:
        annotations = {k: v for k, v in action.update.items() if k.startswith("x-closedloop")}
        assert annotations, action.target
        validator.validate(annotations)
    bad = {"x-closedloop-action": {"name": "x", "risk": "extreme"}}
    assert list(validator.iter_errors(bad)), "the schema rejects a broken annotation"
