"""Each auth scheme of connectors against a real loopback server (no mocks)."""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, Form, Header, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from closedloop.sandbox.server import SandboxServer
from closedloop.tools.connect import (
    ApiKeyHeaderAuth,
    AuthError,
    BasicCredentialsAuth,
    BearerTokenAuth,
    OAuth2ClientCredentialsAuth,
    make_auth,
)
from closedloop.tools.connect.annotations import (
    ApiKeyAuthConfig,
    BasicAuthConfig,
    BearerAuthConfig,
    OAuth2ClientCredentialsConfig,
)


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yields the base URL."""
    with SandboxServer(app=app) as server:
        yield server.url


def _denied() -> JSONResponse:
    return JSONResponse({"error": "unauthorized"}, status_code=401)


class Issuer:
    """State of the test's OAuth2 server: issued tokens, revocations, fetch count."""

    def __init__(self) -> None:
        self.valid: set[str] = set()
        self.fetches = 0
        self.bodies: list[str] = []


def auth_app(issuer: Issuer) -> FastAPI:
    app = FastAPI()

    @app.get("/bearer")
    def bearer(authorization: str = Header("")) -> JSONResponse:
        return JSONResponse({"ok": True}) if authorization == "Bearer tok-123" else _denied()

    @app.get("/basic")
    def basic(authorization: str = Header("")) -> JSONResponse:
        expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
        return JSONResponse({"ok": True}) if authorization == expected else _denied()

    @app.get("/apikey")
    def apikey(x_api_key: str = Header("")) -> JSONResponse:
        return JSONResponse({"ok": True}) if x_api_key == "ApiKey k-9" else _denied()

    @app.post("/oauth/token")
    async def token(request: Request, grant_type: str = Form(...),
                    scope: str = Form("")) -> JSONResponse:
        issuer.bodies.append(scope)
        expected = "Basic " + base64.b64encode(b"client-1:cs-xyz").decode()
        if request.headers.get("authorization") != expected or grant_type != "client_credentials":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        issuer.fetches += 1
        value = secrets.token_hex(8)
        issuer.valid.add(value)
        return JSONResponse({"access_token": value, "token_type": "Bearer", "expires_in": 60,
                             "scope": scope})

    @app.post("/oauth/revoke-all")
    def revoke() -> dict[str, bool]:
        issuer.valid.clear()
        return {"ok": True}

    @app.get("/data")
    def data(authorization: str = Header("")) -> JSONResponse:
        token = authorization.removeprefix("Bearer ")
        return JSONResponse({"ok": True}) if token in issuer.valid else _denied()

    return app


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture(scope="module")
def url(issuer: Issuer) -> Iterator[str]:
    with serve(auth_app(issuer)) as base:
        yield base


def test_static_schemes_pass_and_wrong_secrets_fail(url: str) -> None:
    cases = [
        ("/bearer", BearerTokenAuth(SecretStr("tok-123")), BearerTokenAuth(SecretStr("nope"))),
        ("/basic", BasicCredentialsAuth("alice", SecretStr("s3cret")),
         BasicCredentialsAuth("alice", SecretStr("wrong"))),
        ("/apikey", ApiKeyHeaderAuth("X-Api-Key", SecretStr("k-9"), "ApiKey "),
         ApiKeyHeaderAuth("X-Api-Key", SecretStr("k-0"), "ApiKey ")),
    ]
    with httpx.Client(base_url=url) as client:
        for path, good, bad in cases:
            assert client.get(path, auth=good).status_code == 200, path
            assert client.get(path, auth=bad).status_code == 401, path
            assert client.get(path).status_code == 401, path


def test_make_auth_reads_secrets_from_env_and_names_missing_ones(url: str) -> None:
    env = {"TOK": "tok-123", "USER": "alice", "PASS": "s3cret", "KEY": "k-9"}
    configs = {
        "/bearer": BearerAuthConfig(type="bearer", token_env="TOK"),
        "/basic": BasicAuthConfig(type="basic", username_env="USER", password_env="PASS"),
        "/apikey": ApiKeyAuthConfig(type="api_key", header="X-Api-Key", key_env="KEY",
                                    prefix="ApiKey "),
    }
    with httpx.Client(base_url=url) as client:
        for path, config in configs.items():
            auth = make_auth(config, env)
            assert client.get(path, auth=auth).status_code == 200
            assert "s3cret" not in repr(auth) and "tok-123" not in repr(auth)
    with pytest.raises(AuthError, match="environment variable PASS is not set"):
        make_auth(configs["/basic"], {"USER": "alice"})
    assert make_auth(BearerAuthConfig(type="bearer", token_env="T", optional=True), {}) is None


def test_oauth2_client_credentials_fetches_caches_and_refreshes(url: str, issuer: Issuer) -> None:
    now = [1000.0]
    auth = make_auth(
        OAuth2ClientCredentialsConfig(
            type="oauth2_client_credentials", token_url="/oauth/token",
            client_id_env="CID", client_secret_env="CSEC", scopes=["read", "write"],
            refresh_leeway_s=10),
        {"CID": "client-1", "CSEC": "cs-xyz"},
    )
    assert isinstance(auth, OAuth2ClientCredentialsAuth)
    auth._clock = lambda: now[0]  # a controllable clock for the expiry check
    before = issuer.fetches
    with httpx.Client(base_url=url, auth=auth) as client:
        assert client.get("/data").status_code == 200
        assert client.get("/data").status_code == 200
        assert issuer.fetches == before + 1, "the token is cached between calls"
        assert issuer.bodies[-1] == "read write"
        now[0] += 55  # within the 10 s leeway of the 60 s lifetime
        assert client.get("/data").status_code == 200
        assert issuer.fetches == before + 2, "a token about to expire is fetched again"
        client.post("/oauth/revoke-all")
        assert client.get("/data").status_code == 200, "a 401 triggers one refresh and retry"
        assert issuer.fetches == before + 3
    assert "cs-xyz" not in repr(auth)


def test_oauth2_refused_credentials_are_a_clear_error_without_the_secret(url: str) -> None:
    auth = OAuth2ClientCredentialsAuth("/oauth/token", "client-1", SecretStr("bad-secret"))
    with httpx.Client(base_url=url, auth=auth) as client, pytest.raises(AuthError) as info:
        client.get("/data")
    assert "HTTP 401 invalid_client" in str(info.value)
    assert "bad-secret" not in str(info.value)
