"""Which columns of a canonical frame describe the case rather than the event."""

from __future__ import annotations

import pandas as pd

from closedloop.tools.log.columns import CASE, CASE_PREFIX, STANDARD_COLUMNS

__all__ = ["case_level_columns"]


def case_level_columns(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """``(case_columns, constant_event_columns)`` of a canonical frame.

    ``case_columns`` are the ``case:`` columns (the case id aside);
    ``constant_event_columns`` are the other non-standard, non-private event
    attributes that never vary within a case and have no ``case:`` twin, so they
    can serve as case attributes too.
    """
    cols = [c for c in frame.columns if c.startswith(CASE_PREFIX) and c != CASE]
    others = [
        c for c in frame.columns
        if not c.startswith((CASE_PREFIX, "_")) and c not in STANDARD_COLUMNS
        and f"{CASE_PREFIX}{c}" not in cols
    ]  # fmt: skip
    if not others:
        return cols, []
    varying = frame.groupby(CASE, sort=False)[others].nunique(dropna=True).max()
    return cols, [c for c in others if varying[c] <= 1]
