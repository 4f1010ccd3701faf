"""Named points where a test can kill the process for real (``SIGKILL``), to prove recovery.

``CLOSEDLOOP_CRASH_AT=<point>`` makes the process kill itself the first time it reaches
that point: no cleanup, no ``finally``, exactly like ``kill -9`` or a power cut. Points:
``observe``, ``plan``, ``execute:intent`` (intent committed, request not sent),
``execute:sent`` (the system applied the write, its answer is not recorded), ``watch``,
``job:progress`` (a REST job reported its first progress: it runs and has not finished).
Unset (always, outside tests) it does nothing.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "CLOSEDLOOP_CRASH_AT"
POINTS = ("observe", "plan", "execute:intent", "execute:sent", "watch", "job:progress")


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when ``CLOSEDLOOP_CRASH_AT`` names ``name``."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
