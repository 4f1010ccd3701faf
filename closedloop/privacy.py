"""Pseudonymise people and case attributes before anything reaches a model or leaves the machine.

Which fields: ``CLOSEDLOOP_PSEUDONYMISE`` (comma-separated field names, e.g.
``resource,org:resource,case:customer``; ``none`` turns it off). Without it, resources
(the people doing the work) are pseudonymised. A value becomes ``anon-`` plus a keyed
hash (HMAC-SHA256 with ``CLOSEDLOOP_PSEUDONYM_SALT``, else a random key per process),
so the same person gets the same pseudonym within a run and nobody can reverse it
without the key. Applied to JSON-like data: a field's value (or each item of a list)
is replaced; a field holding a mapping has its keys replaced (counts per person).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from typing import Any

PSEUDONYMISE_ENV = "CLOSEDLOOP_PSEUDONYMISE"
SALT_ENV = "CLOSEDLOOP_PSEUDONYM_SALT"
DEFAULT_FIELDS = frozenset({"resource", "resources", "org:resource", "case:resource"})
_PROCESS_SALT = secrets.token_bytes(32)


def configured_fields(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """The field names to pseudonymise (empty when turned off with ``none``)."""
    raw = (os.environ if env is None else env).get(PSEUDONYMISE_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_FIELDS
    if raw.strip().lower() == "none":
        return frozenset()
    return frozenset(name.strip() for name in raw.split(",") if name.strip())


def _salt(env: Mapping[str, str] | None = None) -> bytes:
    given = (os.environ if env is None else env).get(SALT_ENV)
    return given.encode() if given else _PROCESS_SALT


def pseudonym(value: Any, salt: bytes) -> str:
    """The stable pseudonym of one value."""
    return "anon-" + hmac.new(salt, str(value).encode(), hashlib.sha256).hexdigest()[:12]


def pseudonymise(data: Any, fields: frozenset[str], salt: bytes) -> Any:
    """A copy of JSON-like ``data`` with the values of ``fields`` pseudonymised."""
    if isinstance(data, Mapping):
        out: dict[Any, Any] = {}
        for key, value in data.items():
            if key in fields:
                out[key] = _replace(value, salt)
            else:
                out[key] = pseudonymise(value, fields, salt)
        return out
    if isinstance(data, list | tuple):
        return [pseudonymise(item, fields, salt) for item in data]
    return data


def _replace(value: Any, salt: bytes) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {pseudonym(k, salt): v for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replace(v, salt) for v in value]
    return pseudonym(value, salt)


def mask_for_model(task: Any, env: Mapping[str, str] | None = None) -> Any:
    """``task`` as it may be shown to a model: the configured fields pseudonymised."""
    fields = configured_fields(env)
    return pseudonymise(task, fields, _salt(env)) if fields else task


__all__ = [
    "DEFAULT_FIELDS",
    "PSEUDONYMISE_ENV",
    "SALT_ENV",
    "configured_fields",
    "mask_for_model",
    "pseudonym",
    "pseudonymise",
]
