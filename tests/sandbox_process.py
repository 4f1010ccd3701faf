"""A sandbox served by its own ``python -m closedloop.sandbox`` process, for the CLI tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

# How long a sandbox process may take from binding its socket to answering (2 shared cores).
HEALTHY_WITHIN_S = 30


def _healthy(client: httpx.Client) -> bool:
    try:
        return client.get("/health").status_code == 200
    except httpx.TransportError:
        return False


def applied_writes(url: str) -> list[dict]:
    """The writes the sandbox at ``url`` applied (its answers to a replayed key left out)."""
    return [w for w in httpx.get(f"{url}/writes").json() if not w["replayed"]]


@contextlib.contextmanager
def standalone_sandbox(*args: str) -> Iterator[httpx.Client]:
    """Start ``python -m closedloop.sandbox --port 0 *args``; yield a client once it is healthy.

    The process prints its URL when the socket is bound, before uvicorn listens, so the
    client polls ``/health`` first (for ``HEALTHY_WITHIN_S`` at most). The process is
    terminated on exit.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "closedloop.sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=10) as client:
            deadline = time.monotonic() + HEALTHY_WITHIN_S
            while not _healthy(client):
                assert time.monotonic() < deadline, f"the sandbox at {url} is not healthy"
                time.sleep(0.05)
            yield client
    finally:
        process.terminate()
        process.wait(timeout=10)
