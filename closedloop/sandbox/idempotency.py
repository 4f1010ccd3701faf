"""Idempotency-Key handling and the log of writes the sandbox received.

The first write with a key is executed and its response (status and body) is
stored; replaying the key with the same request returns the stored response and
changes nothing; replaying it with a different request is a conflict (409).
Callers must hold the simulation lock around check-execute-store so concurrent
replays of one key run the write at most once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """A stable digest of (method, path, JSON body) used to detect key reuse."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    """The first response given for an idempotency key."""

    fingerprint: str
    status: int
    body: dict[str, Any]


class IdempotencyLedger:
    """Stored first responses per key, and every keyed write received (in order)."""

    def __init__(self) -> None:
        self._responses: dict[str, StoredResponse] = {}
        self.writes: list[dict[str, Any]] = []

    def lookup(self, key: str) -> StoredResponse | None:
        """The stored response for ``key``, or None when the key is new."""
        return self._responses.get(key)

    def store(self, key: str, fingerprint: str, status: int, body: dict[str, Any]) -> None:
        """Remember the first response given for ``key``."""
        self._responses[key] = StoredResponse(fingerprint, status, body)

    def record(
        self, *, method: str, path: str, key: str, replayed: bool, status: int,
        at_seq: int, at: str,
    ) -> None:
        """Append one received write to the log served at ``GET /writes``."""
        self.writes.append({
            "method": method.upper(), "path": path, "idempotency_key": key,
            "replayed": replayed, "status": status, "at_seq": at_seq, "at": at,
        })
