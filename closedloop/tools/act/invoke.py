"""The one WRITE tool: send a connector-built request with an idempotency key, retrying safely.

Retries are safe because every write carries the connector's idempotency
header, which the system uses to replay its first answer instead of acting
twice. Requests are built by the connector (``closedloop.tools.connect``); this
module only sends them and keeps a serialisable copy for the store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from closedloop.tools.base import write_tool
from closedloop.tools.errors import ApiCallError

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


class ApiRequest(BaseModel):
    """One HTTP call as the connector built it (no credentials: auth is added when sent)."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    url: str = Field(min_length=1, max_length=4000)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    idempotency_key: str | None = Field(default=None, min_length=8, max_length=200)

    @classmethod
    def of(cls, request: httpx.Request, idempotency_key: str | None = None) -> ApiRequest:
        """The stored form of a built request (its JSON body decoded)."""
        content = request.content
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("content-length", "content-type", "host")}
        return cls(method=request.method, url=str(request.url), headers=headers,
                   body=json.loads(content) if content else None,
                   idempotency_key=idempotency_key)

    @property
    def path(self) -> str:
        """The URL's path (for messages)."""
        return httpx.URL(self.url).path

    def to_httpx(self) -> httpx.Request:
        """A fresh ``httpx.Request`` to send."""
        return httpx.Request(self.method, self.url, headers=self.headers,
                             json=self.body if self.body is not None else None)


class ApiResult(BaseModel):
    """What the API answered, with how many attempts it took."""

    status_code: int
    body: Any
    attempts: int
    idempotency_key: str | None = None


def send(client: httpx.Client, request: ApiRequest, retries: int = 3, backoff_s: float = 0.2,
         sleep: Callable[[float], None] = time.sleep) -> ApiResult:
    """Send ``request`` once, retrying transient failures (same request, same key).

    Raises ApiCallError when it is rejected (4xx) or still fails after ``retries`` retries.
    """
    last_problem = "no attempt made"
    for attempt in range(1, retries + 2):
        try:
            response = client.send(request.to_httpx())
        except httpx.TransportError as exc:
            last_problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 400:
                return ApiResult(status_code=response.status_code, body=_json_or_text(response),
                                 attempts=attempt, idempotency_key=request.idempotency_key)
            last_problem = f"HTTP {response.status_code}: {_json_or_text(response)}"
            if response.status_code not in RETRYABLE_STATUS:
                raise ApiCallError(f"{request.method} {request.path} rejected: {last_problem}")
        if attempt <= retries:
            sleep(backoff_s * 2 ** (attempt - 1))
    raise ApiCallError(
        f"{request.method} {request.path} failed after {retries + 1} attempts: {last_problem}")


@write_tool
def invoke_api(
    client: httpx.Client,
    request: ApiRequest,
    retries: int = 3,
    backoff_s: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
) -> ApiResult:
    """Perform a write the connector built, retrying transient failures with the same key.

    Returns the status code and JSON body. Raises ApiCallError when the call
    is rejected (4xx) or still fails after ``retries`` retries.
    """
    return send(client, request, retries, backoff_s, sleep)


def _json_or_text(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text[:2000]
