"""The result side of shift planning: plan models, block labels, the roster as a scenario.

:class:`ShiftPlan` (with one :class:`ShiftBlock` per staffed or open block) is
what :func:`~closedloop.tools.optimize.shifts.optimize_shifts` returns;
:func:`build_shift_plan` fills it from a solved :class:`~closedloop.tools.optimize.roster.Roster`;
:func:`shift_scenario` turns a roster into ``shift_capacity`` changes for the
twin's simulator.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from ortools.sat.python import cp_model
from pydantic import BaseModel, Field

from closedloop.tools.optimize.roster import Roster
from closedloop.tools.twin import DAYS as SCENARIO_DAYS
from closedloop.tools.twin import (
    AsIs,
    Combined,
    Estimate,
    SetShiftCapacity,
    SimulationResult,
)

__all__ = [
    "DAYS", "SCENARIO_DAYS", "ShiftBlock", "ShiftPlan", "block_label", "build_shift_plan",
    "finite_or_none", "shift_scenario",
]  # fmt: skip

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class ShiftBlock(BaseModel):
    """Staff of one pool in one block of the week, observed and planned."""

    pool: str
    block: str = Field(description="block of the week, e.g. 'Mon 08-12' (UTC)")
    open: bool = Field(description="the pool works in this block on the twin's calendar")
    arrivals_per_week: float = Field(description="work items to serve in the block per week")
    offered_load: float = Field(description="mean busy staff the block's work needs")
    staff_as_is: int = Field(description="distinct people active in the block, weekly mean")
    staff: int
    utilisation: float | None
    predicted_wait_as_is_hours: float | None = Field(description="analytic queue wait per item")
    predicted_wait_hours: float | None
    simulated_wait_as_is_hours: Estimate | None = None
    simulated_wait_hours: Estimate | None = None


class ShiftPlan(BaseModel):
    """A shift roster: staff per pool per block, its cost, predicted and simulated waits."""

    status: Literal["optimal", "feasible", "infeasible"]
    message: str
    block_hours: int
    shift_hours: int
    cost_per_staff_hour: float
    budget_per_week: float | None
    max_utilisation: float
    max_wait_hours: float | None
    weeks_observed: float
    pools: list[str]
    max_staff: dict[str, int]
    shift_starts: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="pool -> block -> people starting a shift there"
    )
    staff_per_shift: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="pool -> block -> people on duty (blocks with staff)"
    )
    blocks: list[ShiftBlock] = Field(default_factory=list)
    staff_hours_as_is_per_week: float
    staff_hours_per_week: float | None = None
    cost_as_is_per_week: float
    cost_per_week: float | None = None
    cost_delta_pct: float | None = None
    predicted_wait_as_is_hours: float = Field(description="analytic, mean per item")
    predicted_wait_hours: float | None = None
    simulated_wait_as_is_hours: Estimate | None = Field(
        None, description="per-block queue check, observed roster: mean wait per item"
    )
    simulated_wait_hours: Estimate | None = Field(None, description="same, planned roster")
    simulated_wait_delta_hours: Estimate | None = None
    scenario: Combined | AsIs | None = Field(
        None, description="the roster as shift_capacity changes"
    )
    simulation: SimulationResult | None = Field(None, description="twin as fitted vs the roster")
    simulated_cycle_time_delta_pct: Estimate | None = None
    simulated_waiting_per_case_delta_hours: Estimate | None = None
    simulated_pool_wait_hours: dict[str, Estimate] = Field(
        default_factory=dict, description="twin simulation: queue wait per visit, by pool"
    )
    sla_violations: list[str] = Field(default_factory=list)
    confirmed: bool | None = Field(
        None, description="both simulations (per block, whole process) support the SLA with "
        "their whole 95 % intervals (and, for objective 'waiting', a waiting reduction)"
    )
    confirmation: str | None = Field(None, description="why the plan is confirmed or not, in words")
    notes: list[str] = Field(default_factory=list)


def block_label(block: int, block_hours: int) -> str:
    """A block of the week in words, e.g. ``Mon 08-12`` (UTC)."""
    hour = block * block_hours
    day, start = divmod(hour, 24)
    return f"{DAYS[day]} {start:02d}-{start + block_hours:02d}"


def finite_or_none(hours: float | None) -> float | None:
    """The hours, or None when missing or infinite (JSON has no infinity)."""
    return None if hours is None or not math.isfinite(hours) else hours


def build_shift_plan(
    base: ShiftPlan, problem: Roster, status: int, staff: dict[str, np.ndarray],
    begin: dict[str, np.ndarray], hours: int, as_is: dict[str, np.ndarray],
) -> ShiftPlan:  # fmt: skip
    """``base`` completed with a solved roster: blocks, shift starts, cost and predicted waits."""
    bh, nb = problem.block_hours, problem.blocks
    blocks: list[ShiftBlock] = []
    for p in problem.pools:
        d = problem.demand[p]
        for b in range(nb):
            if not d.open[b] and staff[p][b] == 0:
                continue
            load = problem.rate(p, b) * d.mean_service
            blocks.append(ShiftBlock(
                pool=p, block=block_label(b, bh), open=bool(d.open[b]),
                arrivals_per_week=float(d.per_block[b]), offered_load=float(load),
                staff_as_is=int(as_is[p][b]), staff=int(staff[p][b]),
                utilisation=float(load / staff[p][b]) if staff[p][b] else None,
                predicted_wait_as_is_hours=finite_or_none(problem.wait(p, b, int(as_is[p][b]))),
                predicted_wait_hours=finite_or_none(problem.wait(p, b, int(staff[p][b]))),
            ))  # fmt: skip
    label = "optimal" if status == cp_model.OPTIMAL else "feasible"
    as_is_hours = base.staff_hours_as_is_per_week
    delta_pct = 100.0 * (hours - as_is_hours) / as_is_hours if as_is_hours else 0.0
    cost = hours * base.cost_per_staff_hour
    return base.model_copy(update={
        "status": label,
        "message": (f"{label}: {hours:g} staff hours per week (cost {cost:g}) vs {as_is_hours:g} "
                    f"as observed ({delta_pct:+.1f}%); every open block meets the SLA analytically"),
        "shift_starts": {p: {block_label(b, bh): int(begin[p][b]) for b in range(nb) if begin[p][b]}
                         for p in problem.pools},
        "staff_per_shift": {p: {block_label(b, bh): int(staff[p][b]) for b in range(nb)
                                if staff[p][b]} for p in problem.pools},
        "blocks": blocks, "staff_hours_per_week": float(hours), "cost_per_week": cost,
        "cost_delta_pct": delta_pct, "predicted_wait_hours": problem.mean_wait(staff),
        "notes": list(base.notes),
    })  # fmt: skip


def shift_scenario(staff: dict[str, np.ndarray], block_hours: int) -> Combined | AsIs:
    """A roster (pool -> staff per block of the week, UTC) as ``shift_capacity`` changes.

    Consecutive blocks of one day with the same staff become one change. Staffed
    blocks come first: the simulator rejects a change that leaves a pool with no
    hour of work at that point. Pools with no staff at all keep their hours.
    """
    staffed: list[SetShiftCapacity] = []
    closed: list[SetShiftCapacity] = []
    per_day = 24 // block_hours
    for p in sorted(staff):
        if not np.any(staff[p]):
            continue
        for day in range(7):
            row = [int(c) for c in staff[p][day * per_day : (day + 1) * per_day]]
            b = 0
            while b < per_day:
                end = b
                while end + 1 < per_day and row[end + 1] == row[b]:
                    end += 1
                (staffed if row[b] else closed).append(SetShiftCapacity(
                    activity_or_pool=p, days=[SCENARIO_DAYS[day]], from_hour=b * block_hours,
                    to_hour=(end + 1) * block_hours, capacity=row[b]))  # fmt: skip
                b = end + 1
    changes = staffed + closed
    return Combined(changes=changes) if changes else AsIs()
