"""The sandbox helpdesk over real HTTP on loopback (SandboxServer + httpx)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from closedloop.sandbox.params import REGIMES, SandboxParams, params_for
from closedloop.sandbox.server import SandboxServer
from tests.sandbox_process import standalone_sandbox

SANDBOX_DIR = Path(__file__).resolve().parents[1] / "closedloop" / "sandbox"
PASSWORD_RULE = {
    "name": "auto-resolve password resets",
    "condition": {"field": "category", "op": "eq", "value": "password"},
    "action": {"type": "auto_resolve"},
    "treatment_share": 0.5,
}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """A client bound to a fresh sandbox (seed 7, manual clock)."""
    with SandboxServer(seed=7) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def _advance(c: httpx.Client, hours: float) -> dict:
    response = c.post("/clock/advance", json={"hours": hours})
    assert response.status_code == 200, response.text
    return response.json()


def _all_events(c: httpx.Client, limit: int = 10000) -> list[dict]:
    events: list[dict] = []
    after = 0
    while True:
        page = c.get("/events", params={"after_seq": after, "limit": limit}).json()
        events.extend(page["events"])
        if page["next_after_seq"] is None:
            return events
        after = page["next_after_seq"]


def _ts(event: dict) -> datetime:
    return datetime.fromisoformat(event["timestamp"])


def _by_case(events: list[dict]) -> dict[str, list[dict]]:
    cases: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        cases[event["case_id"]].append(event)
    return cases


def _waits_hours(events: list[dict]) -> dict[str, list[float]]:
    """Hours each queue's work waited: from the case's previous completion to the work start."""
    waits: dict[str, list[float]] = defaultdict(list)
    for case_events in _by_case(events).values():
        previous: datetime | None = None
        for event in case_events:
            queue = event["attributes"]["queue"]
            if event["lifecycle"] == "start" and event["activity"] in ("Triage", "Resolve"):
                assert previous is not None
                waits[queue].append((_ts(event) - previous).total_seconds() / 3600)
            if event["lifecycle"] == "complete":
                previous = _ts(event)
    return waits


def _cycle_hours(events: list[dict]) -> dict[str, list[float]]:
    """Register-to-Close hours of closed tickets, keyed by experiment label."""
    cycles: dict[str, list[float]] = defaultdict(list)
    for case_events in _by_case(events).values():
        closes = [e for e in case_events if e["activity"] == "Close" and e["lifecycle"] == "complete"]
        if closes:
            label = case_events[0]["attributes"]["experiment"]
            cycles[label].append((_ts(closes[-1]) - _ts(case_events[0])).total_seconds() / 3600)
    return cycles


def _write(c: httpx.Client, method: str, path: str, key: str | None, body: dict | None = None):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return c.request(method, path, json=body, headers=headers)


def test_health_clock_and_event_shape(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/clock").json()["now"].startswith("2026-01-05T00:00:00")
    result = _advance(client, 48)
    assert result["now"].startswith("2026-01-07T00:00:00")
    events = _all_events(client)
    assert result["events_generated"] == len(events) > 100
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    times = [_ts(e) for e in events]
    assert all(t.tzinfo is not None for t in times)
    assert times == sorted(times)
    assert datetime(2026, 1, 5, tzinfo=UTC) <= times[0] and times[-1] <= datetime(2026, 1, 7, tzinfo=UTC)
    first = events[0]
    assert first["activity"] == "Register ticket" and first["lifecycle"] == "start"
    assert set(first["attributes"]) >= {"category", "priority", "channel", "customer_tier",
                                        "experiment"}
    assert len({e["event_id"] for e in events}) == len(events)
    activities = {e["activity"] for e in events}
    assert {"Register ticket", "Triage", "Resolve", "Escalate", "Close"} <= activities
    assert any(e["resource"].startswith("L1-agent-") for e in events)
    # Human work only starts in business hours (Mon-Fri 08-18 UTC).
    for event in events:
        if event["resource"].startswith(("L1-", "L2-")) and event["lifecycle"] == "start" \
                and event["activity"] != "Escalate":
            moment = _ts(event)
            assert moment.weekday() < 5 and 8 <= moment.hour < 18


def test_same_seed_same_events_in_any_chunking() -> None:
    with SandboxServer(seed=11) as a, SandboxServer(seed=11) as b, SandboxServer(seed=12) as d:
        ca, cb, cd = (httpx.Client(base_url=s.url, timeout=30) for s in (a, b, d))
        _advance(ca, 24 * 7)
        for hours in (30, 0.5, 48, 89.5):
            _advance(cb, hours)
        _advance(cd, 24 * 7)
        events_a, events_b = _all_events(ca), _all_events(cb)
        assert events_a == events_b
        assert _all_events(cd) != events_a


def test_accelerated_clock_and_custom_start() -> None:
    start = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    with SandboxServer(speed=3600 * 24, start=start) as server, httpx.Client(
        base_url=server.url
    ) as c:
        deadline = time.monotonic() + 10
        while not c.get("/events").json()["events"] and time.monotonic() < deadline:
            time.sleep(0.05)
        now = datetime.fromisoformat(c.get("/clock").json()["now"])
        assert now > start
        events = c.get("/events").json()["events"]
        assert events and _ts(events[0]) >= start


def test_pagination_and_time_window(client: httpx.Client) -> None:
    _advance(client, 24 * 3)
    everything = _all_events(client)
    paged = _all_events(client, limit=97)
    assert paged == everything
    since, until = "2026-01-06T08:00:00Z", "2026-01-06T12:00:00+00:00"
    window = client.get("/events", params={"since": since, "until": until}).json()["events"]
    expected = [e for e in everything
                if datetime(2026, 1, 6, 8, tzinfo=UTC) <= _ts(e) < datetime(2026, 1, 6, 12, tzinfo=UTC)]
    assert window == expected and window
    assert client.get("/events", params={"limit": 10001}).status_code == 422


def test_l1_is_the_bottleneck_and_password_is_common(client: httpx.Client) -> None:
    _advance(client, 24 * 14)
    events = _all_events(client)
    waits = _waits_hours(events)
    l1, l2 = statistics.mean(waits["L1"]), statistics.mean(waits["L2"])
    assert l1 > 2.0, l1
    assert l1 > 2 * l2, (l1, l2)
    registered = [e for e in events if e["activity"] == "Register ticket" and e["lifecycle"] == "start"]
    share = sum(e["attributes"]["category"] == "password" for e in registered) / len(registered)
    assert 0.25 < share < 0.45


def test_more_l1_staff_reduces_l1_waiting() -> None:
    with SandboxServer(seed=7) as base, SandboxServer(seed=7) as staffed:
        cb, cs = httpx.Client(base_url=base.url), httpx.Client(base_url=staffed.url)
        assert _write(cs, "PUT", "/config/staffing/L1", "staff-1", {"agents": 5}).status_code == 200
        _advance(cb, 24 * 14)
        _advance(cs, 24 * 14)
        before = statistics.mean(_waits_hours(_all_events(cb))["L1"])
        after = statistics.mean(_waits_hours(_all_events(cs))["L1"])
        assert after < 0.7 * before, (before, after)
        assert any(e["resource"] == "L1-agent-5" for e in _all_events(cs))


def test_auto_resolve_experiment_splits_and_helps_password(client: httpx.Client) -> None:
    created = _write(client, "POST", "/rules", "rule-1", PASSWORD_RULE)
    assert created.status_code == 201, created.text
    rule_id = created.json()["rule_id"]
    assert created.json()["condition"] == PASSWORD_RULE["condition"]
    _advance(client, 24 * 7)
    events = _all_events(client)
    cases = _by_case(events)
    labels = {cid: evs[0]["attributes"]["experiment"] for cid, evs in cases.items()}
    for cid, evs in cases.items():
        assert {e["attributes"]["experiment"] for e in evs} == {labels[cid]}
        is_password = evs[0]["attributes"]["category"] == "password"
        assert (labels[cid] != "") == is_password
    treated = [cid for cid, label in labels.items() if label == f"{rule_id}:treatment"]
    control = [cid for cid, label in labels.items() if label == f"{rule_id}:control"]
    assert 0.35 < len(treated) / (len(treated) + len(control)) < 0.65
    bot = {e["case_id"] for e in events if e["activity"] == "Auto-resolve"}
    assert bot == set(treated) - {cid for cid in treated if len(cases[cid]) < 3}
    assert all(e["resource"] == "bot" for e in events if e["activity"] == "Auto-resolve")
    assert not bot & set(control)
    cycles = _cycle_hours(events)
    treatment_cycle = statistics.mean(cycles[f"{rule_id}:treatment"])
    control_cycle = statistics.mean(cycles[f"{rule_id}:control"])
    assert treatment_cycle < control_cycle, (treatment_cycle, control_cycle)
    # Some bot resolutions fail and go back to L1 through "Reopen".
    assert any(e["activity"] == "Reopen" for cid in treated for e in cases[cid])

    deleted = _write(client, "DELETE", f"/rules/{rule_id}", "del-1")
    assert deleted.json() == {"rule_id": rule_id, "deleted": True}
    assert client.get("/config").json()["rules"] == []
    last_seq = events[-1]["seq"]
    _advance(client, 24)
    new = client.get("/events", params={"after_seq": last_seq}).json()["events"]
    new_cases = {e["case_id"] for e in new} - set(cases)
    assert new_cases
    assert all(e["attributes"]["experiment"] == "" for e in new if e["case_id"] in new_cases)
    assert all(e["attributes"]["experiment"] == labels[e["case_id"]]
               for e in new if e["case_id"] in labels)


def test_route_rule_skips_l1(client: httpx.Client) -> None:
    rule = {"name": "access to L2", "condition": {"field": "category", "op": "in",
                                                  "value": ["access"]},
            "action": {"type": "route", "queue": "L2"}, "treatment_share": 1.0}
    rule_id = _write(client, "POST", "/rules", "route-1", rule).json()["rule_id"]
    _advance(client, 24 * 3)
    routed = [evs for evs in _by_case(_all_events(client)).values()
              if evs[0]["attributes"]["experiment"] == f"{rule_id}:treatment"]
    assert routed
    for evs in routed:
        assert evs[0]["attributes"]["category"] == "access"
        assert not any(e["activity"] == "Triage" for e in evs)
        assert all(e["resource"].startswith("L2-") for e in evs if e["activity"] == "Resolve")


def test_idempotent_replay_applies_once(client: httpx.Client) -> None:
    first = _write(client, "PUT", "/config/staffing/L1", "key-a", {"agents": 6})
    again = _write(client, "PUT", "/config/staffing/L1", "key-a", {"agents": 6})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == {"queue": "L1", "agents": 6, "previous_agents": 3}
    assert client.get("/config").json()["staffing"] == {"L1": 6, "L2": 2}
    rule_1 = _write(client, "POST", "/rules", "key-r", PASSWORD_RULE)
    rule_2 = _write(client, "POST", "/rules", "key-r", PASSWORD_RULE)
    assert rule_1.status_code == rule_2.status_code == 201 and rule_1.json() == rule_2.json()
    assert len(client.get("/config").json()["rules"]) == 1
    writes = client.get("/writes").json()
    assert [(w["idempotency_key"], w["replayed"]) for w in writes] == [
        ("key-a", False), ("key-a", True), ("key-r", False), ("key-r", True)]
    assert writes[0]["method"] == "PUT" and writes[0]["path"] == "/config/staffing/L1"
    assert all(isinstance(w["at_seq"], int) for w in writes)


def test_write_errors(client: httpx.Client) -> None:
    staffing = "/config/staffing/L1"
    assert _write(client, "PUT", staffing, "k1", {"agents": 4}).status_code == 200
    conflict = _write(client, "PUT", staffing, "k1", {"agents": 5})
    assert conflict.status_code == 409 and conflict.json()["error"] == "idempotency_key_reused"
    missing = _write(client, "PUT", staffing, None, {"agents": 5})
    assert missing.status_code == 400 and "Idempotency-Key" in missing.json()["detail"]
    unknown = _write(client, "PUT", "/config/staffing/L9", "k2", {"agents": 1})
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_queue"
    assert "L1" in unknown.json()["detail"]
    assert _write(client, "DELETE", "/rules/R9999", "k3").status_code == 404
    assert client.get("/config").json()["staffing"]["L1"] == 4
    bad_bodies = [
        (staffing, {"agents": -1}), (staffing, {"agents": 51}), (staffing, {}),
        ("/rules", {**PASSWORD_RULE, "treatment_share": 1.5}),
        ("/rules", {**PASSWORD_RULE, "condition": {"field": "colour", "op": "eq", "value": "x"}}),
        ("/rules", {**PASSWORD_RULE, "condition": {"field": "category", "op": "in",
                                                   "value": "password"}}),
        ("/rules", {**PASSWORD_RULE, "condition": {"field": "category", "op": "eq",
                                                   "value": "passwrd"}}),
        ("/rules", {**PASSWORD_RULE, "action": {"type": "route", "queue": "L7"}}),
        ("/rules", {**PASSWORD_RULE, "action": {"type": "delete_everything"}}),
    ]
    for index, (path, body) in enumerate(bad_bodies):
        method = "PUT" if path == staffing else "POST"
        response = _write(client, method, path, f"bad-{index}", body)
        assert response.status_code == 422, (body, response.text)
    assert client.post("/clock/advance", json={"hours": 0}).status_code == 422
    assert client.post("/clock/advance", json={"hours": 24 * 91}).status_code == 422
    assert client.get("/config").json() == {"staffing": {"L1": 4, "L2": 2}, "rules": []}


def test_bearer_token_required_except_health() -> None:
    with SandboxServer(api_token="s3cret") as server:
        anonymous = httpx.Client(base_url=server.url)
        assert anonymous.get("/health").status_code == 200
        for path in ("/clock", "/events", "/config", "/writes", "/openapi.json"):
            response = anonymous.get(path)
            assert response.status_code == 401, path
            assert response.json()["error"] == "unauthorized"
        assert anonymous.get("/clock", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert _write(anonymous, "PUT", "/config/staffing/L1", "k", {"agents": 1}).status_code == 401
        authed = httpx.Client(base_url=server.url, headers={"Authorization": "Bearer s3cret"})
        assert authed.get("/clock").status_code == 200
        spec = authed.get("/openapi.json").json()
        assert spec["paths"]["/clock"]["get"]["security"] == [{"bearerAuth": []}]
        assert authed.get("/writes").json() == []  # rejected writes never reach the ledger


def test_openapi_documents_every_endpoint(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    expected = {"/health", "/clock", "/clock/advance", "/events", "/config",
                "/config/staffing/{queue}", "/rules", "/rules/{rule_id}", "/writes"}
    assert expected <= set(spec["paths"])
    for operations in spec["paths"].values():
        assert all(op.get("summary") for op in operations.values())


def test_standalone_process_serves_until_killed() -> None:
    with standalone_sandbox("--seed", "3") as c:
        assert _advance(c, 24)["events_generated"] > 0


def test_sandbox_shares_no_code_with_the_agent_side() -> None:
    forbidden = re.compile(
        r"^\s*(from|import)\s+closedloop\.(tools|agents|graphs|store|api|evals)\b", re.MULTILINE
    )
    for source in SANDBOX_DIR.glob("*.py"):
        assert not forbidden.search(source.read_text()), source.name


#: sha256 of GET /events?limit=10000 after 72 simulated hours of seed 7, recorded before
#: regimes existed: the default regime must stay byte-identical to that world.
DEFAULT_WORLD_SHA256 = "22bd5bc30634f97b38b77fadc9a19ab4097d474c57b8fc336f24003c8e7f5eba"


def _events_digest(**options: object) -> str:
    with SandboxServer(seed=7, **options) as server, \
            httpx.Client(base_url=server.url, timeout=30) as c:  # type: ignore[arg-type]
        _advance(c, 72)
        return hashlib.sha256(c.get("/events", params={"limit": 10000}).content).hexdigest()


def test_default_regime_is_byte_identical_to_the_world_before_regimes() -> None:
    assert params_for("default") == SandboxParams()
    assert _events_digest() == DEFAULT_WORLD_SHA256
    assert _events_digest(regime="default") == DEFAULT_WORLD_SHA256
    assert _events_digest(regime="unreliable-bot") != DEFAULT_WORLD_SHA256


def test_regimes_are_documented_overrides_of_hidden_params() -> None:
    assert {"default", "second-line-bottleneck", "unreliable-bot", "overload",
            "nothing-helps"} <= set(REGIMES)
    fields = {f.name for f in dataclasses.fields(SandboxParams)}
    for name, regime in REGIMES.items():
        assert regime.name == name and len(regime.summary) > 40
        assert set(regime.overrides) <= fields
        params = params_for(name)
        for field, value in regime.overrides.items():
            actual = getattr(params, field)
            assert (actual.items() >= value.items()) if isinstance(value, dict) else actual == value
        assert (params == SandboxParams()) == (name == "default")
    # dict overrides merge: unreliable-bot changes failure rates but keeps L2's staffing
    assert params_for("unreliable-bot").staffing == {"L1": 4, "L2": 2}
    assert params_for("overload").peak_arrivals_per_hour > SandboxParams().peak_arrivals_per_hour
    with pytest.raises(ValueError, match="unknown helpdesk regime"):
        params_for("paradise")
    with pytest.raises(ValueError, match="unknown helpdesk regime"):
        SandboxServer(regime="paradise")


def test_regime_is_hidden_from_the_api_but_deterministic_per_seed() -> None:
    with SandboxServer(seed=5, regime="nothing-helps") as a, \
            SandboxServer(seed=5, regime="nothing-helps") as b, \
            SandboxServer(seed=5, regime="overload") as d:
        ca, cb, cd = (httpx.Client(base_url=s.url, timeout=30) for s in (a, b, d))
        # only public state differs (initial staffing); no regime name or hidden knob leaks
        assert ca.get("/config").json()["staffing"] == {"L1": 8, "L2": 5}
        for path in ("/config", "/queues", "/clock", "/health", "/openapi.json"):
            text = ca.get(path).text
            assert "nothing-helps" not in text and "failure" not in text, path
        for c in (ca, cb, cd):
            _advance(c, 24 * 5)
        assert _all_events(ca) == _all_events(cb)
        # overload: more tickets arrive than at the default rate (nothing-helps keeps it)
        assert len({e["case_id"] for e in _all_events(cd)}) > len(
            {e["case_id"] for e in _all_events(ca)})


def test_standalone_process_takes_a_regime() -> None:
    with standalone_sandbox("--seed", "3", "--regime", "second-line-bottleneck") as c:
        assert c.get("/config").json()["staffing"] == {"L1": 4, "L2": 2}
    wrong = subprocess.run([sys.executable, "-m", "closedloop.sandbox", "--regime", "paradise"],
                           check=False, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "unknown regime 'paradise'" in wrong.stderr
    listed = subprocess.run([sys.executable, "-m", "closedloop.sandbox", "--list-regimes"],
                            check=False, capture_output=True, text=True, timeout=60)
    assert "unreliable-bot" in listed.stdout and "risky-auto-approve" in listed.stdout
