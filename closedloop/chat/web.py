"""What the chat adds to Chainlit's web server: a page that loads nothing from the internet,
an honest footer, the interactive process-map pages and the history's message files.

- Chainlit's page links Google Fonts and a KaTeX stylesheet on a CDN; :func:`offline_html`
  drops every ``<link>`` to a host that is not this machine (the fonts fall back to the
  system's, ``public/theme.json`` says which).
- Chainlit's footer says "LLMs can make mistakes" even when no model is configured; the
  footer here says what actually answers (:func:`watermark`).
- ``/closedloop/maps/<token>``: the offline process-map page of a mined log (random token,
  and the login when the chat has one).
- ``/closedloop/files/<key>``: images of past messages, for their owner only.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

from chainlit.auth import get_current_user, require_login
from chainlit.config import config
from fastapi import Depends, HTTPException, Query
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute

from closedloop.chat.history import FILES_ROUTE, LocalStorage

MAPS_DIR = "chat-maps"
MAPS_ROUTE = "/closedloop/maps"
LOOPBACK = {"127.0.0.1", "localhost", "::1", ""}
_LINK = re.compile(r"<link\b[^>]*>", re.IGNORECASE | re.DOTALL)
_HREF = re.compile(r"""\bhref\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_OG_IMAGE = re.compile(r"""<meta\s+property="og:image"[^>]*>""", re.IGNORECASE)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


def is_remote(url: str) -> bool:
    """True when ``url`` names a host other than this machine (protocol-relative URLs too)."""
    parsed = urlparse(url.strip())
    return bool(parsed.netloc) and (parsed.hostname or "") not in LOOPBACK


def offline_html(page: str) -> str:
    """``page`` without ``<link>`` tags to remote hosts (fonts, preconnects, CDN stylesheets)
    and without the remote social-preview image."""

    def keep(match: re.Match[str]) -> str:
        href = _HREF.search(match.group(0))
        return "" if href and is_remote(href.group(1)) else match.group(0)

    return _OG_IMAGE.sub("", _LINK.sub(keep, page))


def watermark(uses_llm: bool, model: str) -> str:
    """The footer under the message box, true to how the chat answers."""
    if uses_llm:
        return (
            f"A language model ({model}) routes your questions; every number comes from the mining and "
            "simulation tools. Check a plan before you approve it."
        )
    return (
        "No language model: offline rules route your questions and every number comes from the mining "
        "and simulation tools. Check a plan before you approve it."
    )


class MapPages:
    """Process-map pages saved under ``<home>/chat-maps/<token>.html``."""

    def __init__(self, home: Path) -> None:
        self.folder = home / MAPS_DIR

    def save(self, page: str) -> str:
        """Store a page; returns its URL path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(24)
        (self.folder / f"{token}.html").write_text(page, encoding="utf-8")
        return f"{MAPS_ROUTE}/{token}"

    def path_of(self, token: str) -> Path | None:
        """The page file of ``token`` (None for a malformed or unknown token)."""
        if not _TOKEN.match(token):
            return None
        path = self.folder / f"{token}.html"
        return path if path.is_file() else None


def install(home: Path, uses_llm: bool, model: str) -> None:
    """Add the routes above to Chainlit's server (before its catch-all page route)."""
    from chainlit import server  # importing it builds Chainlit's app: only when installing

    original = server.get_html_template
    if not getattr(original, "closedloop_offline", False):

        def offline_template(root_path: str) -> str:
            return offline_html(original(root_path))

        offline_template.closedloop_offline = True  # type: ignore[attr-defined]
        server.get_html_template = offline_template

    pages, files = MapPages(home), LocalStorage(home / "chat-files")
    root = config.run.root_path or ""

    async def translations(
        language: str = Query(default="en-US", pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$"),
    ) -> JSONResponse:
        translation = config.load_translation(config.ui.language or language)
        translation.setdefault("chat", {})["watermark"] = watermark(uses_llm, model)
        form = translation.get("auth", {}).get("login", {}).get("form", {})
        if "email" in form:  # chat users have names (CLOSEDLOOP_CHAT_USERS), not e-mail addresses
            form["email"].update(
                label="User name", placeholder="", required="the user name is required"
            )
        return JSONResponse({"translation": translation})

    async def map_page(token: str, user: Annotated[Any, Depends(get_current_user)]) -> FileResponse:
        if require_login() and user is None:
            raise HTTPException(status_code=401, detail="log in first")
        path = pages.path_of(token)
        if path is None:
            raise HTTPException(status_code=404, detail="no such process map")
        return FileResponse(path, media_type="text/html; charset=utf-8")

    async def message_file(
        key: str, user: Annotated[Any, Depends(get_current_user)]
    ) -> FileResponse:
        if user is None or key.split("/", 1)[0] != str(getattr(user, "id", "")):
            raise HTTPException(status_code=404, detail="no such file")
        try:
            path = files.path_of(key)
        except ValueError:
            raise HTTPException(status_code=404, detail="no such file") from None
        if not path.is_file():
            raise HTTPException(status_code=404, detail="no such file")
        return FileResponse(path)

    routes = [
        APIRoute(
            f"{root}/project/translations",
            translations,
            methods=["GET"],
            name="closedloop_translations",
        ),
        APIRoute(
            f"{root}{MAPS_ROUTE}/{{token}}", map_page, methods=["GET"], name="closedloop_map_page"
        ),
        APIRoute(
            f"{root}{FILES_ROUTE}/{{key:path}}",
            message_file,
            methods=["GET"],
            name="closedloop_file",
        ),
    ]
    existing = server.app.router.routes  # first match wins: ours go before Chainlit's
    existing[:] = routes + [
        r for r in existing if not str(getattr(r, "name", "")).startswith("closedloop_")
    ]
