"""Who is calling and what they may do: principals, roles, API keys and bearer JWTs.

Every surface (REST, Teams, chat) turns a credential into a :class:`Principal` here and
checks a role with :func:`require`. Three roles, none implying another:

- ``analyst``: start runs, mine, simulate, optimize, push events and alerts, ask questions;
- ``approver``: approve or reject a plan;
- ``admin``: change a scope's policy or its kill switch.

Reading (runs, approvals, audit, monitor) needs any authenticated principal.

API keys are stored only as SHA-256 hashes, either in ``CLOSEDLOOP_API_KEYS``
(``name:role+role:sha256hex`` entries separated by ``;``) or in
``<CLOSEDLOOP_HOME>/api-keys.json``. When neither holds a key, :func:`ensure_dev_key`
creates one admin+approver+analyst key named ``dev`` on first start, writes its hash to
``api-keys.json`` and the key itself to ``<CLOSEDLOOP_HOME>/api-key`` (both mode 0600),
so a local ``closedloop serve`` works out of the box and nobody else on the machine can read it.

OAuth2 bearer tokens are JWTs signed by the configured issuer (``CLOSEDLOOP_OAUTH_ISSUER``,
``CLOSEDLOOP_OAUTH_AUDIENCE``, keys from ``CLOSEDLOOP_OAUTH_JWKS_URL``); their roles come from
the ``roles`` claim (``closedloop.approver`` or ``approver``).

Usage from another surface::

    from closedloop.identity import authenticate_api_key, require, APPROVER
    who = authenticate_api_key(key, settings)      # Unauthenticated if unknown
    require(who, APPROVER)                          # Forbidden if the role is missing
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from pydantic import BaseModel, ConfigDict, Field

from closedloop.settings import Settings, get_settings

ANALYST = "analyst"
APPROVER = "approver"
ADMIN = "admin"
ROLES = (ANALYST, APPROVER, ADMIN)
KEYS_FILE = "api-keys.json"
DEV_KEY_FILE = "api-key"
_HEX = frozenset("0123456789abcdef")


class AuthError(Exception):
    """Base of the two refusals; ``str()`` says what is wrong without echoing a secret."""


class Unauthenticated(AuthError):
    """No credential, or one that matches nobody (HTTP 401)."""


class Forbidden(AuthError):
    """A known principal without the role the action needs (HTTP 403)."""


class Principal(BaseModel):
    """An authenticated caller: a display name (recorded as who decided) and its roles."""

    model_config = ConfigDict(frozen=True)
    name: str = Field(min_length=1, max_length=200)
    roles: frozenset[str] = frozenset()
    via: str = Field(default="api-key", description="api-key | oauth | teams | chat")

    def has(self, role: str) -> bool:
        """True when this principal holds ``role``."""
        return role in self.roles


class KeyEntry(BaseModel):
    """One configured API key: who it is, its roles and the SHA-256 hex of the key."""

    name: str = Field(min_length=1, max_length=200)
    roles: list[str]
    sha256: str = Field(min_length=64, max_length=64)


def hash_key(key: str) -> str:
    """SHA-256 hex of an API key (what configuration stores)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (URL-safe, 256 bits, prefixed so it is recognisable in a leak scan)."""
    return "clk_" + secrets.token_urlsafe(32)


def _roles(raw: list[str] | str, where: str) -> list[str]:
    items = raw.split("+") if isinstance(raw, str) else raw
    roles = [r.strip().lower() for r in items if r.strip()]
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise ValueError(f"{where}: roles must be some of {', '.join(ROLES)}; got {raw!r}")
    return roles


def parse_key_entries(text: str) -> list[KeyEntry]:
    """Entries of ``CLOSEDLOOP_API_KEYS``: ``name:role+role:sha256hex`` separated by ``;``."""
    out = []
    for n, chunk in enumerate(c.strip() for c in text.split(";")):
        if not chunk:
            continue
        parts = chunk.split(":")
        if len(parts) != 3:
            raise ValueError(
                f"CLOSEDLOOP_API_KEYS entry {n + 1}: expected name:role+role:sha256hex"
            )
        name, roles, digest = (p.strip() for p in parts)
        digest = digest.lower()
        if len(digest) != 64 or not set(digest) <= _HEX:
            raise ValueError(
                f"CLOSEDLOOP_API_KEYS entry {n + 1} ({name}): the third part must be the "
                "64-hex SHA-256 of the key, never the key itself"
            )
        out.append(
            KeyEntry(
                name=name, roles=_roles(roles, f"CLOSEDLOOP_API_KEYS entry {n + 1}"), sha256=digest
            )
        )
    return out


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only (created 0600, never widened)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def key_entries(settings: Settings) -> list[KeyEntry]:
    """Configured keys: ``CLOSEDLOOP_API_KEYS`` when set, else ``<home>/api-keys.json`` (may be [])."""
    if settings.api_keys.strip():
        return parse_key_entries(settings.api_keys)
    path = settings.home / KEYS_FILE
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [
            KeyEntry(
                name=e["name"], roles=_roles(e["roles"], str(path)), sha256=e["sha256"].lower()
            )
            for e in raw["keys"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{path} is not a closedloop key file ({{'keys': [{{name, roles, sha256}}]}}): {exc}"
        ) from None


def ensure_dev_key(settings: Settings) -> str | None:
    """Create the ``dev`` key (all roles) when no key is configured; returns it once, else None.

    The key goes to ``<home>/api-key`` and its hash to ``<home>/api-keys.json``, both 0600.
    """
    if key_entries(settings):
        return None
    key = new_key()
    entry = KeyEntry(name="dev", roles=list(ROLES), sha256=hash_key(key))
    _write_private(settings.home / KEYS_FILE, json.dumps({"keys": [entry.model_dump()]}, indent=2))
    _write_private(settings.home / DEV_KEY_FILE, key + "\n")
    return key


def add_key(settings: Settings, name: str, roles: list[str]) -> str:
    """Create a key for ``name`` with ``roles`` in ``<home>/api-keys.json``; returns the key once."""
    if settings.api_keys.strip():
        raise ValueError(
            "keys come from CLOSEDLOOP_API_KEYS; add the entry there "
            f"({name}:{'+'.join(roles)}:<sha256 of the key>)"
        )
    entries = [e for e in key_entries(settings) if e.name != name]
    key = new_key()
    entries.append(KeyEntry(name=name, roles=_roles(roles, "roles"), sha256=hash_key(key)))
    _write_private(
        settings.home / KEYS_FILE, json.dumps({"keys": [e.model_dump() for e in entries]}, indent=2)
    )
    return key


def authenticate_api_key(key: str | None, settings: Settings | None = None) -> Principal:
    """The principal of an API key (constant-time match on its hash); Unauthenticated otherwise."""
    if not key:
        raise Unauthenticated(
            "no credential: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        )
    digest = hash_key(key.strip())
    found = None
    for entry in key_entries(settings or get_settings()):
        if hmac.compare_digest(entry.sha256, digest):
            found = entry
    if found is None:
        raise Unauthenticated("unknown API key")
    return Principal(name=found.name, roles=frozenset(found.roles), via="api-key")


def require(principal: Principal, role: str) -> Principal:
    """``principal`` when it holds ``role``; Forbidden naming the role otherwise."""
    if not principal.has(role):
        held = ", ".join(sorted(principal.roles)) or "none"
        raise Forbidden(
            f"{principal.name} may not do this: it needs the {role} role (holds {held})"
        )
    return principal


# --- signed JWTs (OAuth2 bearer tokens, Bot Framework activities) ---------------------------


class JwksKeys:
    """Signing keys of one issuer, from a JWKS URL or an OpenID metadata URL (its ``jwks_uri``).

    Keys are cached for ``ttl_s``; a token with an unknown ``kid`` refetches at most once a
    minute (key rollover) so a flood of forged kids cannot hammer the issuer.
    """

    def __init__(
        self, url: str, openid: bool = False, ttl_s: float = 24 * 3600, timeout_s: float = 10.0
    ) -> None:
        self.url, self.openid, self.ttl_s, self.timeout_s = url, openid, ttl_s, timeout_s
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched = 0.0
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
            url = self.url
            if self.openid:
                meta = client.get(url)
                meta.raise_for_status()
                url = meta.json()["jwks_uri"]
            answer = client.get(url)
            answer.raise_for_status()
            self._keys = {k["kid"]: k for k in answer.json()["keys"] if "kid" in k}
        self._fetched = time.monotonic()

    def key(self, kid: str) -> dict[str, Any]:
        """The JWK with ``kid`` (Unauthenticated when the issuer does not publish it)."""
        with self._lock:
            age = time.monotonic() - self._fetched
            if not self._fetched or age > self.ttl_s or (kid not in self._keys and age > 60):
                try:
                    self._fetch()
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    if not self._keys:
                        raise Unauthenticated(
                            f"signing keys unavailable from {self.url}: {type(exc).__name__}"
                        ) from None
            if kid not in self._keys:
                raise Unauthenticated("token signed with a key the issuer does not publish")
            return self._keys[kid]


def verify_jwt(
    token: str, keys: JwksKeys, issuer: str, audience: str, leeway_s: float = 300
) -> dict[str, Any]:
    """The claims of an RS256 ``token`` checked for signature, issuer, audience, expiry and
    not-before (``leeway_s`` of clock skew); Unauthenticated naming what failed."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthenticated("the bearer token is not a JWT") from None
    if header.get("alg") not in ("RS256", "RS384", "RS512"):
        raise Unauthenticated(f"token algorithm {str(header.get('alg'))[:10]!r} is not accepted")
    jwk = keys.key(str(header.get("kid", "")))
    try:
        public = jwt.PyJWK.from_dict(jwk).key
        return jwt.decode(
            token,
            public,
            algorithms=[header["alg"]],
            audience=audience,
            issuer=issuer,
            leeway=leeway_s,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("token expired") from None
    except jwt.InvalidAudienceError:
        raise Unauthenticated("token is for another audience") from None
    except jwt.InvalidIssuerError:
        raise Unauthenticated("token from an issuer not accepted here") from None
    except jwt.InvalidSignatureError:
        raise Unauthenticated("token signature does not verify") from None
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"token refused: {type(exc).__name__}") from None


