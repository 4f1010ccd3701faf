"""State of the closed-loop graph (ids into the store; the store holds the rest).

``steps`` holds the step records of ``closedloop.contracts`` as their
``model_dump()`` (plain JSON in the checkpoints); ``parse_steps`` types them again. ``catalog_version``
binds the run to its connector's catalog (stored in the store); ``events_position`` is
where observing stopped in the event feed, ``watch_position`` where it stood when the
change was made (an ``EventPosition`` dump).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from closedloop.contracts import RunStatus

StepRecord = dict[str, Any]
"""One dumped step model (``ObserveStep``, ``PlanStep``... of ``closedloop.contracts``)."""


class LoopState(TypedDict, total=False):
    """What flows between nodes. No defaults here: TypedDict defaults are never applied."""

    run_id: str
    scope: str
    api_url: str
    catalog_version: str
    history: str | None  # an event log file read instead of the feed's history (None: the feed)
    dataset_id: int
    mining_run_id: int
    events_position: dict[str, Any]
    watch_position: dict[str, Any]
    opportunity_ids: list[int]
    plan_id: int | None
    approval_id: int | None
    gate: str
    decision: str
    execution_ids: list[int]
    switchback: dict[str, Any] | None  # a running switchback trial (``SwitchbackSchedule`` dump)
    advanced_hours: float | None  # how long the world ran before the last resume, as its driver said
    wait_hours: float | None  # how long the world should run before the next resume (None: as long as it likes)
    evidence_checks: int
    verdict_id: int | None
    outcome: RunStatus
    steps: Annotated[list[StepRecord], operator.add]
