"""Switchback trials: the Executor toggles an approved change on and off by time blocks.

When treated and untreated cases share people, a split rollout sees only part of
a change's effect (the untreated cases speed up too). A change the system can
switch on and off (a threshold, a rule, a routing) is therefore trialled by
time: every case arriving in a block lives in the same world, on or off, and
on-blocks minus off-blocks is the total effect (``tools.measure.switchback``).

The trial is sized from what the loop knows, never from a sandbox: it spans the
prediction window (``prediction_days``, what the Planner predicted over), blocks
last at least a day and at least the log's median cycle time (carry-over), and
the number of on-blocks fits the scope's write cap per plan. Block 0 is the
change as executed; the last block is on, so a kept change stays live.
Toggles are writes like any other: an on-block re-applies the approved action
with its own idempotency key (``-b<block>``), an off-block sends the live
execution's stored compensation and checks by read-back that it is gone.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import pandas as pd

from closedloop.agents.context import LoopContext
from closedloop.contracts import SwitchbackSchedule, SwitchBlock, SwitchStep
from closedloop.governance import DEFAULT_CAPS, policy_for
from closedloop.store.db import transaction
from closedloop.store.models import Plan
from closedloop.tools.act import EventPosition
from closedloop.tools.errors import ApiCallError, NotAllowedError
from closedloop.tools.log import CASE, TIMESTAMP

MIN_BLOCK_HOURS = 24.0
MIN_BLOCKS = 4
DUE_SLACK_HOURS = 0.05  # a block this close to its end counts as ended (3 minutes)
DRAWS = 200  # random orders tried for one that fits the write cap


def cycle_hours(frame: pd.DataFrame | None) -> pd.Series | None:
    """First-to-last event span of each of the log's cases, hours (None without a log)."""
    if frame is None or frame.empty:
        return None
    span = frame.groupby(CASE)[TIMESTAMP].agg(["min", "max"])
    return (span["max"] - span["min"]).dt.total_seconds() / 3600.0


def median_cycle_hours(frame: pd.DataFrame | None) -> float | None:
    """Median first-to-last event span of the log's cases (None without a log)."""
    hours = cycle_hours(frame)
    return None if hours is None else float(hours.median())


def _order(blocks: int, block_hours: float, rng: random.Random) -> tuple[list[bool], list[tuple[int, int]]]:
    """On/off per block: pairs one on, one off, in random order. Where the window holds two
    whole weeks of day-long blocks, a block is paired with the same weekday a week later, so
    weekdays are balanced between the arms; else with its neighbour. Block 0 is on and the
    last block on."""
    week = round(7 * 24 / block_hours)
    weekly = abs(week * block_hours - 7 * 24) < 1e-6 and blocks == 2 * week
    pairs = [(i, i + week) for i in range(week)] if weekly else [
        (i, i + 1) for i in range(0, blocks, 2)]
    order = [False] * blocks
    for a, b in pairs:
        first_on = rng.random() < 0.5
        if a == 0 or b == 0:
            first_on = a == 0
        if a == blocks - 1 or b == blocks - 1:
            first_on = a == blocks - 1
        order[a], order[b] = first_on, not first_on
    return order, pairs


def writes_needed(order: list[bool]) -> int:
    """Writes a block order takes after block 0: one per switch from off to on (a block in the
    same state as the one before needs no write; switching off sends the compensation)."""
    return sum(1 for before, now in pairwise(order) if now and not before)


