"""The shift roster problem of some pools, solved with OR-Tools CP-SAT.

:class:`Roster` holds the per-block demand (:mod:`closedloop.tools.optimize.shift_demand`),
staff caps and SLA floors of the pools to plan, predicts each block's queue
wait analytically (M/G/c) and finds staff on duty per block from shift starts:
fewest staff hours first, or least waiting (``objective``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from ortools.sat.python import cp_model

from closedloop.tools.errors import InfeasibleError
from closedloop.tools.optimize.shift_demand import PoolDemand, block_wait
from closedloop.tools.optimize.solver import capped_wait, solve
from closedloop.tools.twin import HOURS_PER_WEEK

__all__ = ["WAIT_UNITS", "Roster"]

WAIT_UNITS = 100  # integer units per hour of waiting (resolution 36 s)


@dataclass
class Roster:
    """The shift problem of some pools: demand, limits, SLA floors; solves with CP-SAT."""

    demand: dict[str, PoolDemand]
    caps: dict[str, int]
    floors: dict[str, list[int]]
    block_hours: int
    shift_hours: int
    seed: int

    @property
    def pools(self) -> list[str]:
        return sorted(self.demand)

    @property
    def blocks(self) -> int:
        return HOURS_PER_WEEK // self.block_hours

    def rate(self, p: str, b: int) -> float:
        return float(self.demand[p].per_block[b]) / self.block_hours

    def wait(self, p: str, b: int, staff: int) -> float | None:
        """Analytic queue wait per item in an open block (inf when unstaffed with work)."""
        if not self.demand[p].open[b]:
            return None
        if staff <= 0:
            return 0.0 if self.rate(p, b) <= 0 else math.inf
        return block_wait(self.rate(p, b), self.demand[p], staff)

    def mean_wait(self, staffing: dict[str, np.ndarray]) -> float:
        total = weight = 0.0
        for p in self.pools:
            for b in range(self.blocks):
                w, n = self.wait(p, b, int(staffing[p][b])), self.demand[p].per_block[b]
                if w is not None and n > 0:
                    total, weight = total + float(n) * capped_wait(w), weight + float(n)
        return total / weight if weight else 0.0

    def solve(
        self, max_hours: int | None, objective: Literal["cost", "waiting"]
    ) -> tuple[int, dict[str, np.ndarray], dict[str, np.ndarray], int] | None:
        """(status, staff on duty, shift starts, staff hours) or None when infeasible."""
        model = cp_model.CpModel()
        nb, span = self.blocks, self.shift_hours // self.block_hours
        starts = {p: [model.new_int_var(0, self.caps[p], f"start[{p},{b}]") for b in range(nb)]
                  for p in self.pools}  # fmt: skip
        duty = {p: [sum(starts[p][(b - k) % nb] for k in range(span)) for b in range(nb)]
                for p in self.pools}  # fmt: skip
        wait_terms, worst = [], 1
        for p in self.pools:
            for b in range(nb):
                model.add(duty[p][b] <= self.caps[p])
                if not self.demand[p].open[b]:
                    continue
                levels = range(self.floors[p][b], self.caps[p] + 1)
                pick = [model.new_bool_var(f"level[{p},{b},{c}]") for c in levels]
                model.add_exactly_one(pick)
                model.add(duty[p][b] == sum(c * x for c, x in zip(levels, pick, strict=True)))
                units = [round(self.demand[p].per_block[b] * capped_wait(self.wait(p, b, c)) * WAIT_UNITS)
                         for c in levels]  # fmt: skip
                wait_terms += [u * x for u, x in zip(units, pick, strict=True)]
                worst += max(units, default=0)
        hours = sum(sum(s) for s in starts.values()) * self.shift_hours
        if max_hours is not None:
            model.add(hours <= max_hours)
        waiting = sum(wait_terms)
        if objective == "cost":  # fewest staff hours first, then the least waiting
            model.minimize(hours * worst + waiting)
        else:
            model.minimize(waiting * (sum(self.caps.values()) * nb * self.shift_hours + 1) + hours)
        solver, status = solve(model, self.seed)
        if status == cp_model.INFEASIBLE:
            return None
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            raise InfeasibleError(f"CP-SAT found no shift plan (status {solver.status_name(status)})")
        staff = {p: np.array([int(solver.value(duty[p][b])) for b in range(nb)]) for p in self.pools}
        begin = {p: np.array([int(solver.value(starts[p][b])) for b in range(nb)]) for p in self.pools}
        return status, staff, begin, int(solver.value(hours))
