"""Authentication of connector calls as ``httpx.Auth`` objects.

Bearer token, HTTP basic, API key in a header, and OAuth 2.0 client
credentials (token fetched on first use, cached until shortly before it
expires, fetched again on expiry or when the API answers 401). A connector
may add a CSRF token on top of any of them (SAP Gateway style: a GET with
``X-CSRF-Token: Fetch`` before the first write, token and session cookies
sent with writes, fetched again once on a 403 ``Required``). Secrets are
held as pydantic ``SecretStr``, read from environment variables named in the
connector, and never appear in reprs, logs or error messages.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence

import httpx
from pydantic import SecretStr

from closedloop.tools.connect.annotations import (
    ApiKeyAuthConfig,
    AuthConfig,
    BasicAuthConfig,
    BearerAuthConfig,
    ConnectorAnnotation,
    NoAuth,
    OAuth2ClientCredentialsConfig,
)
from closedloop.tools.connect.errors import AuthError

_HIDDEN = "**********"


class BearerTokenAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` on every request."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the header and send."""
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return f"BearerTokenAuth(token={_HIDDEN})"


class BasicCredentialsAuth(httpx.Auth):
    """HTTP basic authentication."""

    def __init__(self, username: str, password: SecretStr) -> None:
        self._username = username
        self._password = password

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the header and send."""
        raw = f"{self._username}:{self._password.get_secret_value()}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        yield request

    def __repr__(self) -> str:
        return f"BasicCredentialsAuth(username={self._username!r}, password={_HIDDEN})"


class ApiKeyHeaderAuth(httpx.Auth):
    """An API key in a named header, optionally after a prefix such as ``ApiKey ``."""

    def __init__(self, header: str, key: SecretStr, prefix: str = "") -> None:
        self._header = header
        self._key = key
        self._prefix = prefix

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the header and send."""
        request.headers[self._header] = self._prefix + self._key.get_secret_value()
        yield request

    def __repr__(self) -> str:
        return f"ApiKeyHeaderAuth(header={self._header!r}, key={_HIDDEN})"


class OAuth2ClientCredentialsAuth(httpx.Auth):
    """OAuth 2.0 client credentials grant with a cached, self-refreshing access token."""

    requires_response_body = True

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        scopes: tuple[str, ...] | list[str] = (),
        client_auth: str = "basic",
        refresh_leeway_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._scopes = tuple(scopes)
        self._client_auth = client_auth
        self._leeway = refresh_leeway_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token: SecretStr | None = None
        self._expires_at: float | None = None
        self.fetches = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send with a valid token; on 401 fetch a fresh token once and send again."""
        token = self._valid_token()
        if token is None:
            token = self._store((yield self._token_request(request)))
        request.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        response = yield request
        if response.status_code == 401:
            self._forget(token)
            token = self._store((yield self._token_request(request)))
            request.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
            yield request

    def _valid_token(self) -> SecretStr | None:
        with self._lock:
            if self._token is None:
                return None
            if self._expires_at is not None and self._clock() >= self._expires_at - self._leeway:
                return None
            return self._token

    def _forget(self, token: SecretStr) -> None:
        with self._lock:
            if self._token is token:
                self._token, self._expires_at = None, None

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        url = request.url.join(self._token_url)
        form = {"grant_type": "client_credentials"}
        if self._scopes:
            form["scope"] = " ".join(self._scopes)
        headers = {"Accept": "application/json"}
        if self._client_auth == "post":
            form.update(
                client_id=self._client_id, client_secret=self._client_secret.get_secret_value()
            )
        else:
            raw = f"{self._client_id}:{self._client_secret.get_secret_value()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        return httpx.Request("POST", url, data=form, headers=headers)

    def _store(self, response: httpx.Response) -> SecretStr:
        where = f"token endpoint {self._token_url}"
        if response.status_code >= 400:
            reason = ""
            try:
                reason = str(response.json().get("error", ""))[:100]
            except ValueError:
                pass
            raise AuthError(
                f"{where} refused the client credentials: HTTP "
                f"{response.status_code} {reason}".rstrip()
            )
        try:
            payload = response.json()
            token = payload["access_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthError(f"{where} answered without an access_token") from exc
        if not isinstance(token, str) or not token:
            raise AuthError(f"{where} answered with an empty access_token")
        if str(payload.get("token_type", "bearer")).lower() != "bearer":
            raise AuthError(f"{where} issued a {payload.get('token_type')!r} token, not bearer")
        expires_in = payload.get("expires_in")
        with self._lock:
            self.fetches += 1
            self._token = SecretStr(token)
            self._expires_at = (
                self._clock() + float(expires_in) if isinstance(expires_in, int | float) else None
            )
            return self._token

    def __repr__(self) -> str:
        return (
            f"OAuth2ClientCredentialsAuth(token_url={self._token_url!r}, "
            f"client_id={self._client_id!r}, client_secret={_HIDDEN})"
        )


def _through(
    inner: httpx.Auth | None, request: httpx.Request
) -> Generator[httpx.Request, httpx.Response, httpx.Response]:
    """Send ``request`` through ``inner``'s auth flow; the final response."""
    if inner is None:
        return (yield request)
    flow = inner.auth_flow(request)
    outgoing = next(flow)
    while True:
        response = yield outgoing
        try:
            outgoing = flow.send(response)
        except StopIteration:
            return response


