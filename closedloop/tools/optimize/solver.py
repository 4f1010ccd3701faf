"""Shared set-up of the CP-SAT optimisers of :mod:`closedloop.tools.optimize`.

Integer scales and limits, the deterministic solver call (one worker, a seed and
a deterministic time limit, wall clock capped at 10 s, so the same inputs give
the same plan) and the cap on unstable queues.
"""

from __future__ import annotations

import math

from ortools.sat.python import cp_model

__all__ = [
    "DETERMINISTIC_LIMIT", "SCALE", "TIME_LIMIT_SECONDS", "UNSTABLE_HOURS", "capped_wait", "solve",
]  # fmt: skip

SCALE = 1000  # integer cost units per hour of waiting per case (resolution 3.6 s)
UNSTABLE_HOURS = 100_000.0  # cost of a level whose queue would grow without bound
TIME_LIMIT_SECONDS = 10.0
DETERMINISTIC_LIMIT = 5.0  # CP-SAT's deterministic time units: the same stop point on any machine


def solve(model: cp_model.CpModel, seed: int) -> tuple[cp_model.CpSolver, int]:
    """Solve deterministically: one worker, ``seed``, deterministic time limit, <= 10 s wall."""
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = seed
    solver.parameters.max_deterministic_time = DETERMINISTIC_LIMIT
    solver.parameters.max_time_in_seconds = TIME_LIMIT_SECONDS
    return solver, solver.solve(model)


def capped_wait(hours: float) -> float:
    """A queue wait the solver can price: infinite (unstable) waits cost UNSTABLE_HOURS."""
    return hours if math.isfinite(hours) else UNSTABLE_HOURS
