"""Small vendor-shaped loopback APIs for the connector profile tests.

One generic server: routes by method and path pattern, one auth check for
every non-public route, every request recorded. Each profile's test adds the
few handlers its API shape needs (event pages, a record read, the write).
Served on 127.0.0.1 only (``tests.test_connect_auth.serve``).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import Response

Reply = tuple[int, Any, dict[str, str]]


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[[Seen, re.Match[str]], Reply]
    public: bool


@dataclass
class LoopbackApi:
    """Canned routes behind one auth check; ``seen`` records every request."""

    authorized: Callable[[Seen], bool]
    routes: list[Route] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def on(self, method: str, pattern: str, public: bool = False) -> Callable[..., Any]:
        """Register a handler ``(seen, match) -> (status, json body or None, headers)``."""
        def register(handler: Callable[[Seen, re.Match[str]], Reply]) -> Any:
            self.routes.append(Route(method, re.compile(pattern), handler, public))
            return handler
        return register

    def writes(self) -> list[Seen]:
        """The requests that were not reads and succeeded."""
        return [s for s in self.seen if s.method not in ("GET", "HEAD") and s.status < 400]

    def app(self) -> FastAPI:
        """The FastAPI app serving the routes."""
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.api_route("/{rest:path}", methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
        async def dispatch(request: Request) -> Response:
            raw = await request.body()
            kind = request.headers.get("content-type", "")
            body: Any = None
            if raw and "json" in kind:
                body = json.loads(raw)
            elif raw:
                body = dict(parse_qsl(raw.decode()))
            seen = Seen(request.method, request.url.path, dict(request.query_params),
                        {k.lower(): v for k, v in request.headers.items()}, body)
            self.seen.append(seen)
            for route in self.routes:
                match = route.pattern.fullmatch(seen.path)
                if route.method == seen.method and match:
                    if not route.public and not self.authorized(seen):
                        seen.status = 401
                        return _reply(401, {"error": "unauthorized"}, {})
                    reply = route.handler(seen, match)
                    seen.status = reply[0]
                    return _reply(*reply)
            seen.status = 404
            return _reply(404, {"error": f"no route {seen.method} {seen.path}"}, {})

        return app


def _reply(status: int, body: Any, headers: dict[str, str]) -> Response:
    content = b"" if body is None else json.dumps(body).encode()
    return Response(content, status_code=status, headers=headers,
                    media_type="application/json" if body is not None else None)


def basic_check(user: str, password: str) -> Callable[[Seen], bool]:
    """Accepts exactly HTTP basic ``user``/``password``."""
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return lambda seen: seen.headers.get("authorization") == expected


@dataclass
class TokenIssuer:
    """An OAuth2 client-credentials token endpoint and the bearer check of its tokens."""

    client_id: str
    client_secret: str
    extra: dict[str, Any] = field(default_factory=dict)
    issued: set[str] = field(default_factory=set)

    def install(self, api: LoopbackApi, path: str) -> None:
        """Serve the token endpoint at ``path`` (client id and secret in the form body)."""
        @api.on("POST", re.escape(path), public=True)
        def token(seen: Seen, _: re.Match[str]) -> Reply:
            form = seen.body or {}
            if (form.get("grant_type"), form.get("client_id"), form.get("client_secret")) != (
                    "client_credentials", self.client_id, self.client_secret):
                return 400, {"error": "invalid_client"}, {}
            value = secrets.token_urlsafe(16)
            self.issued.add(value)
            return 200, {"access_token": value, "token_type": "Bearer", **self.extra}, {}

    def check(self, seen: Seen) -> bool:
        """Whether the request carries a token this issuer gave out."""
        header = seen.headers.get("authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.issued


def moment(text: str) -> datetime:
    """A vendor timestamp (ISO 8601, 'YYYY-MM-DD HH:MM:SS', OData /Date(ms)/) as UTC."""
    found = re.fullmatch(r"/Date\((\d+)(?:[+-]\d{4})?\)/", text)
    if found:
        return datetime.fromtimestamp(int(found.group(1)) / 1000, tz=UTC)
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def after(items: list[dict[str, Any]], key: str, since: str, inclusive: bool) -> list[Any]:
    """The items whose ``key`` timestamp is after (or at, if inclusive) ``since``."""
    start = moment(since)
    return [i for i in items if moment(i[key]) > start or (inclusive and moment(i[key]) == start)]
