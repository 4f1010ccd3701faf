"""The Teams outgoing webhook (HMAC-signed): text commands only, roles from the Teams lists, replays
outside the time window refused, card actions sent to the bot endpoint instead."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from closedloop.api.app import create_app
from closedloop.store.db import open_store, transaction
from closedloop.store.models import Policy
from tests.test_api import StubRunner, approval_status, make_settings, seed_paused_run

SECRET = base64.b64encode(b"closedloop-test-secret-32-bytes!").decode()
OTHER_SECRET = base64.b64encode(b"somebody-else-entirely-different").decode()
ADMIN = {"id": "29:carol", "name": "Carol Admin", "aadObjectId": "aad-admin"}
APPROVER = {"id": "29:ada", "name": "Ada Lovelace", "aadObjectId": "aad-0001"}
STRANGER = {"id": "29:eve", "name": "Eve", "aadObjectId": "aad-eve"}


def signature(body: bytes, secret: str = SECRET) -> str:
    """The outgoing-webhook scheme, computed here independently of closedloop.api.teams."""
    digest = hmac.new(base64.b64decode(secret), body, hashlib.sha256).digest()
    return "HMAC " + base64.b64encode(digest).decode()


def message(text: str, who: dict[str, str] | None = None, at: datetime | None = None) -> bytes:
    return json.dumps(
        {
            "type": "message",
            "text": f"<at>closedloop</at> {text}",
            "from": who or APPROVER,
            "timestamp": (at or datetime.now(UTC)).isoformat(),
            "conversation": {"id": "19:ops"},
        }
    ).encode()


def post(client: Any, body: bytes, secret: str | None = SECRET) -> Any:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["Authorization"] = signature(body, secret)
    return client.post("/teams/messages", content=body, headers=headers)


@pytest.fixture
def hook(tmp_path: Path) -> Any:
    settings = make_settings(
        tmp_path,
        CLOSEDLOOP_TEAMS_SECRET=SECRET,
        CLOSEDLOOP_TEAMS_ADMINS="aad-admin",
        CLOSEDLOOP_TEAMS_APPROVERS="29:ada",
    )
    approval_id = seed_paused_run(settings)
    stub = StubRunner(settings)
    with TestClient(create_app(settings, runner_factory=lambda _s: stub)) as client:
        yield client, stub, approval_id, settings


def policies(settings: Any) -> list[Policy]:
    with transaction(open_store(settings.resolved_database_url())) as s:
        return list(s.exec(select(Policy)).all())


def test_status_and_kill_by_an_admin(hook) -> None:
    client, stub, _, settings = hook
    r = post(client, message("status"))
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "message" and "1 approval(s) pending" in r.json()["text"]
    assert "one more agent on L1" in r.json()["text"]
    r = post(client, message("kill helpdesk", who=ADMIN))
    assert "Kill switch ON for scope helpdesk" in r.json()["text"]
    [policy] = policies(settings)
    assert policy.kill_switch is True and policy.updated_by == "Carol Admin (aad-admin)"
    assert "kill switch ON" in post(client, message("status")).json()["text"]
    assert stub.resumes == []


@pytest.mark.parametrize(
    ("who", "text", "answer"),
    [
        (APPROVER, "kill helpdesk", "needs the admin role"),
        (STRANGER, "kill helpdesk", "needs the admin role"),
        (STRANGER, "status", "holds no closedloop role"),
        (ADMIN, "kill ../etc", "Usage: kill SCOPE"),
        (ADMIN, "drop tables", "Unknown command"),
    ],
)
def test_commands_refused_or_explained_change_nothing(hook, who, text: str, answer: str) -> None:
    client, _, _, settings = hook
    r = post(client, message(text, who=who))
    assert r.status_code == 200 and answer in r.json()["text"], r.text
    assert policies(settings) == []


def test_unsigned_forged_or_replayed_requests_change_nothing(hook) -> None:
    client, _, _, settings = hook
    body = message("kill helpdesk", who=ADMIN)
    for headers in (
        {},
        {"Authorization": signature(body, OTHER_SECRET)},
        {"Authorization": signature(message("status", who=ADMIN))},
        {"Authorization": "HMAC not-base64!!"},
        {"Authorization": "Bearer x"},
    ):
        r = client.post(
            "/teams/messages", content=body, headers={"Content-Type": "application/json", **headers}
        )
        assert r.status_code == 401 and r.headers["www-authenticate"] == "HMAC"
    for at in (
        datetime.now(UTC) - timedelta(minutes=10),
        datetime(2001, 1, 1, tzinfo=UTC),
        datetime.now(UTC) + timedelta(minutes=10),
    ):
        r = post(client, message("kill helpdesk", who=ADMIN, at=at))
        assert r.status_code == 403 and r.json()["value"]["code"] == "Expired"
    assert policies(settings) == []


def test_card_actions_are_refused_here(hook) -> None:
    client, stub, approval_id, settings = hook
    invoke = json.dumps(
        {
            "type": "invoke",
            "name": "adaptiveCard/action",
            "from": APPROVER,
            "timestamp": datetime.now(UTC).isoformat(),
            "value": {
                "action": {
                    "type": "Action.Execute",
                    "verb": "approve",
                    "data": {"approval_id": approval_id},
                }
            },
        }
    ).encode()
    r = post(client, invoke)
    assert r.status_code == 400 and "/api/messages" in r.json()["value"]["message"]
    assert stub.resumes == [] and approval_status(settings, approval_id) == "pending"


def test_without_a_secret_everything_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        r = post(client, message("status"))
        assert r.status_code == 503 and "CLOSEDLOOP_TEAMS_SECRET" in r.json()["value"]["message"]
    bad = make_settings(tmp_path, CLOSEDLOOP_TEAMS_SECRET="not base64 at all!")
    with TestClient(create_app(bad)) as client:
        r = client.post("/teams/messages", content=b"{}", headers={"Authorization": "HMAC AAAA"})
        assert r.status_code == 503 and "base64" in r.json()["value"]["message"]


def test_oversized_bodies_are_413(hook) -> None:
    client, _, _, _ = hook
    assert post(client, message("x" * 300_000)).status_code == 413
