"""The order-to-cash sandbox over real HTTP on loopback, and its connector (spec + overlay)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from closedloop.sandbox.o2c.app import SERVICE, create_app
from closedloop.sandbox.o2c.export import openapi_document
from closedloop.sandbox.o2c.params import REGIMES, O2CParams, params_for
from closedloop.sandbox.server import SandboxServer
from closedloop.tools.connect import (
    CONNECTORS_DIR,
    apply_overlay,
    build_action_request,
    build_catalog,
    build_compensation_request,
    build_events_request,
    build_read_request,
    load_overlay,
    load_spec,
    map_events_page,
    verify_readback,
)
from closedloop.tools.connect.readback import COHORT, EVENT_ID
from closedloop.tools.log.columns import ACTIVITY, CASE, RESOURCE, START, TIMESTAMP
from tests.sandbox_process import standalone_sandbox

O2C_DIR = Path(__file__).resolve().parents[1] / "closedloop" / "sandbox" / "o2c"
CONNECTOR = CONNECTORS_DIR / "o2c"
HISTORY = f"{SERVICE}/A_SalesOrderStatusHistory"
RULES = f"{SERVICE}/A_AutoApprovalRule"
NEW_CUSTOMER_RULE = {"RuleName": "auto-approve new customers", "CustomerSegment": "new_customer",
                     "MaxAmount": 50000, "TreatmentShare": 0.5}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """A client bound to a fresh o2c sandbox (seed 7, manual clock)."""
    with SandboxServer(seed=7, domain="o2c") as server, \
            httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def _advance(c: httpx.Client, hours: float) -> dict[str, Any]:
    response = c.post("/clock/advance", json={"hours": hours})
    assert response.status_code == 200, response.text
    return response.json()


def _history(c: httpx.Client, top: int | None = None) -> list[dict[str, Any]]:
    """Every status-history entry, paging by the envelope's __skiptoken."""
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {} if top is None else {"$top": top}
    while True:
        page = c.get(HISTORY, params=params)
        assert page.status_code == 200, page.text
        d = page.json()["d"]
        rows.extend(d["results"])
        if "__next" not in d:
            return rows
        params["$skiptoken"] = d["__skiptoken"]