class CsrfTokenAuth(httpx.Auth):
    """A CSRF token (with its session cookies) on writes, on top of another scheme."""

    requires_response_body = True
    _READS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(
        self,
        inner: httpx.Auth | None,
        fetch_url: str,
        header: str = "X-CSRF-Token",
        fetch_value: str = "Fetch",
        required_value: str = "Required",
    ) -> None:
        self._inner = inner
        self._fetch_url = fetch_url
        self._header = header
        self._fetch_value = fetch_value
        self._required = required_value.lower()
        self._lock = threading.Lock()
        self._token: tuple[SecretStr, httpx.Cookies] | None = None
        self.fetches = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Reads pass through; writes carry the token, fetched first and again on 403."""
        if request.method in self._READS:
            yield from _through(self._inner, request)
            return
        with self._lock:
            cached = self._token
        for attempt in range(2):
            if cached is None:
                cached = yield from self._fetch()
            token, cookies = cached
            request.headers[self._header] = token.get_secret_value()
            cookies.set_cookie_header(request)
            response = yield from _through(self._inner, request)
            refused = (
                response.status_code == 403
                and response.headers.get(self._header, "").lower() == self._required
            )
            if not refused or attempt:
                return
            with self._lock:
                self._token = None
            cached = None
            request.headers.pop("Cookie", None)

    def _fetch(self) -> Generator[httpx.Request, httpx.Response, tuple[SecretStr, httpx.Cookies]]:
        fetch = httpx.Request("GET", self._fetch_url, headers={self._header: self._fetch_value})
        response = yield from _through(self._inner, fetch)
        token = response.headers.get(self._header, "")
        if response.status_code >= 400 or not token or token.lower() == self._required:
            raise AuthError(
                f"CSRF token fetch from {self._fetch_url} failed: HTTP "
                f"{response.status_code}, no {self._header} header"
            )
        cookies = httpx.Cookies()
        cookies.extract_cookies(response)
        with self._lock:
            self.fetches += 1
            self._token = (SecretStr(token), cookies)
            return self._token

    def __repr__(self) -> str:
        return f"CsrfTokenAuth(fetch_url={self._fetch_url!r}, inner={self._inner!r})"


TRUSTED_URLS_ENV = "CLOSEDLOOP_TRUSTED_API_URLS"


def _root(url: str) -> httpx.URL:
    return httpx.URL(url.rstrip("/") + "/")


def url_under(url: str | httpx.URL, roots: Sequence[str]) -> bool:
    """True when ``url`` is on the same scheme, host and port as one of ``roots`` and under its path."""
    target = httpx.URL(str(url))
    for root in roots:
        base = _root(root)
        if (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port) and (
            target.path + "/"
        ).startswith(base.path):
            return True
    return False


def trusted_roots(base_url: str, env: Mapping[str, str] | None = None) -> list[str]:
    """Where a connector's credentials may go: the URLs in ``CLOSEDLOOP_TRUSTED_API_URLS``
    (comma-separated) when it is set, else only the base URL the system is bound to."""
    env = os.environ if env is None else env
    listed = [u.strip() for u in env.get(TRUSTED_URLS_ENV, "").split(",") if u.strip()]
    return listed or [base_url]


class ScopedAuth(httpx.Auth):
    """Credentials only for requests under the trusted roots; anything else is sent bare."""

    def __init__(self, inner: httpx.Auth, roots: Sequence[str]) -> None:
        self._inner = inner
        self._roots = list(roots)
        self.requires_response_body = getattr(inner, "requires_response_body", False)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Delegate to the connector's auth for trusted URLs only."""
        if not url_under(request.url, self._roots):
            yield request
            return
        yield from _through(self._inner, request)

    def __repr__(self) -> str:
        return f"ScopedAuth(roots={self._roots!r}, inner={self._inner!r})"