_oauth_keys: dict[str, JwksKeys] = {}
_oauth_lock = threading.Lock()


def authenticate_bearer_jwt(token: str, settings: Settings | None = None) -> Principal:
    """The principal of an OAuth2 bearer JWT from the configured issuer; roles from its roles claim."""
    settings = settings or get_settings()
    if not (settings.oauth_issuer and settings.oauth_audience and settings.oauth_jwks_url):
        raise Unauthenticated("bearer JWTs are not accepted here (no OAuth issuer configured)")
    with _oauth_lock:
        keys = _oauth_keys.setdefault(settings.oauth_jwks_url, JwksKeys(settings.oauth_jwks_url))
    claims = verify_jwt(token, keys, settings.oauth_issuer, settings.oauth_audience, leeway_s=60)
    raw = claims.get(settings.oauth_roles_claim) or []
    raw = raw.split() if isinstance(raw, str) else raw
    roles = {str(r).lower().removeprefix("closedloop.") for r in raw} & set(ROLES)
    name = str(
        claims.get("preferred_username") or claims.get("name") or claims.get("sub") or "oauth user"
    )
    return Principal(name=name[:200], roles=frozenset(roles), via="oauth")


def authenticate(credential: str | None, settings: Settings | None = None) -> Principal:
    """An API key or, when it looks like a JWT (three dot-separated parts), an OAuth bearer token."""
    if credential and credential.count(".") == 2 and not credential.startswith("clk_"):
        return authenticate_bearer_jwt(credential, settings)
    return authenticate_api_key(credential, settings)


