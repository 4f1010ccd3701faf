"""Engine and sessions for the store (SQLite by default, PostgreSQL by URL).

A SQLite store is created owner-only (0600, its folder 0700 when we create it), and
migrations run under a lock so concurrent first use of a fresh store is safe: a file
lock beside a SQLite file, an advisory lock on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from closedloop.store import redact as _redact  # noqa: F401  (registers the redaction hook)

OWNER_ONLY_FILE = 0o600
OWNER_ONLY_DIR = 0o700
_PG_MIGRATION_LOCK = 7_311_011  # any constant: one advisory lock for closedloop migrations


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for memory databases and other backends)."""
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def secure_sqlite_file(path: Path) -> None:
    """Create the store file owner-only (its folder 0700 if we create it); tighten an existing one.

    An existing file is never opened here: closing any descriptor of a SQLite file drops every
    POSIX lock this process holds on it, so a connection elsewhere could take this process's
    connections for gone and delete the WAL under them (commits lost, decisions made twice).
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=OWNER_ONLY_DIR, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, OWNER_ONLY_FILE))
    for companion in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if companion.stat().st_mode & 0o077:
                companion.chmod(OWNER_ONLY_FILE)


_ENGINES_LOCK = threading.Lock()


def get_engine(url: str) -> Engine:
    """One engine per database URL; SQLite gets WAL, foreign keys and a busy timeout."""
    with _ENGINES_LOCK:  # created once per process, before any thread connects
        return _engine(url)


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            secure_sqlite_file(path)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - driver hook
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commits on success, rolls everything back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold the store's migration lock (one process migrates at a time)."""
    path = sqlite_path(url)
    if path is not None:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=OWNER_ONLY_DIR, exist_ok=True)
        fd = os.open(f"{path}.migrate.lock", os.O_CREAT | os.O_RDWR, OWNER_ONLY_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
    elif url.startswith("postgresql"):
        engine = get_engine(url)
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
    else:
        yield


def open_store(url: str) -> Engine:
    """Migrate the database at ``url`` to the latest schema (under the migration lock: safe when
    several processes open a fresh store at once) and return its engine."""
    from closedloop.store.migrate import upgrade

    engine = get_engine(url)  # creates a SQLite file owner-only before Alembic touches it
    with migration_lock(url):
        upgrade(url)
    return engine
