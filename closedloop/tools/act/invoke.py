"""The one WRITE tool: send a connector-built request with an idempotency key, retrying safely.

Retries are safe because every write carries the connector's idempotency
header, which the system uses to replay its first answer instead of acting
twice. Only transient failures are retried (5xx, 408/425/429, timeouts and
dropped connections), with exponential backoff and jitter, and never sooner
than a ``Retry-After`` asks. A write whose answer was lost (the request may
have arrived) ends as :class:`OutcomeUnknown`, never as a plain failure: the
caller resolves it by read-back. A :class:`CircuitBreaker` per connector stops
calling a system that keeps failing. Requests are built by the connector
(``closedloop.tools.connect``); this module only sends them.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from closedloop.tools.base import write_tool
from closedloop.tools.errors import ApiCallError

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
# Transport errors raised before the request could have reached the system.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
MAX_DELAY_S = 30.0
MAX_RETRY_AFTER_S = 60.0


class OutcomeUnknown(ApiCallError):
    """A write may or may not have been applied (its answer was lost): resolve it by read-back."""


class CircuitOpen(ApiCallError):
    """The connector's circuit breaker is open: the system failed too often, nothing was sent."""


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
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("content-length", "content-type", "host")
        }
        return cls(
            method=request.method,
            url=str(request.url),
            headers=headers,
            body=json.loads(content) if content else None,
            idempotency_key=idempotency_key,
        )

    @property
    def path(self) -> str:
        """The URL's path (for messages)."""
        return httpx.URL(self.url).path

    @property
    def replay_safe(self) -> bool:
        """True when sending it again cannot act twice: a read, or a write whose idempotency key
        travels in a header (the system replays its first answer)."""
        return self.method == "GET" or (
            self.idempotency_key is not None and self.idempotency_key in self.headers.values()
        )

    def to_httpx(self) -> httpx.Request:
        """A fresh ``httpx.Request`` to send."""
        return httpx.Request(
            self.method,
            self.url,
            headers=self.headers,
            json=self.body if self.body is not None else None,
        )


class ApiResult(BaseModel):
    """What the API answered, with how many attempts it took."""

    status_code: int
    body: Any
    attempts: int
    idempotency_key: str | None = None


