"""Clip cases at the milestone the connector declares as their end for the KPIs.

An order-to-cash case runs on for weeks after delivery while the customer
pays; nothing the loop can change touches that wait, yet it would dominate
every cycle time, and a log of a few weeks shows it only for the few
customers who paid early. ``x-closedloop-events.case_scope.until`` names the
milestone; each case keeps its events up to and including its first
milestone event, in history and after a change alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from pydantic import BaseModel

from closedloop.tools.connect.annotations import CaseScope
from closedloop.tools.log.columns import ACTIVITY, CASE, TIMESTAMP

__all__ = ["ClippedRows", "clip_to_scope"]


class ClippedRows(BaseModel):
    """Event rows after clipping, and how many were left out."""

    rows: list[dict[str, Any]]
    dropped: int
    cases_ended: int


def clip_to_scope(rows: Sequence[dict[str, Any]], scope: CaseScope | None) -> ClippedRows:
    """Keep each case's events up to its first event of ``scope.until`` (all of them without one).

    Events at the same instant as the milestone stay (their order is unknown).
    Rows keep their order and content; a row without a parseable timestamp is
    kept, since it cannot be placed after the milestone.
    """
    if scope is None or not rows:
        return ClippedRows(rows=list(rows), dropped=0, cases_ended=0)
    frame = pd.DataFrame({
        "case": [r.get(CASE) for r in rows],
        "activity": [r.get(ACTIVITY) for r in rows],
        "at": pd.to_datetime([r.get(TIMESTAMP) for r in rows], utc=True, errors="coerce",
                             format="ISO8601"),
    })
    milestone = frame[frame["activity"].isin(set(scope.until))].groupby("case")["at"].min()
    ends = frame["case"].map(milestone)
    keep = ends.isna() | frame["at"].isna() | (frame["at"] <= ends)
    kept = [row for row, k in zip(rows, keep.to_numpy(), strict=True) if k]
    return ClippedRows(rows=kept, dropped=len(rows) - len(kept), cases_ended=len(milestone))