def plan_schedule(
    window_hours: float, typical_cycle_hours: float | None, writes_left: int, seed: int
) -> SwitchbackSchedule | None:
    """The block schedule of a switchback trial over ``window_hours`` (None if it cannot hold
    at least two on- and two off-blocks).

    ``writes_left``: how many more writes the plan may make (see :func:`writes_needed`).
    Blocks come in pairs, one on and one off in random order (a paired design balances slow
    drifts such as weekdays); the first pair starts on (the change is live), the last ends on
    (a kept change stays live). The most blocks that fit the window and the writes are used.
    """
    typical = typical_cycle_hours or 0.0
    blocks = int(window_hours // max(MIN_BLOCK_HOURS, typical))
    blocks -= blocks % 2
    rng = random.Random(seed)
    while blocks >= MIN_BLOCKS:
        block_hours = window_hours / blocks
        fits = [d for d in (_order(blocks, block_hours, rng) for _ in range(DRAWS))
                if writes_needed(d[0]) <= writes_left]
        if fits:  # the most alternation the writes allow: time trends then cancel best
            most = max(writes_needed(o) for o, _ in fits)
            order, pairs = next(d for d in fits if writes_needed(d[0]) == most)
            break
        blocks -= 2
    else:
        return None
    washout = min(block_hours / 2, typical) if typical else block_hours / 4
    why = (
        f"{blocks} blocks of {block_hours:.1f} h over the {window_hours / 24:g}-day window "
        f"({order.count(True)} on, {order.count(False)} off, in random pairs); blocks at "
        f"least a day and the log's median cycle time ({typical:.1f} h) long, arrivals in the "
        f"first {washout:.1f} h of a block left out (carry-over); {writes_needed(order)} more "
        f"writes, within the {writes_left} the scope's cap per plan leaves"
    )
    return SwitchbackSchedule(block_hours=block_hours, washout_hours=washout, plan=order,
                              pairs=pairs, why=why)


def writes_left(ctx: LoopContext, plan_id: int, done: int) -> int:
    """How many more writes the plan's scope allows it after ``done`` (its cap per plan)."""
    with transaction(ctx.engine) as session:
        plan = session.get(Plan, plan_id)
        caps = {**DEFAULT_CAPS, **policy_for(session, plan.scope).caps}
    return max(int(caps["max_writes_per_plan"]) - done, 0)


def system_time(system: Any, position: dict[str, Any], fallback: datetime) -> datetime:
    """The system's time as its events show it: the last event logged after ``position``
    (``fallback`` when none was): a toggle sent now takes effect for every later arrival."""
    rows = system.read_events(EventPosition.model_validate(position)).rows
    stamps = [pd.Timestamp(r[TIMESTAMP]) for r in rows if r.get(TIMESTAMP) is not None]
    if not stamps:
        return fallback
    latest = max(s.tz_localize("UTC") if s.tzinfo is None else s for s in stamps)
    return max(latest.to_pydatetime(), fallback)


def _hours(a: datetime, b: datetime) -> float:
    return (pd.Timestamp(b) - pd.Timestamp(a)).total_seconds() / 3600.0


def advance(
    ctx: LoopContext,
    run_id: str,
    plan_id: int,
    api_url: str,
    catalog_version: str,
    schedule: SwitchbackSchedule,
    position: dict[str, Any],
    advanced_hours: float | None = None,
) -> tuple[SwitchbackSchedule, float, list[SwitchStep]]:
    """Begin the next block if its time has come (toggle the change), or finish the trial.

    The time is the later of the system's last event and the block's start plus the hours
    the resumes' drivers said the world ran (``advanced_hours`` this time): events lag the
    clock when the system is quiet (nights). Returns the schedule as it now stands, the
    hours the world must run on before the next call (0 once finished) and the step records
    of what was done.
    """
    from closedloop.agents.executor import execute_plan_action, undo_execution

    last = schedule.blocks[-1]
    reported = schedule.reported_hours + (advanced_hours or 0.0)
    system = ctx.system(catalog_version, api_url)
    said = (pd.Timestamp(last.start) + pd.Timedelta(hours=reported)).to_pydatetime()
    now = max(system_time(system, position, last.start), said)
    due = _hours(now, pd.Timestamp(last.start) + pd.Timedelta(hours=schedule.block_hours))
    if due > DUE_SLACK_HOURS:
        return schedule.model_copy(update={"reported_hours": reported}), due, []
    schedule = schedule.model_copy(update={"reported_hours": 0.0})
    k = len(schedule.blocks)
    if k == len(schedule.plan):
        done = schedule.model_copy(update={"finished": True})
        step = SwitchStep(block=k, on=None, at=now.isoformat(), note="trial finished")
        return done, 0.0, [step]
    on = schedule.plan[k]
    live = next(b.execution_id for b in reversed(schedule.blocks) if b.on)
    try:
        if on == last.on:  # the same state goes on: a new block, no write
            execution_id = last.execution_id
        elif on:
            record = execute_plan_action(ctx, run_id, plan_id, api_url, 0, catalog_version, block=k)
            execution_id = record["execution_id"]
        else:
            undone = undo_execution(ctx, live, api_url, catalog_version)
            if not undone["verified_gone"]:
                raise ApiCallError(f"execution {live} is still live after its compensation")
            execution_id = live
    except (ApiCallError, NotAllowedError) as exc:
        stopped = schedule.model_copy(
            update={"finished": True, "stopped": f"block {k} ({'on' if on else 'off'}): {exc}"}
        )
        step = SwitchStep(block=k, on=on, at=now.isoformat(), note=f"trial stopped: {exc}")
        return stopped, 0.0, [step]
    block = SwitchBlock(index=k, on=on, start=now, execution_id=execution_id)
    moved = schedule.model_copy(update={"blocks": [*schedule.blocks, block]})
    step = SwitchStep(block=k, on=on, at=now.isoformat(), execution_id=execution_id)
    return moved, schedule.block_hours, [step]


def start(
    ctx: LoopContext,
    plan_id: int,
    execution_id: int,
    began: datetime,
    frame: pd.DataFrame | None,
) -> SwitchbackSchedule | None:
    """The trial's schedule with block 0 begun at ``began`` by ``execution_id`` (None when
    the window and the caps leave too few blocks)."""
    schedule = plan_schedule(
        ctx.settings.prediction_days * 24.0,
        median_cycle_hours(frame),
        writes_left(ctx, plan_id, 1),
        ctx.settings.seed + plan_id,
    )
    if schedule is None:
        return None
    block = SwitchBlock(index=0, on=True, start=began, execution_id=execution_id)
    return schedule.model_copy(update={"blocks": [block]})


def windows(schedule: SwitchbackSchedule, end: datetime) -> list[tuple[datetime, datetime, bool]]:
    """The blocks begun as (start, end, on), one per block in order: each ends where the next
    begins, the last at ``end`` (a block that has not run yet lasts a second, holding no case)."""
    starts = [b.start for b in schedule.blocks]
    ends = [*starts[1:], end]
    second = timedelta(seconds=1)
    return [(b.start, max(e, b.start + second), b.on)
            for b, e in zip(schedule.blocks, ends, strict=True)]


def begun_pairs(schedule: SwitchbackSchedule) -> list[tuple[int, int]]:
    """The schedule's randomisation pairs whose two blocks have both begun."""
    n = len(schedule.blocks)
    return [(a, b) for a, b in schedule.pairs if a < n and b < n]


def usable(schedule: SwitchbackSchedule) -> bool:
    """Whether the blocks begun can measure anything: two on and two off at least."""
    ons = sum(b.on for b in schedule.blocks)
    return ons >= 2 and len(schedule.blocks) - ons >= 2
