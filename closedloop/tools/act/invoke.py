"""The one WRITE tool: call an enterprise REST API with an idempotency key.

Retries are safe because every write carries an ``Idempotency-Key`` the server
uses to replay its first answer instead of acting twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from closedloop.tools.base import write_tool
from closedloop.tools.errors import ApiCallError

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


class ApiRequest(BaseModel):
    """One HTTP call to make against the enterprise API."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str = Field(pattern=r"^/[A-Za-z0-9_\-/.{}]*$", description="path below the API base URL")
    body: dict[str, Any] | None = None
    idempotency_key: str = Field(min_length=8, max_length=200)


class ApiResult(BaseModel):
    """What the API answered, with how many attempts it took."""

    status_code: int
    body: Any
    attempts: int
    idempotency_key: str


@write_tool
def invoke_api(
    client: httpx.Client,
    request: ApiRequest,
    retries: int = 3,
    backoff_s: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
) -> ApiResult:
    """Call the enterprise API once, retrying transient failures with the same idempotency key.

    Returns the status code and JSON body. Raises ApiCallError when the call
    is rejected (4xx) or still fails after ``retries`` retries.
    """
    headers = {"Idempotency-Key": request.idempotency_key}
    last_problem = "no attempt made"
    for attempt in range(1, retries + 2):
        try:
            response = client.request(request.method, request.path, json=request.body, headers=headers)
        except httpx.TransportError as exc:
            last_problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 400:
                return ApiResult(
                    status_code=response.status_code,
                    body=_json_or_text(response),
                    attempts=attempt,
                    idempotency_key=request.idempotency_key,
                )
            last_problem = f"HTTP {response.status_code}: {_json_or_text(response)}"
            if response.status_code not in RETRYABLE_STATUS:
                raise ApiCallError(f"{request.method} {request.path} rejected: {last_problem}")
        if attempt <= retries:
            sleep(backoff_s * 2 ** (attempt - 1))
    raise ApiCallError(f"{request.method} {request.path} failed after {retries + 1} attempts: {last_problem}")


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:2000]
