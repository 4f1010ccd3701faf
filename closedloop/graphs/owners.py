"""Who drives a run: the owning process as ``host:pid:start``, and when an owner counts as gone.

On the same host an owner is gone when its process is (the start time guards against a
reused pid); an owner on another host is gone when it has not touched the run for
:data:`STALE_AFTER` (its process cannot be checked from here).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from pathlib import Path

#: A run whose owner on another host has not checkpointed for this long counts as interrupted.
STALE_AFTER = timedelta(minutes=15)


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc is not available)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def owner_id() -> str:
    """This process as a run owner."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def _local_alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not started or _start_time(pid) == started


def owner_gone(owner: str | None, updated_at: datetime, now: datetime) -> bool:
    """True when the run's owner can no longer be driving it (see the module docstring)."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host == socket.gethostname() and pid.isdigit():
        return not _local_alive(int(pid), started)
    updated = updated_at if updated_at.tzinfo else updated_at.replace(tzinfo=now.tzinfo)
    return now - updated > STALE_AFTER


__all__ = ["STALE_AFTER", "owner_gone", "owner_id"]
