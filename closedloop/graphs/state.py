"""State of the closed-loop graph (ids into the store; the store holds the rest)."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class LoopState(TypedDict, total=False):
    """What flows between nodes. No defaults here: TypedDict defaults are never applied."""

    run_id: str
    scope: str
    api_url: str
    dataset_id: int
    mining_run_id: int
    observed_until_seq: int
    opportunity_ids: list[int]
    plan_id: int | None
    approval_id: int | None
    gate: str
    decision: str
    execution_ids: list[int]
    evidence_checks: int
    verdict_id: int | None
    outcome: str
    steps: Annotated[list[dict[str, Any]], operator.add]
