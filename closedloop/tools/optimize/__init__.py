"""The ``optimize`` room: CP-SAT plans checked by simulating them in the process twin.

Public API (import from here; the modules behind it may move):

- :func:`optimize_staffing` (``staffing``) -> :class:`StaffingPlan` of
  :class:`PoolAllocation`: extra staff per pool within a budget;
- :func:`optimize_shifts` (``shifts``, with ``shift_demand``, ``roster``,
  ``shift_plan``) -> :class:`ShiftPlan` of :class:`ShiftBlock`: staff per pool
  per block of the week; :func:`shift_scenario` turns a roster into simulator
  changes, :func:`block_label` names a block;
- :func:`optimize_assignment` (``assignment``) -> :class:`AssignmentPlan` with
  :class:`ActivityMove` and :class:`PoolLoad`: which pool performs which activity;
- :func:`optimize_threshold` (``threshold``) -> :class:`ThresholdPlan` with
  :class:`ThresholdScore`: an auto-decision threshold under a risk cap;
- solver set-up (``solver``): :func:`solve` and its limits, :data:`SCALE`;
- whether a simulation confirms a claim (``verdict``): :func:`check_reduction`,
  :func:`check_at_most` (every plan's ``confirmed`` and ``confirmation``).
"""

from closedloop.tools.optimize.assignment import (
    MAX_CANDIDATES_PER_POOL,
    ActivityMove,
    AssignmentPlan,
    PoolLoad,
    optimize_assignment,
)
from closedloop.tools.optimize.roster import WAIT_UNITS
from closedloop.tools.optimize.shift_plan import (
    DAYS,
    SCENARIO_DAYS,
    ShiftBlock,
    ShiftPlan,
    block_label,
    shift_scenario,
)
from closedloop.tools.optimize.shifts import optimize_shifts
from closedloop.tools.optimize.solver import (
    DETERMINISTIC_LIMIT,
    SCALE,
    TIME_LIMIT_SECONDS,
    UNSTABLE_HOURS,
    solve,
)
from closedloop.tools.optimize.staffing import PoolAllocation, StaffingPlan, optimize_staffing
from closedloop.tools.optimize.threshold import (
    MAX_THRESHOLD_CANDIDATES,
    RISK_UNITS,
    ThresholdPlan,
    ThresholdScore,
    optimize_threshold,
)
from closedloop.tools.optimize.verdict import check_at_most, check_reduction

__all__ = [
    "DAYS",
    "DETERMINISTIC_LIMIT",
    "MAX_CANDIDATES_PER_POOL",
    "MAX_THRESHOLD_CANDIDATES",
    "RISK_UNITS",
    "SCALE",
    "SCENARIO_DAYS",
    "TIME_LIMIT_SECONDS",
    "UNSTABLE_HOURS",
    "WAIT_UNITS",
    "ActivityMove",
    "AssignmentPlan",
    "PoolAllocation",
    "PoolLoad",
    "ShiftBlock",
    "ShiftPlan",
    "StaffingPlan",
    "ThresholdPlan",
    "ThresholdScore",
    "block_label",
    "check_at_most",
    "check_reduction",
    "optimize_assignment",
    "optimize_shifts",
    "optimize_staffing",
    "optimize_threshold",
    "shift_scenario",
    "solve",
]
