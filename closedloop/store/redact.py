"""Secrets never reach the store: every audit payload, execution record and verdict rationale is
redacted as it is flushed, whoever wrote it (a model echoing a key, a server echoing a token).

Three nets: values under secret-looking keys (``authorization``, ``api_key``, ``password``...),
secret-shaped strings (bearer tokens, ``sk-`` keys, JWTs, basic credentials) and the exact
values of secret environment variables (names with TOKEN, SECRET, PASSWORD or KEY).
"""

from __future__ import annotations

import os
import re
from typing import Any

from sqlalchemy import event
from sqlmodel import Session

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"(authorization|api[-_]?key|apikey|password|passwd|secret|token|"
    r"client[-_]?secret|private[-_]?key|cookie|x-csrf-token)$",
    re.IGNORECASE,
)
_NOT_SECRET_KEYS = {
    "idempotency_key",
    "token_env",
    "key_env",
    "password_env",
    "client_secret_env",
    "username_env",
    "client_id_env",
    "max_tokens",
    "tokens",
}
_PATTERNS = [
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{12,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    re.compile(r"(?i)\b(api[-_]?key|access[-_]?token|secret|password)\s*[=:]\s*[^\s,;&\"']{6,}"),
]
_ENV_NAME = re.compile(
    r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|_KEY)$|(TOKEN|SECRET)", re.IGNORECASE
)
MIN_SECRET_LENGTH = 8


def secret_values(env: dict[str, str] | None = None) -> list[str]:
    """The values of secret-named environment variables, longest first."""
    env = dict(os.environ) if env is None else env
    found = {v for k, v in env.items() if _ENV_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH}
    return sorted(found, key=len, reverse=True)


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with secret-shaped substrings and known secret values replaced."""
    for value in secret_values() if secrets is None else secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def redact(value: Any, secrets: list[str] | None = None) -> Any:
    """A copy of a JSON-like value with every secret replaced by ``[redacted]``."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            name = str(k)
            if (
                _SECRET_KEY.search(name)
                and name.lower() not in _NOT_SECRET_KEYS
                and isinstance(v, str | int)
                and v not in ("", None)
            ):
                out[k] = REDACTED
            else:
                out[k] = redact(v, secrets)
        return out
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    return value


# Which columns of which tables carry text from outside (models, servers, people).
_COLUMNS: dict[str, tuple[str, ...]] = {
    "AuditEvent": ("payload",),
    "Execution": ("request", "response", "compensation"),
    "Verdict": ("rationale",),
    "DeadLetter": ("reason",),
    "Approval": ("comment",),
}


@event.listens_for(Session, "before_flush")
def _redact_before_flush(session: Session, _context: Any, _instances: Any) -> None:
    secrets = secret_values()
    for obj in list(session.new) + list(session.dirty):
        for column in _COLUMNS.get(type(obj).__name__, ()):
            current = getattr(obj, column, None)
            if current is None:
                continue
            cleaned = redact(current, secrets)
            if cleaned != current:
                setattr(obj, column, cleaned)