def _ids(text: str) -> set[str]:
    return {t.strip() for t in text.split(",") if t.strip()}


def teams_principal(
    user_id: str | None, aad_object_id: str | None, name: str, settings: Settings | None = None
) -> Principal:
    """A Teams user's principal: roles from ``CLOSEDLOOP_TEAMS_APPROVERS/ADMINS/ANALYSTS``
    (Teams user ids ``29:...`` or AAD object ids); unlisted users hold no role."""
    settings = settings or get_settings()
    mine = {i for i in (user_id, aad_object_id) if i}
    roles = {
        role
        for role, listed in (
            (APPROVER, settings.teams_approvers),
            (ADMIN, settings.teams_admins),
            (ANALYST, settings.teams_analysts),
        )
        if mine & _ids(listed)
    }
    return Principal(name=name[:200] or "unknown teams user", roles=frozenset(roles), via="teams")


def teams_approver_ids(settings: Settings | None = None) -> list[str]:
    """The approvers' Teams user ids (for ``refresh.userIds``: at most 60 ids are honoured)."""
    return sorted(_ids((settings or get_settings()).teams_approvers))[:60]


__all__ = [
    "ADMIN",
    "ANALYST",
    "APPROVER",
    "ROLES",
    "AuthError",
    "Forbidden",
    "JwksKeys",
    "KeyEntry",
    "Principal",
    "Unauthenticated",
    "add_key",
    "authenticate",
    "authenticate_api_key",
    "authenticate_bearer_jwt",
    "ensure_dev_key",
    "hash_key",
    "key_entries",
    "new_key",
    "parse_key_entries",
    "require",
    "teams_approver_ids",
    "teams_principal",
    "verify_jwt",
]
