"""Who is chatting: password login for the chat, turned into a ``closedloop.identity.Principal``.

Chat users come from ``CLOSEDLOOP_CHAT_USERS``: entries ``name:role+role:hash`` separated
by ``;``, where ``hash`` is ``pbkdf2_sha256$<iterations>$<salt>$<hex>`` (make one with
``python -m closedloop.chat.auth hash``; a plain password is refused). Roles are
identity's: ``analyst`` (mine, ask, start runs), ``approver`` (approve or reject a plan),
``admin`` (the kill switch). Without users the chat has no login and the one local
operator holds every role, so keep it on loopback then (its default).

The Chainlit session secret (``CHAINLIT_AUTH_SECRET``) defaults to a random one kept in
``<CLOSEDLOOP_HOME>/chat-auth-secret`` (0600), so logins survive a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from closedloop.identity import ADMIN, ANALYST, APPROVER, ROLES, Principal

SCHEME = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 600_000
SECRET_FILE = "chat-auth-secret"
LOCAL_OPERATOR = Principal(name="chat operator", roles=frozenset(ROLES), via="chat")


class ChatAuthError(ValueError):
    """A malformed ``CLOSEDLOOP_CHAT_USERS`` entry (the message names the entry, never a secret)."""


class ChatAuthSettings(BaseSettings):
    """The chat's login configuration (environment variables)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)
    users: str = Field(
        default="",
        validation_alias="CLOSEDLOOP_CHAT_USERS",
        description="'name:role+role:pbkdf2_sha256$...' entries separated by ';'",
    )


class ChatUser(BaseModel):
    """One configured chat user: name, roles and the password hash."""

    name: str = Field(min_length=1, max_length=200)
    roles: frozenset[str]
    password_hash: str


def hash_password(
    password: str, iterations: int = DEFAULT_ITERATIONS, salt: str | None = None
) -> str:
    """``pbkdf2_sha256$<iterations>$<salt>$<hex>`` of ``password`` (what configuration stores)."""
    if not password:
        raise ChatAuthError("an empty password cannot be hashed")
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac(
        "sha256", password.encode("utf-8"), salt.encode("ascii"), iterations
    )
    return f"{SCHEME}${iterations}${salt}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches the hash ``encoded`` (constant-time comparison)."""
    try:
        scheme, iterations, salt, hexdigest = encoded.split("$")
        rounds = int(iterations)
    except ValueError:
        return False
    if scheme != SCHEME or rounds < 1:
        return False
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("ascii"), rounds)
    return hmac.compare_digest(digest.hex(), hexdigest.lower())


def parse_users(text: str) -> dict[str, ChatUser]:
    """``CLOSEDLOOP_CHAT_USERS`` entries by name; ChatAuthError naming a bad entry."""
    users: dict[str, ChatUser] = {}
    for n, chunk in enumerate((c.strip() for c in text.split(";")), start=1):
        if not chunk:
            continue
        parts = chunk.split(":")
        if len(parts) != 3:
            raise ChatAuthError(
                f"CLOSEDLOOP_CHAT_USERS entry {n}: expected name:role+role:{SCHEME}$..."
            )
        name, raw_roles, encoded = (p.strip() for p in parts)
        roles = {r.strip().lower() for r in raw_roles.split("+") if r.strip()}
        if not roles or not roles <= set(ROLES):
            raise ChatAuthError(
                f"CLOSEDLOOP_CHAT_USERS entry {n} ({name}): roles must be some of "
                f"{', '.join(ROLES)}; got {raw_roles!r}"
            )
        if not encoded.startswith(f"{SCHEME}$") or encoded.count("$") != 3:
            raise ChatAuthError(
                f"CLOSEDLOOP_CHAT_USERS entry {n} ({name}): the third part must be a "
                f"{SCHEME} hash (python -m closedloop.chat.auth hash), never the password"
            )
        if not name:
            raise ChatAuthError(f"CLOSEDLOOP_CHAT_USERS entry {n}: empty user name")
        users[name] = ChatUser(name=name, roles=frozenset(roles), password_hash=encoded)
    return users


def configured_users(settings: ChatAuthSettings | None = None) -> dict[str, ChatUser]:
    """The chat users from the environment (empty: the chat has no login)."""
    return parse_users((settings or ChatAuthSettings()).users)


def authenticate(username: str, password: str, users: dict[str, ChatUser]) -> Principal | None:
    """The principal of a correct user name and password, else None (no hint which part was wrong)."""
    user = users.get(username)
    if user is None:
        verify_password(
            password, hash_password("x", iterations=1000)
        )  # similar work for unknown names
        return None
    if not verify_password(password, user.password_hash):
        return None
    return Principal(name=user.name, roles=user.roles, via="chat")


def principal_from_metadata(identifier: str | None, metadata: dict | None) -> Principal:
    """The principal of a logged-in Chainlit user (its metadata holds the roles); the local
    operator when the chat runs without login."""
    if identifier is None:
        return LOCAL_OPERATOR
    roles = frozenset(r for r in (metadata or {}).get("roles", []) if r in ROLES)
    return Principal(name=identifier, roles=roles, via="chat")


def can_approve(who: Principal) -> bool:
    """Approve or reject plans."""
    return who.has(APPROVER)


def can_switch_kill(who: Principal) -> bool:
    """Turn a scope's kill switch on or off."""
    return who.has(ADMIN)


def can_analyse(who: Principal) -> bool:
    """Mine logs, ask what-ifs and start loop runs."""
    return who.has(ANALYST) or who.has(ADMIN)


def ensure_session_secret(home: Path) -> None:
    """Set ``CHAINLIT_AUTH_SECRET`` from ``<home>/chat-auth-secret`` (created 0600) unless it is set."""
    if os.environ.get("CHAINLIT_AUTH_SECRET"):
        return
    path = home / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(48))
    os.environ["CHAINLIT_AUTH_SECRET"] = path.read_text(encoding="utf-8").strip()


def main(argv: list[str]) -> int:
    """``python -m closedloop.chat.auth hash``: read a password (twice) and print its hash."""
    import getpass

    if argv[:1] != ["hash"]:
        print("usage: python -m closedloop.chat.auth hash", file=sys.stderr)
        return 2
    first, second = getpass.getpass("password: "), getpass.getpass("again: ")
    if first != second or not first:
        print("the passwords differ or are empty", file=sys.stderr)
        return 1
    print(hash_password(first))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
