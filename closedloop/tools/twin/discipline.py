"""Which cases a pool serves first: the queue discipline, learned from who overtook whom.

A twin that serves every queue first come, first served misreads a world
that serves some cases first (urgent tickets, key accounts): under load the
favoured cases pass the queue and the others wait much longer, so the mean
cycle time of the cases a log cut at some moment shows, and every what-if
that relieves the queue, depend on the discipline (measured: the helpdesk
sandbox under overload, backtest +70 % with first come, first served).

:func:`discover_queue_priority` reads the discipline from the log, in the
spirit of Lashkevich et al. (2023), "Discovery of case prioritisation rules
from event logs": two work items of one pool *competed* when one became
ready while the other was still waiting; the later one *overtook* when it
started first. First come, first served gives almost no overtakes; noise
(extraneous delays read as waiting, several pools on one activity) gives
overtakes in every direction. A case attribute value whose cases overtake
the others far more often than they are overtaken, and more often than
cases overtake their own kind, is served first. Only a clear asymmetry on
enough competing pairs counts; otherwise the twin stays first come, first
served. Two classes only (the value served first, then everyone else).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.log.columns import CASE, CASE_PREFIX
from closedloop.tools.twin.frame import plain

__all__ = ["QueuePriority", "discover_queue_priority"]

LOOK_BACK = 400  # competing items compared per work item (the queue ahead of it)
MIN_PAIRS = 50  # competing pairs each way before a rate counts
MIN_OVERTAKE = 0.5  # the favoured value passes at least half of the earlier others...
MIN_MARGIN = 0.3  # ...and that many points more than it is passed or cases pass their own kind
MAX_VALUES = 12  # attributes with more distinct values are not disciplines
MAX_ITEMS = 50_000  # per pool, the latest items (keeps the cost linear on huge logs)


class QueuePriority(BaseModel):
    """Cases of ``segment`` are served before the others in every pool (then FIFO)."""

    attribute: str
    value: Any
    segment: str = Field(description="the condition, e.g. priority == 'high'")
    overtakes: float = Field(description="share of competing pairs the segment's later case won")
    overtaken: float = Field(description="share the others' later case won against the segment")
    same_kind: float = Field(description="share won by the later case among cases of one kind")
    pairs: int = Field(description="competing pairs behind these shares")

    def describe(self) -> str:
        """One line for the twin's notes."""
        return (f"queues serve {self.segment} first: its cases passed {self.overtakes:.0%} of "
                f"earlier waiting cases, were passed by {self.overtaken:.0%}, and cases of one "
                f"kind passed each other {self.same_kind:.0%} ({self.pairs} competing pairs)")  # fmt: skip


def _competing_pairs(
    ready: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(earlier, later, later started first) for items that waited together, by index."""
    order = np.argsort(ready, kind="stable")
    r, s = ready[order], start[order]
    earlier, later, won = [], [], []
    for k in range(1, min(LOOK_BACK, len(r)) + 1):
        i, j = np.arange(len(r) - k), np.arange(k, len(r))
        together = (r[i] < r[j]) & (s[i] > r[j])  # i still waited when j became ready
        earlier.append(order[i[together]])
        later.append(order[j[together]])
        won.append(s[j[together]] < s[i[together]])
    if not earlier:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=bool)
    return np.concatenate(earlier), np.concatenate(later), np.concatenate(won)


def _candidate_columns(df: pd.DataFrame, names: list[str]) -> list[tuple[str, str]]:
    """(attribute name, frame column) of few-valued attributes constant within each case."""
    out = []
    for name in names:
        col = f"{CASE_PREFIX}{name}" if f"{CASE_PREFIX}{name}" in df.columns else name
        if col not in df.columns or not 2 <= df[col].nunique(dropna=True) <= MAX_VALUES:
            continue
        if df.groupby(CASE, sort=False)[col].nunique(dropna=True).max() <= 1:
            out.append((name, col))
    return out


def discover_queue_priority(
    df: pd.DataFrame, attributes: list[str], ready: str, start: str, pool: str
) -> QueuePriority | None:
    """The case segment the pools serve first, or None (first come, first served).

    ``df`` is the twin's prepared frame; ``ready``, ``start`` and ``pool``
    name its columns of the hour each item became ready (the previous step's
    end), the hour it started and the pool that did it; ``attributes`` are
    the twin's case attribute names.
    """
    columns = _candidate_columns(df, attributes)
    if not columns:
        return None
    pairs = []
    for _, rows in df.groupby(pool, sort=False):
        rows = rows.iloc[-MAX_ITEMS:]
        e, later, won = _competing_pairs(rows[ready].to_numpy(float), rows[start].to_numpy(float))
        if len(e):
            pairs.append((rows, e, later, won))
    if not pairs:
        return None
    best: tuple[float, QueuePriority] | None = None
    for name, col in columns:
        for value in df[col].dropna().unique().tolist():
            n_fav = w_fav = n_oth = w_oth = n_same = w_same = 0
            for rows, e, later, won in pairs:
                is_v = (rows[col] == value).to_numpy()
                ve, vl = is_v[e], is_v[later]
                fav, oth, same = vl & ~ve, ve & ~vl, ve == vl
                n_fav, w_fav = n_fav + int(fav.sum()), w_fav + int(won[fav].sum())
                n_oth, w_oth = n_oth + int(oth.sum()), w_oth + int(won[oth].sum())
                n_same, w_same = n_same + int(same.sum()), w_same + int(won[same].sum())
            if min(n_fav, n_oth, n_same) < MIN_PAIRS:
                continue
            over, under, kind = w_fav / n_fav, w_oth / n_oth, w_same / n_same
            margin = over - max(under, kind)
            if over < MIN_OVERTAKE or margin < MIN_MARGIN:
                continue
            found = QueuePriority(
                attribute=name, value=plain(value), segment=f"{name} == {plain(value)!r}",
                overtakes=round(over, 4), overtaken=round(under, 4), same_kind=round(kind, 4),
                pairs=n_fav + n_oth + n_same,
            )  # fmt: skip
            if best is None or margin > best[0]:
                best = (margin, found)
    return best[1] if best else None
