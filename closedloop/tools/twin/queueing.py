"""Analytic M/G/c queueing used to size twin pools and by the optimisers.

:func:`queue_wait_hours` is the Allen-Cunneen approximation of the mean queue
wait; :func:`stable_capacity` raises a pool's capacity until the queue is
stable and its analytic wait stays within what the log shows.
"""

from __future__ import annotations

import math

__all__ = ["MAX_UTILISATION", "queue_wait_hours", "stable_capacity"]

MAX_UTILISATION = 0.85


def queue_wait_hours(
    arrivals_per_hour: float, mean_service_hours: float, scv: float, servers: int
) -> float:
    """Mean queue wait (hours) of an M/G/c queue, Allen-Cunneen: Wq(M/M/c) * (1 + scv) / 2.

    Returns ``inf`` when the queue is unstable (offered load >= servers).
    """
    load = arrivals_per_hour * mean_service_hours
    if load <= 0 or mean_service_hours <= 0:
        return 0.0
    if servers < 1 or load >= servers:
        return math.inf
    erlang_b = 1.0
    for k in range(1, servers + 1):
        erlang_b = load * erlang_b / (k + load * erlang_b)
    rho = load / servers
    erlang_c = erlang_b / (1 - rho * (1 - erlang_b))
    return erlang_c * mean_service_hours / (servers - load) * (1 + scv) / 2


def stable_capacity(
    rate: float, mean_s: float, scv: float, estimated: int | None, observed_wait: float
) -> tuple[int, float]:
    """Capacity and queue wait for pools whose busy periods the log does not show.

    At least the resources seen (``estimated``), enough to keep utilisation
    <= MAX_UTILISATION, and enough that the analytic queue wait stays within
    the waiting observed.
    """
    load = rate * mean_s
    capacity = max(1, estimated or 1, math.ceil(load / MAX_UTILISATION))
    wq = queue_wait_hours(rate, mean_s, scv, capacity)
    while wq > max(observed_wait, 0.1 * mean_s) and capacity < 10 * (estimated or 1) + 10:
        capacity += 1
        wq = queue_wait_hours(rate, mean_s, scv, capacity)
    return capacity, wq
