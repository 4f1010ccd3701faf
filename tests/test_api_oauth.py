"""OAuth2 bearer JWTs on the REST API: signature against the issuer's JWKS (keys made here, served on
loopback), issuer, audience and expiry checked; roles from the token's roles claim."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from closedloop.api.app import create_app
from tests.teams_fakes import BotFramework
from tests.test_api import StubRunner, approval_status, make_settings, seed_paused_run

ISSUER = "https://login.example.test/tenant/v2.0"
AUDIENCE = "api://closedloop"


@pytest.fixture(scope="module")
def idp() -> Iterator[BotFramework]:
    with BotFramework().running() as issuer:  # its /keys is a plain JWKS endpoint
        yield issuer


@pytest.fixture
def client(tmp_path: Path, idp: BotFramework) -> Iterator[tuple[TestClient, StubRunner, int, Any]]:
    settings = make_settings(
        tmp_path,
        CLOSEDLOOP_OAUTH_ISSUER=ISSUER,
        CLOSEDLOOP_OAUTH_AUDIENCE=AUDIENCE,
        CLOSEDLOOP_OAUTH_JWKS_URL=f"{idp.url}/keys",
    )
    approval_id = seed_paused_run(settings)
    stub = StubRunner(settings)
    with TestClient(create_app(settings, runner_factory=lambda _s: stub)) as c:
        yield c, stub, approval_id, settings


def token(idp: BotFramework, roles: list[str], **claims: Any) -> dict[str, str]:
    jwt_ = idp.token(
        iss=claims.pop("iss", ISSUER),
        aud=claims.pop("aud", AUDIENCE),
        roles=roles,
        preferred_username="grace@example.test",
        serviceurl=None,
        **claims,
    )
    return {"Authorization": f"Bearer {jwt_}"}


def test_an_approver_token_decides_and_is_recorded_by_name(client, idp) -> None:
    c, stub, approval_id, settings = client
    r = c.post(
        f"/approvals/{approval_id}/decision",
        json={"decision": "approve"},
        headers=token(idp, ["closedloop.approver"]),
    )
    assert r.status_code == 200, r.text
    assert r.json()["approval"]["decided_by"] == "grace@example.test"
    assert approval_status(settings, approval_id) == "approved" and len(stub.resumes) == 1


def test_tokens_without_the_role_or_not_from_the_issuer_change_nothing(client, idp) -> None:
    c, stub, approval_id, settings = client
    now = int(time.time())
    url = f"/approvals/{approval_id}/decision"
    body = {"decision": "approve"}
    assert c.post(url, json=body, headers=token(idp, ["closedloop.analyst"])).status_code == 403
    assert c.post(url, json=body, headers=token(idp, [])).status_code == 403
    assert c.get("/approvals", headers=token(idp, ["analyst"])).status_code == 200
    for headers in (
        token(idp, ["approver"], aud="api://other"),
        token(idp, ["approver"], iss="https://evil.test"),
        token(idp, ["approver"], exp=now - 3600, iat=now - 7200, nbf=now - 7200),
        token(idp, ["approver"], key=idp.other_key),
    ):
        r = c.post(url, json=body, headers=headers)
        assert r.status_code == 401, r.text
    assert stub.resumes == [] and approval_status(settings, approval_id) == "pending"
