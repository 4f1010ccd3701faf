"""Header login for the chat: a reverse proxy that has signed the person in names them in a header.

Off unless configured. ``CLOSEDLOOP_CHAT_TRUSTED_HEADER`` names the header (e.g.
``X-Forwarded-User``) and ``CLOSEDLOOP_CHAT_HEADER_ROLES`` maps the names it carries to roles:
``name:role+role`` entries separated by ``;``, ``*`` for any other name (leave ``*`` out and
only the names listed get in). A name the mapping does not cover, an empty or ambiguous value
(``a, b``: a proxy that appends to what the browser sent) or a control character is refused.

The header is trusted as it comes, so the chat must be reachable only through the proxy, and
the proxy must set the header itself (replacing any the browser sent). Without
configuration Chainlit's ``/auth/header`` answers 400 and nobody gets in by a header.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from closedloop.chat.auth import ChatAuthError
from closedloop.identity import ROLES, Principal

ANY_NAME = "*"
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-]{0,63}$")
# Headers a browser (or Chainlit itself) sets: never an identity a proxy vouches for.
_NOT_IDENTITY = frozenset(
    {"authorization", "cookie", "host", "origin", "referer", "user-agent", "content-type"}
)


class HeaderAuthSettings(BaseSettings):
    """Header login configuration (environment variables)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)
    trusted_header: str = Field(
        default="",
        validation_alias="CLOSEDLOOP_CHAT_TRUSTED_HEADER",
        description="header the reverse proxy sets to the signed-in person's name; empty: off",
    )
    header_roles: str = Field(
        default="",
        validation_alias="CLOSEDLOOP_CHAT_HEADER_ROLES",
        description="'name:role+role' entries separated by ';' ('*' for any other name)",
    )


class HeaderLogin(BaseModel):
    """Validated header login: the header's name and the roles of each name it may carry."""

    header: str
    roles: dict[str, frozenset[str]]


def parse_roles(text: str) -> dict[str, frozenset[str]]:
    """``CLOSEDLOOP_CHAT_HEADER_ROLES`` entries by name; ChatAuthError naming a bad entry."""
    out: dict[str, frozenset[str]] = {}
    for n, chunk in enumerate((c.strip() for c in text.split(";")), start=1):
        if not chunk:
            continue
        name, sep, raw = chunk.rpartition(":")
        name = name.strip()
        roles = {r.strip().lower() for r in raw.split("+") if r.strip()}
        if not sep or not name:
            raise ChatAuthError(
                f"CLOSEDLOOP_CHAT_HEADER_ROLES entry {n}: expected name:role+role (or *:role)"
            )
        if not roles or not roles <= set(ROLES):
            raise ChatAuthError(
                f"CLOSEDLOOP_CHAT_HEADER_ROLES entry {n} ({name}): roles must be some of "
                f"{', '.join(ROLES)}; got {raw.strip()!r}"
            )
        out[name] = frozenset(roles)
    return out


def configured_header_login(settings: HeaderAuthSettings | None = None) -> HeaderLogin | None:
    """The header login from the environment, None when it is off; ChatAuthError when it is
    half configured (a header without roles or roles without a header) or the header is not
    one a proxy could vouch with."""
    settings = settings or HeaderAuthSettings()
    header, roles = settings.trusted_header.strip(), parse_roles(settings.header_roles)
    if not header and not roles:
        return None
    if not header:
        raise ChatAuthError(
            "CLOSEDLOOP_CHAT_HEADER_ROLES is set but CLOSEDLOOP_CHAT_TRUSTED_HEADER is not: "
            "name the header your proxy sets (e.g. X-Forwarded-User)"
        )
    if not _HEADER_NAME.match(header) or header.lower() in _NOT_IDENTITY:
        raise ChatAuthError(
            f"CLOSEDLOOP_CHAT_TRUSTED_HEADER {header[:64]!r} is not a header a proxy sets for "
            "the signed-in person (e.g. X-Forwarded-User)"
        )
    if not roles:
        raise ChatAuthError(
            f"CLOSEDLOOP_CHAT_TRUSTED_HEADER is {header} but CLOSEDLOOP_CHAT_HEADER_ROLES names "
            "nobody: map names to roles, e.g. 'olga:approver;*:analyst'"
        )
    return HeaderLogin(header=header, roles=roles)


def _value(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    found = [v for k, v in headers.items() if k.lower() == wanted]
    return found[0] if len(found) == 1 else None  # twice is ambiguous: refused


def authenticate_header(headers: Mapping[str, str], login: HeaderLogin | None) -> Principal | None:
    """The principal the trusted header names, or None (header login off, header missing,
    empty, ambiguous or with control characters, or a name the role mapping does not cover)."""
    if login is None:
        return None
    raw = _value(headers, login.header)
    name = (raw or "").strip()
    if not name or name == ANY_NAME or len(name) > 200 or "," in name:
        return None
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        return None
    roles = login.roles.get(name) or login.roles.get(ANY_NAME)
    if not roles:
        return None
    return Principal(name=name, roles=roles, via="chat")
