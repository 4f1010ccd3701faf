"""A third system made here: its own tiny spec and overlay give a working catalog, no code.

The connector is a folder like the bundled ones (``connector.yaml`` naming the
spec the system serves and the overlay beside it), loaded the way the loop
loads ``CLOSEDLOOP_CONNECTOR``: ``closedloop.tools.act.load_manifest`` and
``connector_document``, then bound as the loop's ``System``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse, PlainTextResponse

from closedloop.cli import main
from closedloop.tools.act import System, connector_document, load_manifest
from closedloop.tools.connect import (
    Catalog,
    RequestBuildError,
    build_action_request,
    build_catalog,
    build_compensation_request,
    build_events_request,
    build_read_request,
    make_auth,
    map_events_page,
    verify_readback,
)
from closedloop.tools.log.columns import ACTIVITY, CASE, START, TIMESTAMP
from tests.test_connect_auth import serve

SPEC = """
openapi: 3.0.3
info: {title: Tiny purchasing, version: "0.1"}
paths:
  /api/activity-log:
    get:
      operationId: listActivity
      parameters:
        - {name: page_token, in: query, schema: {type: string}}
      responses: {"200": {description: ok}}
  /api/settings:
    get:
      operationId: getSettings
      responses: {"200": {description: ok}}
  /api/settings/approval/{region}:
    patch:
      operationId: setApprovalLimit
      parameters:
        - {$ref: "#/components/parameters/Region"}
      requestBody:
        content: {application/json: {schema: {$ref: "#/components/schemas/Limit"}}}
      responses: {"200": {description: ok}}
components:
  parameters:
    Region: {name: region, in: path, required: true, schema: {type: string}}
  schemas:
    Limit: {type: object, properties: {limit_eur: {type: number}}}
"""

# The whole connector: the system serves its spec at /spec.yaml; the overlay sits beside this.
MANIFEST = """
connector: 1
name: tiny-purchasing
spec_url: /spec.yaml
overlays: [overlay.yaml]
"""

OVERLAY = """
overlay: 1.0.0
info: {title: closedloop connector for tiny purchasing, version: "1"}
actions:
  - target: $
    update:
      x-closedloop-connector:
        name: tiny-purchasing
        auth: {type: api_key, header: X-Api-Key, key_env: TINY_KEY}
  - target: $.paths['/api/activity-log'].get
    update:
      x-closedloop-events:
        items: /data
        cursor: {param: page_token, response_pointer: /next}
        fields:
          case: /po
          activity: /step
          timestamp: /ended
          start: /began
          case_attributes: {supplier: /meta/supplier}
  - target: $.paths['/api/settings'].get
    update:
      x-closedloop-state: {values: {approval: /approval}}
  - target: $.paths.*[?@.operationId == 'setApprovalLimit']
    update:
      x-closedloop-action:
        name: set_approval_limit
        description: Orders below the limit skip manual approval.
        change_kind: approval_threshold
        roles: {threshold: limit_eur}
        risk: high
        params:
          type: object
          properties:
            region: {type: string}
            limit_eur: {type: number, minimum: 0, maximum: 100000}
          required: [region, limit_eur]
        request:
          path: {region: {$param: region}}
          body: {limit_eur: {$param: limit_eur}}
        data_contract: {required_fields: [case, activity, timestamp, supplier]}
        compensation:
          operation: setApprovalLimit
          path: {region: {$param: region}}
          body: {limit_eur: {$before: "/approval/{region}"}}
        verify: {pointer: "/approval/{region}", equals: {$param: limit_eur}}
