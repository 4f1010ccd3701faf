"""The CLI in a process of its own with a fresh home, as the process-level tests start it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import Engine

from closedloop.store.db import open_store

CLI = [sys.executable, "-m", "closedloop.cli"]
# Inherited from a developer's shell these would change what the CLI does (a real model, a crash).
NOT_INHERITED = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CLOSEDLOOP_CRASH_AT")


def home_store_url(home: Path) -> str:
    """The database URL every CLI process started with ``home`` shares."""
    return f"sqlite:///{home}/store.db"


def cli_env(home: Path, crash_at: str | None = None) -> dict[str, str]:
    """The environment of a CLI process whose home and store are under ``home``.

    ``crash_at`` names the point at which the process kills itself (``CLOSEDLOOP_CRASH_AT``).
    """
    env = {**os.environ, "CLOSEDLOOP_HOME": str(home), "DATABASE_URL": home_store_url(home)}
    for name in NOT_INHERITED:
        env.pop(name, None)
    if crash_at:
        env["CLOSEDLOOP_CRASH_AT"] = crash_at
    return env


def run_cli(home: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    """``closedloop *args`` in its own process (five minutes at most), its output captured."""
    return subprocess.run(
        [*CLI, *args],
        check=False,
        env=cli_env(home, crash_at),
        capture_output=True,
        text=True,
        timeout=300,
    )


def home_store(home: Path) -> Engine:
    """The store the CLI processes started with ``home`` wrote to."""
    return open_store(home_store_url(home))