def make_connector_auth(
    connector: ConnectorAnnotation, base_url: str, env: Mapping[str, str] | None = None
) -> httpx.Auth | None:
    """The auth of a connector: its scheme, with a CSRF token on writes if it declares one.

    Credentials go only to trusted URLs (:func:`trusted_roots`): when ``base_url`` is not among
    them (a caller-supplied URL, say) the connector sends no credentials at all.
    """
    roots = trusted_roots(base_url, env)
    if not url_under(base_url, roots):
        return None
    inner = make_auth(connector.auth, env)
    if inner is None and connector.csrf is None:
        return None
    if connector.csrf is not None:
        root = _root(base_url)
        fetch_url = (
            str(root.join(connector.csrf.fetch_path)) if connector.csrf.fetch_path else str(root)
        )
        inner = CsrfTokenAuth(
            inner,
            fetch_url,
            connector.csrf.header,
            connector.csrf.fetch_value,
            connector.csrf.required_value,
        )
    return ScopedAuth(inner, roots)


def _secret(env: Mapping[str, str], name: str, scheme: str) -> SecretStr:
    value = env.get(name)
    if not value:
        raise AuthError(f"auth {scheme!r}: environment variable {name} is not set")
    return SecretStr(value)


def make_auth(config: AuthConfig, env: Mapping[str, str] | None = None) -> httpx.Auth | None:
    """The ``httpx.Auth`` for a connector's auth annotation, secrets read from ``env``."""
    env = os.environ if env is None else env
    if isinstance(config, NoAuth):
        return None
    if isinstance(config, BearerAuthConfig):
        if config.optional and not env.get(config.token_env):
            return None
        return BearerTokenAuth(_secret(env, config.token_env, config.type))
    if isinstance(config, BasicAuthConfig):
        username = _secret(env, config.username_env, config.type).get_secret_value()
        return BasicCredentialsAuth(username, _secret(env, config.password_env, config.type))
    if isinstance(config, ApiKeyAuthConfig):
        return ApiKeyHeaderAuth(
            config.header, _secret(env, config.key_env, config.type), config.prefix
        )
    if isinstance(config, OAuth2ClientCredentialsConfig):
        return OAuth2ClientCredentialsAuth(
            config.token_url,
            _secret(env, config.client_id_env, config.type).get_secret_value(),
            _secret(env, config.client_secret_env, config.type),
            scopes=config.scopes,
            client_auth=config.client_auth,
            refresh_leeway_s=config.refresh_leeway_s,
        )
    raise AuthError(f"unknown auth scheme {config!r}")


__all__ = [
    "ApiKeyHeaderAuth",
    "BasicCredentialsAuth",
    "BearerTokenAuth",
    "CsrfTokenAuth",
    "OAuth2ClientCredentialsAuth",
    "ScopedAuth",
    "make_auth",
    "make_connector_auth",
]