"""

ENV = {"TINY_KEY": "tiny-secret"}
EVENTS = [
    {"po": f"PO-{i // 2}", "step": "approve" if i % 2 else "create",
     "began": f"2024-01-01T0{i}:00:00Z", "ended": f"2024-01-01T0{i}:30:00Z",
     "meta": {"supplier": "acme"}}
    for i in range(5)
]


def tiny_app() -> FastAPI:
    app = FastAPI(openapi_url=None)
    limits = {"eu": 5000.0, "us": 8000.0}

    def allowed(key: str) -> bool:
        return key == "tiny-secret"

    @app.get("/spec.yaml")
    def spec() -> PlainTextResponse:
        return PlainTextResponse(SPEC, media_type="application/yaml")

    @app.get("/api/activity-log")
    def activity(page_token: str = "0", x_api_key: str = Header("")) -> Any:
        if not allowed(x_api_key):
            return JSONResponse({"error": "key"}, status_code=401)
        start = int(page_token)
        end = start + 2
        return {"data": EVENTS[start:end], "next": str(end) if end < len(EVENTS) else None}

    @app.get("/api/settings")
    def settings(x_api_key: str = Header("")) -> Any:
        if not allowed(x_api_key):
            return JSONResponse({"error": "key"}, status_code=401)
        return {"approval": dict(limits)}

    @app.patch("/api/settings/approval/{region}")
    def set_limit(region: str, body: dict[str, float], x_api_key: str = Header("")) -> Any:
        if not allowed(x_api_key):
            return JSONResponse({"error": "key"}, status_code=401)
        limits[region] = body["limit_eur"]
        return {"region": region, "limit_eur": limits[region]}

    return app


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serve(tiny_app()) as url:
        yield url


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made = tmp_path_factory.mktemp("tiny-purchasing")
    (made / "connector.yaml").write_text(MANIFEST, encoding="utf-8")
    (made / "overlay.yaml").write_text(OVERLAY, encoding="utf-8")
    return made


@pytest.fixture(scope="module")
def document(folder: Path, base: str) -> dict[str, Any]:
    return connector_document(load_manifest(folder), base, ENV)


@pytest.fixture(scope="module")
def catalog(document: dict[str, Any]) -> Catalog:
    return build_catalog(document)


def test_a_spec_and_an_overlay_make_a_working_connector(catalog: Catalog, base: str) -> None:
    assert list(catalog.actions) == ["set_approval_limit"]
    action = catalog.actions["set_approval_limit"]
    assert (action.change_kinds, action.risk, action.reversible) == (
        ["approval_threshold"], "high", True)
    auth = make_auth(catalog.connector.auth, {"TINY_KEY": "tiny-secret"})
    params = {"region": "eu", "limit_eur": 2500}
    with httpx.Client(auth=auth) as client:
        before = client.send(build_read_request(catalog, base)).json()
        request = build_action_request(catalog, "set_approval_limit", params, base)
        assert (request.method, request.url.path) == ("PATCH", "/api/settings/approval/eu")
        response = client.send(request)
        assert response.status_code == 200
        after = client.send(build_read_request(catalog, base)).json()
        assert verify_readback(catalog, "set_approval_limit", params, response.json(), after)
        undo = build_compensation_request(catalog, "set_approval_limit", params, base,
                                          before=before)
        assert undo.content == b'{"limit_eur":5000.0}'
        client.send(undo).raise_for_status()
        assert client.send(build_read_request(catalog, base)).json() == before
        rows, cursor = [], None
        while True:
            page = client.send(build_events_request(catalog, base, cursor))
            batch, cursor = map_events_page(catalog, page.json())
            rows += batch
            if cursor is None:
                break
    assert len(rows) == len(EVENTS)
    assert rows[1] == {CASE: "PO-0", ACTIVITY: "approve", TIMESTAMP: "2024-01-01T01:30:00Z",
                       START: "2024-01-01T01:00:00Z", "case:supplier": "acme"}


def test_path_values_cannot_climb_out_of_the_path(catalog: Catalog, base: str) -> None:
    for value in ("..", "."):
        with pytest.raises(RequestBuildError, match="usable value"):
            build_action_request(catalog, "set_approval_limit",
                                 {"region": value, "limit_eur": 1}, base)
    request = build_action_request(catalog, "set_approval_limit",
                                   {"region": "a/../b", "limit_eur": 1}, base)
    assert request.url.raw_path == b"/api/settings/approval/a%2F..%2Fb"


def test_the_loop_reads_and_plans_through_it_as_through_a_bundled_one(
    document: dict[str, Any], base: str,
) -> None:
    system = System.open(document, base, ENV)
    try:
        batch = system.read_events()
        assert [row[CASE] for row in batch.rows] == [e["po"] for e in EVENTS]
        state = system.read_state()
        assert system.state_values(state) == {"approval": {"eu": 5000.0, "us": 8000.0}}
        params = {"region": "us", "limit_eur": 100}
        assert system.current_value("set_approval_limit", params, state) == 8000.0
        request = system.action_request("set_approval_limit", params, "tiny-key-0001")
        assert (request.method, httpx.URL(request.url).path, request.body) == (
            "PATCH", "/api/settings/approval/us", {"limit_eur": 100})
    finally:
        system.close()


def test_connector_check_passes_on_it(
    folder: Path, base: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TINY_KEY", "tiny-secret")
    assert main(["connector", "check", str(folder), "--base-url", base]) == 0, \
        capsys.readouterr().out
    monkeypatch.delenv("TINY_KEY")
    assert main(["connector", "check", str(folder), "--base-url", base]) == 1
    assert "auth 'api_key': environment variable TINY_KEY is not set" in capsys.readouterr().out
