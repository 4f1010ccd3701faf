"""The helpdesk sandbox through its ServiceNow-style Table API and the helpdesk-servicenow
connector: paging and filtering like an instance, idempotent writes, basic auth, the
connector's catalog and check, and the whole loop through it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from closedloop.cli import main
from closedloop.demo import advance_clock
from closedloop.graphs.runner import LoopRunner
from closedloop.sandbox.app import create_app
from closedloop.sandbox.server import SandboxServer
from closedloop.settings import Settings
from closedloop.store.models import CatalogVersion, Execution, LoopRun, Plan, Verdict
from closedloop.tools.act import System, connector_document, load_manifest
from closedloop.tools.connect import (
    build_catalog,
    build_events_request,
    load_profile,
    map_events_page,
)

AUTH = ("admin", "s3cret")
ENV = {"SERVICENOW_USERNAME": AUTH[0], "SERVICENOW_PASSWORD": AUTH[1]}
TABLE = "/api/now/table"
WORK_STEPS = "tablename=incident^fieldname=u_work_step^ORDERBYsys_created_on"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(app=create_app(seed=5, servicenow_auth=AUTH)) as server:
        advance_clock(server.url, 3)
        yield server


@pytest.fixture
def fresh() -> Iterator[SandboxServer]:
    """A sandbox of its own, for tests that write."""
    with SandboxServer(app=create_app(seed=6, servicenow_auth=AUTH)) as server:
        advance_clock(server.url, 1)
        yield server


def _client(server: SandboxServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=AUTH, timeout=30)


def _all_events(url: str) -> list[dict[str, Any]]:
    events, cursor = [], 0
    while cursor is not None:
        page = httpx.get(f"{url}/events", params={"after_seq": cursor, "limit": 10000}).json()
        events += page["events"]
        cursor = page["next_after_seq"]
    return events


def test_audit_rows_page_by_offset_and_filter_by_encoded_query(sandbox: SandboxServer) -> None:
    with _client(sandbox) as client:
        whole = client.get(f"{TABLE}/sys_audit", params={"sysparm_query": WORK_STEPS})
        total = int(whole.headers["X-Total-Count"])
        rows = whole.json()["result"]
        pages, offset = [], 0
        while True:
            page = client.get(f"{TABLE}/sys_audit", params={
                "sysparm_query": WORK_STEPS, "sysparm_limit": 700, "sysparm_offset": offset,
                "sysparm_no_count": "true"})
            assert "X-Total-Count" not in page.headers
            if not page.json()["result"]:
                break
            pages += page.json()["result"]
            offset += 700
        assert pages == rows and total == len(rows) > 700
        # One audit row per event of the native feed, in the same order and meaning.
        events = _all_events(sandbox.url)
        assert [(r["newvalue"], r["reason"], r["user"]) for r in rows] == [
            (e["activity"], e["lifecycle"], e["resource"]) for e in events]
        middle = rows[len(rows) // 2]["sys_created_on"]
        later = client.get(f"{TABLE}/sys_audit", params={
            "sysparm_query": f"fieldname=u_work_step^sys_created_on>={middle}^ORDERBYsys_created_on"}
        ).json()["result"]
        assert later and all(r["sys_created_on"] >= middle for r in later)
        assert later == [r for r in rows if r["sys_created_on"] >= middle]
        newest = client.get(f"{TABLE}/sys_audit", params={
            "sysparm_query": "fieldname=state^newvalueIN6,7^ORDERBYDESCsys_created_on",
            "sysparm_limit": 5, "sysparm_fields": "newvalue,sys_created_on"}).json()["result"]
        assert len(newest) == 5 and {r["newvalue"] for r in newest} <= {"6", "7"}
        assert [r["sys_created_on"] for r in newest] == sorted(
            (r["sys_created_on"] for r in newest), reverse=True)
        assert set(newest[0]) == {"newvalue", "sys_created_on"}
        walked = client.get(f"{TABLE}/sys_audit", params={
            "sysparm_query": WORK_STEPS, "sysparm_limit": 1,
            "sysparm_fields": "documentkey,documentkey.number,documentkey.contact_type"}).json()
        incident = client.get(f"{TABLE}/incident/{walked['result'][0]['documentkey']}").json()
        assert walked["result"][0]["documentkey.number"] == incident["result"]["number"]
        assert walked["result"][0]["documentkey.contact_type"] == events[0]["attributes"]["channel"]
        bad = client.get(f"{TABLE}/sys_audit", params={"sysparm_query": "fieldname=state^ORuser=x"})
        assert bad.status_code == 400 and bad.json()["status"] == "failure"
        assert client.get(f"{TABLE}/cmdb_ci").status_code == 400


def test_incidents_mirror_the_tickets(sandbox: SandboxServer) -> None:
    events = _all_events(sandbox.url)
    with _client(sandbox) as client:
        incidents = client.get(f"{TABLE}/incident").json()["result"]
        closed = client.get(f"{TABLE}/incident", params={"sysparm_query": "state=7"}).json()
    assert len(incidents) == len({e["case_id"] for e in events})
    closes = {e["case_id"] for e in events if e["activity"] == "Close" and e["lifecycle"] == "complete"}
    assert len(closed["result"]) == len(closes) and all(i["closed_at"] for i in closed["result"])


def test_basic_auth_guards_the_table_api_only(sandbox: SandboxServer) -> None:
    assert httpx.get(f"{sandbox.url}{TABLE}/incident").status_code == 401
    assert httpx.get(f"{sandbox.url}{TABLE}/incident", auth=("admin", "wrong")).status_code == 401
    assert httpx.get(f"{sandbox.url}/events", params={"limit": 1}).status_code == 200


def test_writes_are_idempotent_and_show_in_the_native_api(fresh: SandboxServer) -> None:
    with _client(fresh) as client:
        groups = {g["name"]: g for g in client.get(f"{TABLE}/sys_user_group").json()["result"]}
        l1 = f"{TABLE}/sys_user_group/{groups['L1']['sys_id']}"
        for _ in range(2):  # PATCH is idempotent by nature
            answer = client.patch(l1, json={"u_headcount": 5})
            assert answer.status_code == 200 and answer.json()["result"]["u_headcount"] == 5
        assert httpx.get(f"{fresh.url}/config").json()["staffing"]["L1"] == 5
        assert client.patch(l1, json={"u_headcount": 99}).status_code == 400
        assert client.patch(l1, json={"name": "L9"}).status_code == 400
        assert client.patch(f"{TABLE}/incident/x", json={"state": "7"}).status_code == 403
        body = {"u_name": "bot for passwords", "u_condition_field": "category",
                "u_condition_value": "password", "u_treatment_share": 0.5}
        first = client.post(f"{TABLE}/u_closedloop_rule", json=body, headers={"Idempotency-Key": "k1"})
        again = client.post(f"{TABLE}/u_closedloop_rule", json=body, headers={"Idempotency-Key": "k1"})
        assert first.status_code == again.status_code == 201 and first.json() == again.json()
        assert client.post(f"{TABLE}/u_closedloop_rule", json={**body, "u_name": "other"},
                           headers={"Idempotency-Key": "k1"}).status_code == 409
        rules = httpx.get(f"{fresh.url}/config").json()["rules"]
        assert [(r["condition"]["field"], r["treatment_share"]) for r in rules] == [("category", 0.5)]
        record = f"{TABLE}/u_closedloop_rule/{first.json()['result']['sys_id']}"
        assert client.get(record).json()["result"]["active"] is True
        assert client.delete(record, headers={"Idempotency-Key": "d1"}).status_code == 204
        assert client.delete(record, headers={"Idempotency-Key": "d1"}).status_code == 204
        assert client.delete(record).status_code == 404  # unkeyed: as on an instance
        assert client.get(record).status_code == 404
        assert client.post(f"{TABLE}/u_closedloop_rule",
                           json={**body, "u_condition_field": "short_description"}).status_code == 400
    writes = httpx.get(f"{fresh.url}/writes").json()
    assert [(w["method"], w["replayed"]) for w in writes if w["idempotency_key"] in ("k1", "d1")] == [
        ("POST", False), ("POST", True), ("POST", False), ("DELETE", False), ("DELETE", True)]
    assert httpx.get(f"{fresh.url}/config").json()["rules"] == []


def test_the_profile_feed_reads_incident_states_from_the_sandbox(sandbox: SandboxServer) -> None:
    catalog = load_profile("servicenow")
    with _client(sandbox) as client:
        page = client.send(build_events_request(catalog, sandbox.url)).json()
    rows, _ = map_events_page(catalog, page, None)
    assert rows and {r["concept:name"] for r in rows} <= {"New", "In Progress", "Resolved", "Closed"}
    assert rows[0]["concept:name"] == "New"


def test_the_connector_builds_a_catalog_with_capacity_and_automation(sandbox: SandboxServer) -> None:
    document = connector_document(load_manifest("helpdesk-servicenow"), sandbox.url, env=ENV)
    catalog = build_catalog(document)
    kinds = {name: set(action.change_kinds) for name, action in catalog.actions.items()}
    assert kinds == {"set_group_headcount": {"set_capacity"},
                     "create_automation_rule": {"automate_activity", "route_segment"}}
    system = System.open(document, sandbox.url, env=ENV)
    try:
        batch = system.read_events()
        pools = system.pools(system.read_state())
    finally:
        system.close()
    assert len(batch.rows) == len(_all_events(sandbox.url))
    assert {p["name"]: p["u_headcount"] for p in pools.values()} == {"L1": 3, "L2": 2}
    assert {"case:category", "case:contact_type", "case:cohort"} <= set(batch.rows[0])


def test_connector_check_passes_and_writes_nothing(
    sandbox: SandboxServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    code = main(["connector", "check", "helpdesk-servicenow", "--base-url", sandbox.url, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    ok = [f"{f['part']}: {f['message']}" for f in report["findings"] if f["status"] == "ok"]
    assert any(line.startswith("events: GET /api/now/table/sys_audit:") for line in ok)
    assert any("would send PATCH /api/now/table/sys_user_group/" in line for line in ok)
    assert any("undo would be DELETE /api/now/table/u_closedloop_rule/" in line for line in ok)
    assert httpx.get(f"{sandbox.url}/writes").json() == []
    monkeypatch.delenv("SERVICENOW_PASSWORD")
    assert main(["connector", "check", "helpdesk-servicenow", "--base-url", sandbox.url]) != 0
    capsys.readouterr()


@pytest.mark.slow
def test_the_whole_loop_runs_on_the_helpdesk_through_the_servicenow_connector(
    tmp_path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    settings = Settings(DATABASE_URL=f"sqlite:///{tmp_path}/store.db", CLOSEDLOOP_HOME=str(tmp_path),
                        CLOSEDLOOP_CONNECTOR="helpdesk-servicenow")
    with SandboxServer(app=create_app(seed=11, servicenow_auth=AUTH)) as server:
        advance_clock(server.url, 21)
        with LoopRunner(settings) as runner:
            state = runner.start(server.url, scope="helpdesk")
            assert state["pending"]["kind"] == "approval"
            assert httpx.get(f"{server.url}/writes").json() == []  # nothing before approval
            state = runner.resume(state["run_id"], {"decision": "approve", "by": "tester"},
                                  expect="approval")
            assert state["pending"]["kind"] == "evidence"
            advance_clock(server.url, 14)
            state = runner.resume(state["run_id"], {}, expect="evidence")
        writes = httpx.get(f"{server.url}/writes").json()
    assert state["pending"] is None and state["outcome"] in ("kept", "rolled_back")
    assert writes and all(w["path"].startswith(TABLE) for w in writes)
    with Session(runner.engine) as s:
        run = s.get(LoopRun, state["run_id"])
        verdict = s.exec(select(Verdict)).one()
        plan = s.get(Plan, verdict.plan_id)
        execution = s.exec(select(Execution).where(Execution.plan_id == plan.id)).one()
        version = s.exec(select(CatalogVersion)).one()
    assert version.connector == "helpdesk-servicenow"
    assert run.catalog_version == version.version
    assert execution.status == "succeeded" and execution.action in (
        "set_group_headcount", "create_automation_rule")
