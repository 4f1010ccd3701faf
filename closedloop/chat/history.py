"""Chat history that survives a restart: Chainlit's SQLAlchemy data layer on a SQLite file.

Threads, messages, steps and feedback go to ``<CLOSEDLOOP_HOME>/chat-history.db``
(``CLOSEDLOOP_CHAT_HISTORY_URL`` names another ``sqlite+aiosqlite`` or
``postgresql+asyncpg`` URL); images and files of messages go to
``<CLOSEDLOOP_HOME>/chat-files`` and are served to their owner only
(``closedloop.chat.web``). closedloop's own store is not used: Chainlit needs its
own schema, created here on first start. History needs a login (threads belong
to users), so the chat enables it only when chat users are configured.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Any

from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.data.storage_clients.base import BaseStorageClient

HISTORY_FILE = "chat-history.db"
FILES_DIR = "chat-files"
FILES_ROUTE = "/closedloop/files"
_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*$")

# Chainlit's documented schema, written for SQLite (JSON as TEXT, ids as TEXT).
SCHEMA = """
CREATE TABLE IF NOT EXISTS users ("id" TEXT PRIMARY KEY, "identifier" TEXT NOT NULL UNIQUE,
    "metadata" TEXT NOT NULL, "createdAt" TEXT);
CREATE TABLE IF NOT EXISTS threads ("id" TEXT PRIMARY KEY, "createdAt" TEXT, "name" TEXT, "userId" TEXT,
    "userIdentifier" TEXT, "tags" TEXT, "metadata" TEXT,
    FOREIGN KEY ("userId") REFERENCES users("id") ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS steps ("id" TEXT PRIMARY KEY, "name" TEXT NOT NULL, "type" TEXT NOT NULL,
    "threadId" TEXT NOT NULL, "parentId" TEXT, "streaming" BOOLEAN NOT NULL, "waitForAnswer" BOOLEAN,
    "isError" BOOLEAN, "metadata" TEXT, "tags" TEXT, "input" TEXT, "output" TEXT, "createdAt" TEXT,
    "command" TEXT, "start" TEXT, "end" TEXT, "generation" TEXT, "showInput" TEXT, "language" TEXT,
    "indent" INT, "defaultOpen" BOOLEAN, "autoCollapse" BOOLEAN, "icon" TEXT, "modes" TEXT,
    FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS elements ("id" TEXT PRIMARY KEY, "threadId" TEXT, "type" TEXT, "url" TEXT,
    "chainlitKey" TEXT, "name" TEXT NOT NULL, "display" TEXT, "objectKey" TEXT, "size" TEXT, "page" INT,
    "language" TEXT, "forId" TEXT, "mime" TEXT, "props" TEXT, "autoPlay" BOOLEAN, "playerConfig" TEXT,
    FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS feedbacks ("id" TEXT PRIMARY KEY, "forId" TEXT NOT NULL, "threadId" TEXT NOT NULL,
    "value" INT NOT NULL, "comment" TEXT, FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE);
"""


def history_url(home: Path) -> str:
    """Where the history lives: ``CLOSEDLOOP_CHAT_HISTORY_URL`` or a SQLite file under ``home``."""
    return (
        os.environ.get("CLOSEDLOOP_CHAT_HISTORY_URL")
        or f"sqlite+aiosqlite:///{home / HISTORY_FILE}"
    )


def create_sqlite_schema(path: Path) -> None:
    """Create Chainlit's tables in the SQLite file ``path`` (idempotent)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)


class LocalStorage(BaseStorageClient):
    """Message files (the process map image) in a folder, served by the chat's own route."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, object_key: str) -> Path:
        """The file of ``object_key``; ValueError for a key that could leave the folder."""
        if not _SAFE_KEY.match(object_key) or ".." in object_key:
            raise ValueError(f"unsafe object key {object_key[:80]!r}")
        return self.root / object_key

    async def upload_file(
        self,
        object_key: str,
        data: bytes | str,
        mime: str = "application/octet-stream",
        overwrite: bool = True,
        content_disposition: str | None = None,
    ) -> dict[str, Any]:
        key = "/".join(
            re.sub(r"[^A-Za-z0-9._-]+", "_", part).lstrip("._") or "file"
            for part in object_key.split("/")
        )
        path = self.path_of(key)
        if path.exists() and not overwrite:
            raise FileExistsError(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return {"object_key": key, "url": f"{FILES_ROUTE}/{key}"}

    async def delete_file(self, object_key: str) -> bool:
        path = self.path_of(object_key)
        if path.exists():
            path.unlink()
            return True
        return False

    async def get_read_url(self, object_key: str) -> str:
        return f"{FILES_ROUTE}/{object_key}"

    async def close(self) -> None:
        return None


def data_layer(home: Path) -> SQLAlchemyDataLayer:
    """Chainlit's SQLAlchemy data layer on the history database, schema created when SQLite."""
    url = history_url(home)
    if url.startswith("sqlite"):
        create_sqlite_schema(Path(url.split(":///", 1)[1]))
    return SQLAlchemyDataLayer(conninfo=url, storage_provider=LocalStorage(home / FILES_DIR))