class CircuitBreaker:
    """Opens after ``threshold`` failures in a row; after ``cooldown_s`` one trial call may pass
    (half-open): a success closes it, a failure opens it again. Thread-safe."""

    def __init__(
        self,
        threshold: int = 10,
        cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        """closed, open or half_open."""
        with self._lock:
            if self.opened_at is None:
                return "closed"
            return "half_open" if self._clock() - self.opened_at >= self.cooldown_s else "open"

    def before(self, what: str) -> None:
        """Raise CircuitOpen unless a call may go out now."""
        if self.state == "open":
            raise CircuitOpen(
                f"{what}: circuit open after {self.failures} failures in a row; "
                f"retry after {self.cooldown_s:g} s"
            )

    def success(self) -> None:
        """The system answered: close the circuit."""
        with self._lock:
            self.failures, self.opened_at = 0, None

    def failure(self) -> None:
        """One more failure in a row; open (again) at the threshold."""
        with self._lock:
            self.failures += 1
            if self.failures >= self.threshold:
                self.opened_at = self._clock()


def retry_after_s(response: httpx.Response) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(
    attempt: int, base_s: float, rng: random.Random | None = None, max_s: float = MAX_DELAY_S
) -> float:
    """Exponential backoff with equal jitter: half of ``base * 2**(attempt-1)`` plus a random half."""
    ceiling = min(max_s, base_s * 2 ** (attempt - 1))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def send_http(
    client: httpx.Client,
    build: Callable[[], httpx.Request],
    *,
    method: str,
    path: str,
    replay_safe: bool,
    retries: int = 3,
    backoff_s: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
    breaker: CircuitBreaker | None = None,
    rng: random.Random | None = None,
) -> tuple[httpx.Response, int]:
    """Send a request (``build`` makes a fresh one per attempt), retrying transient failures.

    Returns the first answer below 400 and the number of attempts. Raises ApiCallError for a
    rejection (4xx) or when retries run out, OutcomeUnknown when a write may have arrived
    but its answer never came back, CircuitOpen when the breaker stops the call.
    """
    what = f"{method} {path}"
    last_problem, maybe_applied = "no attempt made", False
    for attempt in range(1, retries + 2):
        if breaker is not None:
            try:
                breaker.before(what)
            except CircuitOpen as exc:
                if maybe_applied:  # an earlier attempt may have landed: not a plain failure
                    raise OutcomeUnknown(
                        f"{what}: outcome unknown ({last_problem}); {exc}"
                    ) from exc
                raise
        wait: float | None = None
        try:
            response = client.send(build())
        except httpx.TransportError as exc:
            last_problem = f"{type(exc).__name__}: {exc}"
            if breaker is not None:
                breaker.failure()
            if not isinstance(exc, NOT_SENT) and method != "GET":
                maybe_applied = True
                if not replay_safe:  # sending again could act twice
                    raise OutcomeUnknown(
                        f"{what}: no answer ({last_problem}); it may have been "
                        "applied and cannot be resent safely"
                    ) from exc
        else:
            if response.status_code < 400:
                if breaker is not None:
                    breaker.success()
                return response, attempt
            last_problem = f"HTTP {response.status_code}: {_json_or_text(response)}"
            if response.status_code not in RETRYABLE_STATUS:
                if breaker is not None:
                    breaker.success()  # the system is up; it refused this request
                raise ApiCallError(f"{what} rejected: {last_problem}")
            if response.status_code >= 500:
                if breaker is not None:
                    breaker.failure()
                # A write answered 5xx (other than 503 "not handled") may have been applied.
                maybe_applied = maybe_applied or (method != "GET" and response.status_code != 503)
                if maybe_applied and not replay_safe:
                    raise OutcomeUnknown(
                        f"{what}: {last_problem}; it may have been applied and "
                        "cannot be resent safely"
                    )
            wait = retry_after_s(response)
            if wait is not None and wait > MAX_RETRY_AFTER_S:
                retries = attempt - 1  # told to wait longer than we may: stop, never retry early
        if attempt <= retries:
            sleep(max(backoff_delay(attempt, backoff_s, rng), wait or 0.0))
    if maybe_applied:
        raise OutcomeUnknown(f"{what}: outcome unknown after {attempt} attempts: {last_problem}")
    raise ApiCallError(f"{what} failed after {attempt} attempts: {last_problem}")


def send(
    client: httpx.Client,
    request: ApiRequest,
    retries: int = 3,
    backoff_s: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
    breaker: CircuitBreaker | None = None,
    rng: random.Random | None = None,
) -> ApiResult:
    """Send ``request``, retrying transient failures (same request, same key); see
    :func:`send_http` for what it raises."""
    response, attempts = send_http(
        client,
        request.to_httpx,
        method=request.method,
        path=request.path,
        replay_safe=request.replay_safe,
        retries=retries,
        backoff_s=backoff_s,
        sleep=sleep,
        breaker=breaker,
        rng=rng,
    )
    return ApiResult(
        status_code=response.status_code,
        body=_json_or_text(response),
        attempts=attempts,
        idempotency_key=request.idempotency_key,
    )


@write_tool
def invoke_api(
    client: httpx.Client,
    request: ApiRequest,
    retries: int = 3,
    backoff_s: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
    breaker: CircuitBreaker | None = None,
) -> ApiResult:
    """Perform a write the connector built, retrying transient failures with the same key.

    Returns the status code and JSON body. Raises ApiCallError when the call
    is rejected (4xx) or still fails after ``retries`` retries, OutcomeUnknown
    when it may have been applied without an answer.
    """
    return send(client, request, retries, backoff_s, sleep, breaker)


def _json_or_text(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text[:2000]
