"""Simulate forward from a moment: the backlog open then, new arrivals, observed up to an end.

:func:`simulate_forward` is what a forecast from a log cut at ``start``
looks like: the twin's open cases (``ProcessTwin.open_cases``, each resumed
after the activity it completed last) are in the system at ``start``, new
cases arrive on the twin's calendar, and the simulated cases that started at
or after ``start`` are observed the way a log cut at ``until`` shows them
(steps completed by then; a case's cycle time from its first recorded start
to its last recorded end, open cases as far as they got).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from closedloop.tools.twin.calendar import hours_since, week_epoch
from closedloop.tools.twin.engine import run
from closedloop.tools.twin.model import compile_twin
from closedloop.tools.twin.process_twin import ProcessTwin
from closedloop.tools.twin.routing import START as ROUTE_START
from closedloop.tools.twin.scenarios import AsIs, Scenario, compile_scenario
from closedloop.tools.twin.steps import Cases, draw_cases

__all__ = ["ForwardRun", "simulate_forward"]

MAX_FORWARD_CASES = 200_000
SLACK = 1.5  # more arrivals drawn than expected, so the window is always filled


@dataclass
class ForwardRun:
    """What a log cut at ``until`` would show of the cases started in the window."""

    mean_cycle_hours: float  # nan when no case started in the window
    cases: int
    open_at_end: int
    backlog: int


def _backlog(twin: ProcessTwin, index: dict[str, int]) -> list[tuple[int, int, int]]:
    out = []
    for oc in twin.open_cases:
        if oc.activity not in index:
            continue
        prev = index.get(oc.previous, -1) if oc.previous not in (None, ROUTE_START) else -1
        out.append((prev, index[oc.activity], oc.visit))
    return out


def simulate_forward(
    twin: ProcessTwin,
    start: datetime,
    until: datetime,
    seed: int = 0,
    replication: int = 0,
    backlog: bool = True,
    scenario: Scenario | None = None,
) -> ForwardRun:
    """One forward run from ``start`` (with the open cases as backlog) observed up to ``until``."""
    m = compile_twin(twin)
    settings = compile_scenario(twin, m, scenario if scenario is not None else AsIs())
    epoch = week_epoch(start)
    t0, t1 = hours_since(epoch, start), hours_since(epoch, until)
    clock = m.arrival_clock
    expected = (clock.forward(t1) - clock.forward(t0)) / max(float(m.arrival_units.mean()), 1e-9)
    n_new = int(min(MAX_FORWARD_CASES, max(10, SLACK * expected + 20)))
    new = draw_cases(m, n_new, t0, (seed, replication))
    resume = _backlog(twin, {a: i for i, a in enumerate(m.acts)}) if backlog else []
    nb = len(resume)
    rng = np.random.default_rng([seed, replication, 7])
    cases = Cases(
        arrivals=np.r_[np.full(nb, t0), new.arrivals],
        rows=rng.integers(0, max(m.n_rows, 1), nb).tolist() + new.rows,
        u_share=rng.random(nb).tolist() + new.u_share,
        seed=(seed, replication),
        resume=[*resume, *([None] * n_new)],
    )
    out = run(m, settings, cases, 0)
    st = out.steps
    steps = pd.DataFrame(
        {"case": st.case, "start": out.step_start, "end": out.step_end}
    )
    steps = steps[(steps["case"] >= nb) & (steps["end"] <= t1)]
    if not twin.has_start_times:
        steps["start"] = steps["end"]  # the log shows completions only
    by_case = steps.groupby("case")
    first, last = by_case["start"].min(), by_case["end"].max()
    inside = first[(first >= t0) & (first < t1)].index
    cycle = (last[inside] - first[inside]).to_numpy(dtype=float)
    ends = out.end[inside.to_numpy(dtype=np.int64)] if len(inside) else np.zeros(0)
    return ForwardRun(
        mean_cycle_hours=float(cycle.mean()) if len(cycle) else float("nan"),
        cases=len(cycle),
        open_at_end=int((ends > t1).sum()),
        backlog=nb,
    )