def _write(c: httpx.Client, method: str, path: str, key: str | None,
           body: dict[str, Any] | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return c.request(method, path, json=body, headers=headers)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _approval_waits(rows: list[dict[str, Any]]) -> list[float]:
    """Hours each Manual Approval waited after the order's previous activity completed."""
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_order[row["SalesOrder"]].append(row)
    waits = []
    for entries in by_order.values():
        for before, entry in pairwise(entries):
            if entry["Activity"] == "Manual Approval":
                gap = _ts(entry["ActivityStartedAt"]) - _ts(before["ActivityCompletedAt"])
                waits.append(gap.total_seconds() / 3600)
    return waits


def _run(change: tuple[str, str, dict[str, Any]] | None, weeks: int = 4) -> list[dict[str, Any]]:
    with SandboxServer(seed=7, domain="o2c") as server, \
            httpx.Client(base_url=server.url, timeout=60) as c:
        if change is not None:
            assert _write(c, change[0], change[1], "change-1", change[2]).status_code == 200
        _advance(c, 24 * 7 * weeks)
        return _history(c)


def test_event_shape_and_process(client: httpx.Client) -> None:
    assert _advance(client, 24 * 7)["events_generated"] > 1000
    rows = _history(client)
    assert [r["ChangeSequence"] for r in rows] == list(range(1, len(rows) + 1))
    first = rows[0]
    assert first["Activity"] == "Create Order" and first["ChangeDocument"].startswith("CD-7-")
    assert first["ActivityStartedAt"].endswith("Z")
    completed = [_ts(r["ActivityCompletedAt"]) for r in rows]
    assert completed == sorted(completed)
    assert all(_ts(r["ActivityStartedAt"]) <= _ts(r["ActivityCompletedAt"]) for r in rows)
    activities = Counter(r["Activity"] for r in rows)
    for name in ("Credit Check", "Release Credit Hold", "Manual Approval", "Pick", "Pack",
                 "Ship", "Correct Address", "Create Invoice"):
        assert activities[name] > 0, name
    teams = {r["Team"] for r in rows if r["Activity"] == "Manual Approval"}
    assert teams == {"APPROVERS"}
    assert {r["Resource"] for r in rows if r["Activity"] == "Pick"} <= {
        "PICKERS-1", "PICKERS-2", "PICKERS-3"}
    # Orders arrive mostly on weekdays in daytime.
    created = [_ts(r["ActivityCompletedAt"]) for r in rows if r["Activity"] == "Create Order"]
    daytime = sum(1 for t in created if t.weekday() < 5 and 8 <= t.hour < 18)
    assert daytime / len(created) > 0.6
    order = client.get(f"{SERVICE}/A_SalesOrder('{first['SalesOrder']}')").json()["d"]
    assert order["CustomerSegment"] == first["CustomerSegment"]
    assert client.get(f"{SERVICE}/A_SalesOrder('9')").status_code == 404


def test_same_seed_same_events_in_any_chunking() -> None:
    def history(seed: int, chunks: list[float]) -> list[dict[str, Any]]:
        with SandboxServer(seed=seed, domain="o2c") as server, \
                httpx.Client(base_url=server.url, timeout=60) as c:
            for hours in chunks:
                _advance(c, hours)
            return _history(c)

    one = history(5, [72])
    assert one == history(5, [10, 0.5, 61.5])
    assert one != history(6, [72])


def test_feed_pages_with_cursor_next_link_and_filter() -> None:
    app = create_app(seed=3, page_size=250)
    with SandboxServer(app=app) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        _advance(c, 72)
        everything = _history(c)
        assert len(everything) > 750
        first = c.get(HISTORY).json()["d"]
        assert len(first["results"]) == 250 and first["__skiptoken"] == "250"
        assert "%24skiptoken=250" in first["__next"] or "$skiptoken=250" in first["__next"]
        followed: list[dict[str, Any]] = []
        url: str | None = f"{server.url}{HISTORY}?$filter=Activity eq 'Pick'"
        while url is not None:
            d = c.get(url).json()["d"]
            followed.extend(d["results"])
            url = d.get("__next")
        assert followed == [r for r in everything if r["Activity"] == "Pick"]
        small = _history(c, top=100)
        assert small == everything
        after = c.get(HISTORY, params={"$filter": "ChangeSequence gt 700"}).json()["d"]
        assert after["results"][0]["ChangeSequence"] == 701
        caught_up = c.get(HISTORY, params={"$skiptoken": str(len(everything))}).json()["d"]
        assert caught_up == {"results": []}
        for bad in ({"$skiptoken": "abc"}, {"$filter": "Nope eq 1"},
                    {"$orderby": "Activity"}, {"$filter": "Activity startswith 'P'"}):
            response = c.get(HISTORY, params=bad)
            assert response.status_code == 400, bad
            assert set(response.json()["error"]) == {"code", "message"}
        orders = c.get(f"{SERVICE}/A_SalesOrder", params={
            "$filter": "CustomerSegment eq 'enterprise' and TotalNetAmount ge 10000",
            "$orderby": "TotalNetAmount desc", "$top": 3, "$inlinecount": "allpages"}).json()["d"]
        amounts = [o["TotalNetAmount"] for o in orders["results"]]
        assert amounts == sorted(amounts, reverse=True) and min(amounts) >= 10000
        assert int(orders["__count"]) >= len(amounts) and "__next" not in orders


def test_low_threshold_makes_approval_the_bottleneck_and_fixes_relieve_it() -> None:
    base = _run(None)
    more_approvers = _run(("PUT", f"{SERVICE}/A_Team('APPROVERS')", {"Headcount": 4}))
    higher = _run(("PUT", f"{SERVICE}/A_ApprovalThreshold('1010')", {"ThresholdAmount": 10000}))
    lower = _run(("PUT", f"{SERVICE}/A_ApprovalThreshold('1010')", {"ThresholdAmount": 1000}))
    base_wait = statistics.mean(_approval_waits(base))
    assert statistics.mean(_approval_waits(more_approvers)) < 0.7 * base_wait
    assert statistics.mean(_approval_waits(higher)) < 0.7 * base_wait
    assert statistics.mean(_approval_waits(lower)) > 3 * base_wait

    def approvals(rows: list[dict[str, Any]]) -> int:
        return sum(r["Activity"] == "Manual Approval" for r in rows)

    assert approvals(higher) < 0.5 * approvals(base)
    # Staffing changes who works, never which orders arrive.
    assert Counter(r["SalesOrder"] for r in base if r["Activity"] == "Create Order") == Counter(
        r["SalesOrder"] for r in more_approvers if r["Activity"] == "Create Order")


def test_auto_approval_rule_tags_cohorts_and_lets_risk_through(client: httpx.Client) -> None:
    created = _write(client, "POST", RULES, "rule-1", NEW_CUSTOMER_RULE)
    assert created.status_code == 201
    rule_id = created.json()["d"]["RuleID"]
    _advance(client, 24 * 7 * 9)
    rows = _history(client)
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_order[row["SalesOrder"]].append(row)
    arms: dict[str, list[set[str]]] = defaultdict(list)
    cutoff = datetime.fromisoformat("2026-02-09T00:00:00+00:00")  # 5 weeks: time to pay
    for entries in by_order.values():
        head = entries[0]
        labels = {e["Experiment"] for e in entries}
        assert len(labels) == 1
        if head["CustomerSegment"] != "new_customer" or head["TotalNetAmount"] > 50000:
            assert head["Experiment"] == ""
            continue
        assert head["Experiment"] in (f"{rule_id}:treatment", f"{rule_id}:control")
        if _ts(head["ActivityCompletedAt"]) < cutoff:
            arms[head["Experiment"].split(":")[1]].append({e["Activity"] for e in entries})
    treated, control = arms["treatment"], arms["control"]
    assert 0.4 < len(treated) / (len(treated) + len(control)) < 0.6
    assert not any("Manual Approval" in a for a in treated)
    assert any("Manual Approval" in a for a in control)
    assert any("Reject Order" in a for a in control) and not any("Reject Order" in a
                                                                  for a in treated)

    def bad_debt(arm: list[set[str]]) -> float:
        return sum(bool({"Send Dunning Notice", "Write Off Receivable"} & a) for a in arm) / len(
            arm)

    assert bad_debt(treated) > bad_debt(control) + 0.08
    orders = client.get(f"{SERVICE}/A_SalesOrder",
                        params={"$filter": f"Experiment eq '{rule_id}:treatment'"}).json()["d"]
    assert orders["results"] and {o["ApprovalStatus"] for o in orders["results"]} <= {
        "AutoApproved", ""}


def test_idempotent_writes_and_compensation(client: httpx.Client) -> None:
    first = _write(client, "POST", RULES, "same-key", NEW_CUSTOMER_RULE)
    again = _write(client, "POST", RULES, "same-key", NEW_CUSTOMER_RULE)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert len(client.get(RULES).json()["d"]["results"]) == 1
    other = dict(NEW_CUSTOMER_RULE, MaxAmount=10)
    assert _write(client, "POST", RULES, "same-key", other).status_code == 409
    assert _write(client, "POST", RULES, None, NEW_CUSTOMER_RULE).status_code == 400
    rule_id = first.json()["d"]["RuleID"]
    path = f"{RULES}('{rule_id}')"
    assert _write(client, "DELETE", path, "del-1").status_code == 204
    assert _write(client, "DELETE", path, "del-1").status_code == 204  # replay
    assert _write(client, "DELETE", path, "del-2").status_code == 404
    assert client.get(RULES).json()["d"]["results"] == []
    team = f"{SERVICE}/A_Team('APPROVERS')"
    put = _write(client, "PUT", team, "team-1", {"Headcount": 5})
    assert put.json()["d"]["PreviousHeadcount"] == 2
    assert _write(client, "PUT", team, "team-1", {"Headcount": 5}).json() == put.json()
    assert client.get(team).json()["d"]["Headcount"] == 5
    assert _write(client, "PUT", f"{SERVICE}/A_Team('NOPE')", "team-2",
                  {"Headcount": 1}).status_code == 404
    assert _write(client, "PUT", team, "team-3", {"Headcount": -1}).status_code == 400
    writes = client.get("/writes").json()
    assert [w["replayed"] for w in writes if w["idempotency_key"] == "same-key"] == [
        False, True, False]


def test_bearer_token_required_except_health() -> None:
    with SandboxServer(domain="o2c", api_token="s3cret") as server:
        anonymous = httpx.Client(base_url=server.url)
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get(HISTORY).status_code == 401
        authed = httpx.Client(base_url=server.url, headers={"Authorization": "Bearer s3cret"})
        assert authed.get(HISTORY).status_code == 200


def test_connector_spec_is_the_apps_export() -> None:
    shipped = yaml.safe_load((CONNECTOR / "openapi.yaml").read_text())
    assert shipped == openapi_document(), "re-export: python -m closedloop.sandbox.o2c.export"


def test_connector_catalog_events_and_actions_against_the_live_system() -> None:
    spec = load_spec(CONNECTOR / "openapi.yaml")
    catalog = build_catalog(apply_overlay(spec, load_overlay(CONNECTOR / "overlay.yaml")))
    assert set(catalog.actions) == {"set_team_headcount", "set_approval_threshold",
                                    "auto_approve_segment"}
    kinds = {n: a.change_kinds for n, a in catalog.actions.items()}
    assert kinds["set_approval_threshold"] == ["approval_threshold"]
    assert catalog.actions["auto_approve_segment"].treatment_share_param == "treatment_share"
    with SandboxServer(app=create_app(seed=4, page_size=300)) as server, \
            httpx.Client(timeout=60) as c:
        base = server.url
        rule = build_action_request(catalog, "auto_approve_segment", {
            "name": "new customers", "customer_segment": "new_customer", "max_amount": 50000,
            "treatment_share": 0.5}, base, idempotency_key="a-1")
        rule_response = c.send(rule).json()
        assert verify_readback(catalog, "auto_approve_segment", {}, rule_response,
                               c.send(build_read_request(catalog, base)).json())
        c.post(f"{base}/clock/advance", json={"hours": 96})
        rows: list[dict[str, Any]] = []
        cursor, pages = None, 0
        while True:
            page = c.send(build_events_request(catalog, base, cursor=cursor, page_size=300))
            batch, cursor = map_events_page(catalog, page.json())
            rows.extend(batch)
            pages += 1
            if cursor is None:
                break
        assert pages > 2
        assert len({r[EVENT_ID] for r in rows}) == len(rows)
        for column in (CASE, ACTIVITY, TIMESTAMP, START, RESOURCE, "case:segment",
                       "case:amount", "case:region", COHORT):
            assert column in rows[0], column
        cohorts = Counter(r[COHORT] for r in rows if r["case:segment"] == "new_customer")
        assert cohorts["treatment"] > 0 and cohorts["control"] > 0
        assert {r[COHORT] for r in rows if r["case:segment"] != "new_customer"} == {None}
        before = c.send(build_read_request(catalog, base)).json()
        for action, params in (("set_team_headcount", {"team": "APPROVERS", "headcount": 4}),
                               ("set_approval_threshold", {"threshold_amount": 9000})):
            response = c.send(build_action_request(catalog, action, params, base,
                                                   idempotency_key=f"{action}-1"))
            assert response.status_code == 200, response.text
            after = c.send(build_read_request(catalog, base)).json()
            assert verify_readback(catalog, action, params, response.json(), after)
            undo = build_compensation_request(catalog, action, params, base,
                                              response=response.json(), before=before,
                                              idempotency_key=f"{action}-undo")
            assert c.send(undo).status_code == 200
        undo_rule = build_compensation_request(catalog, "auto_approve_segment", {
            "name": "new customers", "customer_segment": "new_customer", "max_amount": 50000,
            "treatment_share": 0.5}, base, response=rule_response, idempotency_key="a-undo")
        assert c.send(undo_rule).status_code == 204
        restored = c.send(build_read_request(catalog, base)).json()["d"]
        assert restored["Staffing"] == before["d"]["Staffing"]
        assert restored["ApprovalThresholdAmount"] == before["d"]["ApprovalThresholdAmount"]
        assert restored["AutoApprovalRules"] == []


def test_standalone_process_serves_o2c() -> None:
    with standalone_sandbox("--domain", "o2c") as c:
        assert _advance(c, 24)["events_generated"] > 0
        assert c.get(HISTORY, params={"$top": 1}).json()["d"]["results"]


def test_o2c_sandbox_shares_no_code_with_the_agent_side() -> None:
    forbidden = re.compile(
        r"^\s*(from|import)\s+closedloop\.(tools|agents|graphs|store|api|evals|governance)\b",
        re.MULTILINE,
    )
    for source in O2C_DIR.glob("*.py"):
        assert not forbidden.search(source.read_text()), source.name


#: sha256 of the status history after 72 simulated hours of seed 7, recorded before regimes
#: existed: the default regime must stay byte-identical to that world.
DEFAULT_WORLD_SHA256 = "e80c4a6bb9980b1b51b52d3ef34efddc539677f2c74d924c0a5a3809a1651d8f"


def _history_digest(**options: Any) -> str:
    c = TestClient(create_app(seed=7, **options))
    c.post("/clock/advance", json={"hours": 72}).raise_for_status()
    return hashlib.sha256(c.get(HISTORY, params={"$top": 100000}).content).hexdigest()


def test_default_regime_is_byte_identical_and_regimes_are_overrides() -> None:
    assert params_for("default") == O2CParams()
    assert _history_digest() == DEFAULT_WORLD_SHA256
    assert _history_digest(regime="default") == DEFAULT_WORLD_SHA256
    assert _history_digest(regime="risky-auto-approve") != DEFAULT_WORLD_SHA256
    fields = {f.name for f in dataclasses.fields(O2CParams)}
    assert {"default", "risky-auto-approve"} <= set(REGIMES)
    for name, regime in REGIMES.items():
        assert set(regime.overrides) <= fields and len(regime.summary) > 40
        assert (params_for(name) == O2CParams()) == (name == "default")
    with pytest.raises(ValueError, match="unknown o2c regime"):
        create_app(regime="overload")


def test_risky_auto_approve_regime_rejects_more_at_manual_approval() -> None:
    def rejections(regime: str) -> int:
        with SandboxServer(seed=7, domain="o2c", regime=regime) as server, \
                httpx.Client(base_url=server.url, timeout=60) as c:
            _advance(c, 24 * 14)
            text = c.get(f"{SERVICE}/GetConfiguration").text
            assert regime not in text and "risky" not in text.lower()
            return sum(r["Activity"] == "Reject Order" for r in _history(c))

    # the same orders arrive; far more of them come from risky customers (hidden)
    assert rejections("risky-auto-approve") > 1.5 * rejections("default")
