"""A throwaway PostgreSQL server for tests (Debian's postgresql binaries, run as user postgres)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def unavailable_reason() -> str | None:
    """Why no test server can be started here, or None."""
    if os.environ.get("CLOSEDLOOP_TEST_POSTGRES_URL"):
        return None
    if _bindir() is None:
        return "PostgreSQL binaries not installed (apt-get install postgresql, or set CLOSEDLOOP_TEST_POSTGRES_URL)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to start PostgreSQL as user postgres"
    return None


@contextmanager
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL of a fresh database; the server is stopped and deleted afterwards."""
    given = os.environ.get("CLOSEDLOOP_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    bindir = _bindir()
    datadir = tempfile.mkdtemp(prefix="closedloop-pg-")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        shutil.chown(datadir, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    def run(*cmd: str) -> None:
        subprocess.run([*as_postgres, *cmd], check=True, capture_output=True, timeout=120)

    try:
        run(f"{bindir}/initdb", "-D", datadir, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        run(f"{bindir}/pg_ctl", "-D", datadir, "-w", "-l", f"{datadir}/log",
            "-o", f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        deadline = time.monotonic() + 30
        while subprocess.run([*as_postgres, f"{bindir}/pg_isready", "-h", "127.0.0.1", "-p", str(port)],
                             check=False, capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not become ready")
            time.sleep(0.2)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_postgres, f"{bindir}/pg_ctl", "-D", datadir, "-m", "immediate", "stop"],
                       check=False, capture_output=True, timeout=60)
        shutil.rmtree(datadir, ignore_errors=True)
