"""A sandbox served by its own ``python -m closedloop.sandbox`` process, for the CLI tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx


@contextlib.contextmanager
def standalone_sandbox(*args: str) -> Iterator[httpx.Client]:
    """Start ``python -m closedloop.sandbox --port 0 *args``; yield a client once it is healthy.

    The process prints its URL when the socket is bound, before uvicorn listens, so the
    client polls ``/health`` first. The process is terminated on exit.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "closedloop.sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(100):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            yield client
    finally:
        process.terminate()
        process.wait(timeout=10)
