"""Loopback stand-ins for the Bot Framework in tests: an OpenID/JWKS issuer with RSA keys made in
the test, a token endpoint and a Bot Connector that records what the bot posts."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request

APP_ID = "00000000-app-id-closedloop"
ISSUER = "https://api.botframework.com"
APPROVER = {"id": "29:approver-ada", "name": "Ada Lovelace", "aadObjectId": "aad-0001"}
ANALYST = {"id": "29:analyst-bob", "name": "Bob Analyst", "aadObjectId": "aad-0002"}
STRANGER = {"id": "29:stranger-eve", "name": "Eve", "aadObjectId": "aad-0003"}
ADMIN = {"id": "29:admin-carol", "name": "Carol Admin", "aadObjectId": "aad-0004"}


def free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@contextmanager
def serving(server: uvicorn.Server) -> Iterator[str]:
    """Run a uvicorn server in a thread on loopback; yields its base URL."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://{server.config.host}:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(15)


class BotFramework:
    """Keys, a JWKS/OpenID issuer and a Bot Connector on one loopback server."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )  # never published
        self.kid = "test-kid-1"
        self.posted: list[dict[str, Any]] = []
        self.updated: list[dict[str, Any]] = []
        self.token_requests: list[dict[str, str]] = []
        self.connector_auth: list[str | None] = []
        self.url = ""
        self.app = self._app()

    async def _received(self, request: Request) -> dict[str, Any]:
        """The body of a call to the Bot Connector; its Authorization header is recorded."""
        self.connector_auth.append(request.headers.get("authorization"))
        return await request.json()

    def _app(self) -> FastAPI:
        app = FastAPI()
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))

        @app.get("/openid")
        def openid() -> dict[str, Any]:
            return {"issuer": ISSUER, "jwks_uri": f"{self.url}/keys"}

        @app.get("/keys")
        def keys() -> dict[str, Any]:
            return {
                "keys": [{**public, "kid": self.kid, "use": "sig", "endorsements": ["msteams"]}]
            }

        @app.post("/token")
        async def token(request: Request) -> dict[str, Any]:
            form = await request.form()
            self.token_requests.append({k: str(v) for k, v in form.items()})
            return {
                "access_token": "connector-access-token",
                "expires_in": 3600,
                "token_type": "Bearer",
            }

        @app.post("/v3/conversations/{conversation}/activities")
        async def post(conversation: str, request: Request) -> dict[str, Any]:
            self.posted.append({"conversation": conversation, **await self._received(request)})
            return {"id": f"activity-{len(self.posted)}"}

        @app.post("/v3/conversations/{conversation}/activities/{activity_id}")
        async def reply(conversation: str, activity_id: str, request: Request) -> dict[str, Any]:
            body = await self._received(request)
            self.posted.append({"conversation": conversation, "in_reply_to": activity_id, **body})
            return {"id": f"activity-{len(self.posted)}"}

        @app.put("/v3/conversations/{conversation}/activities/{activity_id}")
        async def put(conversation: str, activity_id: str, request: Request) -> dict[str, Any]:
            body = await self._received(request)
            self.updated.append({"conversation": conversation, "activity_id": activity_id, **body})
            return {"id": activity_id}

        return app

    @contextmanager
    def running(self) -> Iterator[BotFramework]:
        server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=free_port(), log_level="warning")
        )
        with serving(server) as url:
            self.url = url
            yield self

    def settings(
        self,
        approvers: str = "29:approver-ada",
        admins: str = "aad-0004",
        analysts: str = "29:analyst-bob",
    ) -> dict[str, Any]:
        """The Settings keywords that point the bot at this stand-in."""
        return {
            "CLOSEDLOOP_TEAMS_APP_ID": APP_ID,
            "CLOSEDLOOP_TEAMS_APP_PASSWORD": "app-password",
            "CLOSEDLOOP_TEAMS_OPENID_URL": f"{self.url}/openid",
            "CLOSEDLOOP_TEAMS_ISSUER": ISSUER,
            "CLOSEDLOOP_TEAMS_TOKEN_URL": f"{self.url}/token",
            "CLOSEDLOOP_TEAMS_SERVICE_URL": self.url,
            "CLOSEDLOOP_TEAMS_CONVERSATION": "19:approvals@thread.tacv2",
            "CLOSEDLOOP_TEAMS_APPROVERS": approvers,
            "CLOSEDLOOP_TEAMS_ADMINS": admins,
            "CLOSEDLOOP_TEAMS_ANALYSTS": analysts,
        }

    def token(self, *, key: Any = None, kid: str | None = None, **claims: Any) -> str:
        """A Bot Framework-style JWT; keyword claims override (None removes one)."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": ISSUER,
            "aud": APP_ID,
            "exp": now + 600,
            "nbf": now - 10,
            "iat": now - 10,
            "serviceurl": self.url,
        }
        for name, value in claims.items():
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
        return jwt.encode(
            body, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid}
        )


def activity(
    approval_id: Any,
    verb: str = "approve",
    comment: Any = "looks right",
    who: dict[str, str] | None = None,
    service_url: str = "",
    at: datetime | None = None,
    reply_to: str | None = "activity-1",
) -> dict[str, Any]:
    """An ``adaptiveCard/action`` invoke as Teams sends it."""
    body = {
        "type": "invoke",
        "name": "adaptiveCard/action",
        "id": "f:1",
        "channelId": "msteams",
        "timestamp": (at or datetime.now(UTC)).isoformat(),
        "serviceUrl": service_url,
        "from": who or APPROVER,
        "conversation": {"id": "19:approvals@thread.tacv2"},
        "recipient": {"id": "28:bot"},
        "value": {
            "action": {
                "type": "Action.Execute",
                "verb": verb,
                "data": {"approval_id": approval_id, "comment": comment},
            }
        },
    }
    if reply_to:
        body["replyToId"] = reply_to
    return body


def stale(minutes: float) -> datetime:
    """A moment ``minutes`` ago."""
    return datetime.now(UTC) - timedelta(minutes=minutes)
