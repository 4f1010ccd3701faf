"""The Teams bot over the real Bot Framework protocol: JWT-validated invokes (keys made here, served
by a loopback issuer), Action.Execute decisions by approvers only, cards refreshed for everyone,
Ask for more, the press time window, proactive posting to a loopback Bot Connector, and the
whole loop approved from Teams."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlmodel import select

from closedloop.api.app import create_app
from closedloop.api.server import build_server
from closedloop.sandbox.server import SandboxServer
from closedloop.settings import Settings
from closedloop.store.db import open_store, transaction
from closedloop.store.models import AuditEvent, Policy
from tests.teams_fakes import (
    ADMIN,
    ANALYST,
    APP_ID,
    ISSUER,
    STRANGER,
    BotFramework,
    activity,
    free_port,
    serving,
    stale,
)
from tests.test_api import (
    StubRunner,
    approval_status,
    assert_valid,
    auth,
    make_settings,
    seed_paused_run,
)


@pytest.fixture(scope="module")
def bf() -> Iterator[BotFramework]:
    with BotFramework().running() as framework:
        yield framework


@pytest.fixture
def bot(tmp_path: Path, bf: BotFramework) -> Iterator[tuple[TestClient, StubRunner, int, Settings]]:
    bf.posted.clear()
    bf.updated.clear()
    bf.connector_auth.clear()
    settings = make_settings(tmp_path, **bf.settings())
    approval_id = seed_paused_run(settings)
    stub = StubRunner(settings)
    with TestClient(create_app(settings, runner_factory=lambda _s: stub)) as client:
        yield client, stub, approval_id, settings


def press(client: Any, bf: BotFramework, body: dict[str, Any], token: str | None = None) -> Any:
    body = {**body, "serviceUrl": body.get("serviceUrl") or bf.url}
    headers = {"Authorization": f"Bearer {token or bf.token()}"} if token != "" else {}
    return client.post("/api/messages", json=body, headers=headers)


def texts(card: dict[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False)


def test_an_approver_decides_once_and_the_card_is_refreshed_for_everyone(
    bot, bf, validator
) -> None:
    client, stub, approval_id, settings = bot
    r = press(client, bf, activity(approval_id, "approve", comment="go"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["statusCode"] == 200 and out["type"] == "application/vnd.microsoft.card.adaptive"
    card = out["value"]
    assert_valid(validator, card)
    assert "Approved by Ada Lovelace (aad-0001) via teams" in texts(card) and "actions" not in card
    assert [(v["decision"], v["by"], v["channel"]) for _, v, _ in stub.resumes] == [
        ("approve", "Ada Lovelace (aad-0001)", "teams")
    ]
    # Everyone's copy of the posted card is replaced through the Bot Connector, with the app's token.
    [update] = bf.updated
    assert (
        update["activity_id"] == "activity-1"
        and update["conversation"] == "19:approvals@thread.tacv2"
    )
    shared = update["attachments"][0]["content"]
    assert_valid(validator, shared)
    assert (
        "Approved by Ada Lovelace" in texts(shared)
        and "actions" not in shared
        and "refresh" not in shared
    )
    assert bf.connector_auth == ["Bearer connector-access-token"]
    assert (
        bf.token_requests[-1]["client_id"] == APP_ID
        and bf.token_requests[-1]["grant_type"] == "client_credentials"
    )

    # A replay, or a second approver: the decided card, no second resume, no second update.
    again = press(client, bf, activity(approval_id, "reject"))
    assert again.status_code == 200 and "already been decided" in again.text
    assert (
        len(stub.resumes) == 1
        and len(bf.updated) == 1
        and approval_status(settings, approval_id) == "approved"
    )


def _forged(bf: BotFramework) -> list[tuple[str, str]]:
    now = int(time.time())
    return [
        ("no token", ""),
        ("wrong issuer", bf.token(iss="https://evil.example")),
        ("wrong audience", bf.token(aud="someone-elses-app")),
        ("signed by another key", bf.token(key=bf.other_key)),
        ("unknown key id", bf.token(kid="not-published")),
        ("expired", bf.token(exp=now - 3600, iat=now - 7200, nbf=now - 7200)),
        (
            "expired 25 years ago",
            bf.token(exp=now - 25 * 365 * 86400, iat=now - 25 * 365 * 86400 - 60),
        ),
        ("not yet valid", bf.token(nbf=now + 3600)),
        ("no expiry", bf.token(exp=None)),
        ("other serviceUrl", bf.token(serviceurl="https://evil.example/")),
        (
            "HS256 with the public key",
            jwt.encode(
                {"iss": ISSUER, "aud": APP_ID, "exp": now + 600},
                "a-shared-secret-of-thirty-two-by",
                algorithm="HS256",
                headers={"kid": bf.kid},
            ),
        ),
        ("garbage", "not-a-jwt"),
    ]


def test_forged_expired_or_misaddressed_tokens_are_401_and_change_nothing(bot, bf) -> None:
    client, stub, approval_id, settings = bot
    for label, token in _forged(bf):
        r = press(client, bf, activity(approval_id, "approve"), token=token)
        assert r.status_code == 401, (label, r.text)
        assert r.json()["type"] == "application/vnd.microsoft.error"
    assert (
        stub.resumes == []
        and bf.updated == []
        and approval_status(settings, approval_id) == "pending"
    )


@pytest.mark.parametrize("who", [ANALYST, STRANGER, ADMIN])
def test_only_approvers_decide(bot, bf, who: dict[str, str]) -> None:
    client, stub, approval_id, settings = bot
    for verb in ("approve", "reject"):
        r = press(client, bf, activity(approval_id, verb, who=who))
        assert r.status_code == 403, r.text
        assert "approver" in r.json()["value"]["message"]
    assert stub.resumes == [] and approval_status(settings, approval_id) == "pending"


@pytest.mark.parametrize("at", [stale(10), stale(-10), stale(60 * 24 * 365 * 25), None])
def test_presses_outside_the_time_window_are_refused(bot, bf, at) -> None:
    client, stub, approval_id, settings = bot
    body = activity(approval_id, "approve", at=at)
    if at is None:
        body.pop("timestamp")
    r = press(client, bf, body)
    assert r.status_code == 403 and r.json()["value"]["code"] == "Expired", r.text
    assert stub.resumes == [] and approval_status(settings, approval_id) == "pending"


def test_refresh_shows_buttons_to_approvers_only(bot, bf, validator) -> None:
    client, stub, approval_id, _ = bot
    mine = press(client, bf, activity(approval_id, "refresh")).json()["value"]
    assert_valid(validator, mine)
    assert [a["verb"] for a in mine["actions"]] == ["approve", "reject", "ask"]
    for who in (STRANGER, ANALYST):
        theirs = press(client, bf, activity(approval_id, "refresh", who=who)).json()["value"]
        assert_valid(validator, theirs)
        assert "actions" not in theirs and "Input.Text" not in texts(theirs)
        assert theirs["refresh"]["userIds"] == ["29:approver-ada"]
        assert theirs["refresh"]["action"] == {
            "type": "Action.Execute",
            "verb": "refresh",
            "data": {"approval_id": approval_id},
        }
    assert stub.resumes == []


def test_ask_for_more_is_stored_and_shown_to_everyone(bot, bf, validator) -> None:
    client, stub, approval_id, settings = bot
    r = press(
        client,
        bf,
        activity(approval_id, "ask", comment="What does this do to VIP tickets?", who=ANALYST),
    )
    assert r.status_code == 200, r.text
    assert_valid(validator, r.json()["value"])
    assert "What does this do to VIP tickets?" in texts(r.json()["value"])
    refused = press(client, bf, activity(approval_id, "ask", comment="let me in", who=STRANGER))
    assert refused.status_code == 403
    with transaction(open_store(settings.resolved_database_url())) as s:
        rows = s.exec(select(AuditEvent).where(AuditEvent.kind == "question")).all()
        assert [(q.actor, q.payload["text"], q.payload["channel"]) for q in rows] == [
            ("Bob Analyst (aad-0002)", "What does this do to VIP tickets?", "teams")
        ]
    [update] = bf.updated
    assert "Questions asked (1)" in texts(update["attachments"][0]["content"])
    assert stub.resumes == [] and approval_status(settings, approval_id) == "pending"


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (lambda a: activity(a, verb="delete_everything"), 400),
        (lambda a: activity("1; drop table approval"), 400),
        (lambda a: activity(None), 400),
        (lambda a: activity(a, comment={"nested": "object"}), 400),
        (lambda a: activity(999), 404),
        (lambda a: {**activity(a), "name": "composeExtension/query"}, 400),
        (lambda a: {**activity(a), "from": None}, 422),
    ],
)
def test_bad_actions_change_nothing(bot, bf, make, status: int) -> None:
    client, stub, approval_id, settings = bot
    r = press(client, bf, make(approval_id))
    assert r.status_code == status, r.text
    assert r.json()["type"] == "application/vnd.microsoft.error"
    assert stub.resumes == [] and approval_status(settings, approval_id) == "pending"


def test_text_commands_through_the_bot(bot, bf) -> None:
    client, _, _, settings = bot
    message = {**activity(1), "type": "message", "text": "<at>closedloop</at> status"}
    message.pop("value")
    bf.posted.clear()
    r = press(client, bf, message)
    assert r.status_code == 200 and "1 approval(s) pending" in r.json()["text"]
    [reply] = bf.posted  # the answer went to the thread through the Bot Connector
    assert reply["text"] == r.json()["text"] and reply["replyToId"] == "f:1"
    refused = press(client, bf, {**message, "text": "kill helpdesk"})
    assert "Refused" in refused.json()["text"] and "admin" in refused.json()["text"]
    done = press(client, bf, {**message, "text": "kill helpdesk", "from": ADMIN})
    assert "Kill switch ON" in done.json()["text"]
    with transaction(open_store(settings.resolved_database_url())) as s:
        policy = s.exec(select(Policy)).one()
        assert policy.kill_switch is True and policy.updated_by == "Carol Admin (aad-0004)"


def test_the_bot_refuses_everything_without_an_app_id(tmp_path: Path, bf: BotFramework) -> None:
    settings = make_settings(tmp_path)
    approval_id = seed_paused_run(settings)
    with TestClient(create_app(settings)) as client:
        r = press(client, bf, activity(approval_id))
        assert r.status_code == 503 and "CLOSEDLOOP_TEAMS_APP_ID" in r.json()["value"]["message"]
    assert approval_status(settings, approval_id) == "pending"


def test_concurrent_presses_resume_the_loop_once(tmp_path: Path, bf: BotFramework) -> None:
    settings = make_settings(tmp_path, **bf.settings())
    approval_id = seed_paused_run(settings)
    stub = StubRunner(settings)
    resume = stub.resume

    def slow_resume(*args: Any, **kwargs: Any) -> dict[str, Any]:
        time.sleep(0.3)  # widen the window in which a second press could slip through
        return resume(*args, **kwargs)

    stub.resume = slow_resume  # type: ignore[method-assign]
    app = create_app(settings, runner_factory=lambda _s: stub)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    )
    bodies = [
        activity(approval_id, verb)
        for verb in ("approve", "reject", "approve", "reject", "approve")
    ]
    with serving(server) as base, httpx.Client(base_url=base, timeout=30) as client:
        results: list[httpx.Response] = []
        threads = [
            threading.Thread(target=lambda b=b: results.append(press(client, bf, b)))
            for b in bodies
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert [r.status_code for r in results] == [200] * 5
    assert len(stub.resumes) == 1
    final = approval_status(settings, approval_id)
    assert final in ("approved", "rejected")
    assert all(f"{final.capitalize()} by" in r.text for r in results)
    assert sum("already been decided" in r.text for r in results) == 4


def test_whole_loop_posted_to_teams_and_approved_there(
    tmp_path: Path, bf: BotFramework, validator
) -> None:
    bf.posted.clear()
    bf.updated.clear()
    with SandboxServer(seed=7) as sandbox:
        settings = make_settings(tmp_path, CLOSEDLOOP_SANDBOX_URL=sandbox.url, **bf.settings())
        server = build_server(settings, port=free_port(), log_level="warning")  # what `serve` runs
        with (
            serving(server) as base,
            httpx.Client(base_url=base, timeout=180, headers=auth("analyst")) as api,
        ):
            httpx.post(
                f"{sandbox.url}/clock/advance", json={"hours": 504}, timeout=180
            ).raise_for_status()
            r = api.post("/runs", json={"api_url": sandbox.url, "scope": "helpdesk"})
            assert r.status_code == 201, r.text
            run = r.json()
            assert run["status"] == "paused" and run["pending"]["kind"] == "approval", run
            approval_id = run["pending"]["approval_id"]
            assert httpx.get(f"{sandbox.url}/writes").json() == []

            # The new approval was posted to the configured conversation: shared view, approvers refresh.
            [posted] = bf.posted
            shared = posted["attachments"][0]["content"]
            assert_valid(validator, shared)
            assert shared["refresh"]["userIds"] == ["29:approver-ada"] and "actions" not in shared
            assert "Predicted effect" in texts(shared) and "Guardrails" in texts(shared)

            # An analyst's key cannot decide over REST; an unsigned Teams press is refused.
            assert (
                api.post(
                    f"/approvals/{approval_id}/decision", json={"decision": "approve"}
                ).status_code
                == 403
            )
            body = {**activity(approval_id, "approve", comment="go ahead"), "serviceUrl": bf.url}
            assert api.post("/api/messages", json=body).status_code == 401
            assert api.get(f"/approvals/{approval_id}").json()["status"] == "pending"

            r = press(api, bf, body)
            assert r.status_code == 200, r.text
            assert_valid(validator, r.json()["value"])
            approval = api.get(f"/approvals/{approval_id}").json()
            assert approval["status"] == "approved" and approval["channel"] == "teams"
            assert (
                approval["decided_by"] == "Ada Lovelace (aad-0001)"
                and approval["plan_status"] == "executed"
            )
            assert [u["activity_id"] for u in bf.updated] == ["activity-1"]

            replay = press(api, bf, body)
            assert replay.status_code == 200 and "already been decided" in replay.text
            writes = httpx.get(f"{sandbox.url}/writes").json()
            keys = [w["idempotency_key"] for w in writes]
            assert keys and len(keys) == len(set(keys)) and not any(w["replayed"] for w in writes)

            run = api.get(f"/runs/{run['run_id']}").json()
            assert run["pending"]["kind"] == "evidence" and run["audit_chain"]["execution_ids"]
            assert [e["status"] for e in api.get("/executions").json()] == ["succeeded"] * len(
                writes
            )

            httpx.post(
                f"{sandbox.url}/clock/advance", json={"hours": 336}, timeout=180
            ).raise_for_status()
            r = api.post(f"/runs/{run['run_id']}/evidence")
            assert r.status_code == 200, r.text
            final = r.json()
            # The Watchdog's verdict is its own business (tests/test_watchdog.py); here the run ends with one.
            assert final["pending"] is None and final["outcome"] in (
                "kept",
                "escalated",
                "rolled_back",
            )
            monitor = api.get("/monitor", params={"scope": "helpdesk"}).json()
            assert "cycle_time_hours" in {s["kpi"] for s in monitor["series"]}
            assert [m["kind"] for m in monitor["markers"]][-1] == "verdict"
            assert "write" in [m["kind"] for m in monitor["markers"]]
            metrics = api.get("/metrics").text
            assert 'closedloop_writes{status="succeeded"}' in metrics
