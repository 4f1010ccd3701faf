"""History-aware routing of a process twin: which activity comes next.

A first-order Markov chain (next activity given the current one) spreads
loops out: every pass through a loop has the same chance to repeat, so
simulated cases repeat far more (and far less) than real ones, and the
sequences of three activities drift from the log. The twin therefore also
learns the next activity given *context*:

- level 2: (previous activity, current activity, how many times the current
  activity has run in the case so far, capped at VISIT_CAP),
- level 1: (previous activity, current activity),
- level 0: the current activity alone (``ProcessTwin.transitions``).

A context is kept only when the log shows it at least MIN_SUPPORT times; the
simulator uses the most specific context it has (back-off), so rare
histories fall back to well-estimated probabilities. ``previous`` is
``START`` for the first activity of a case and the next activity ``END``
ends the case.
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.log.columns import ACTIVITY, CASE, COMPLETE, RESOURCE
from closedloop.tools.log.columns import START as STARTED
from closedloop.tools.twin.survival import redistributed_weights

START = "__START__"
END = "__END__"
VISIT_CAP = 8
MIN_SUPPORT = 20
PARALLEL_SHARE = 0.5  # a pair of activities overlapping this often runs in parallel
MIN_PARALLEL = 10
CARRY_ON_SHARE = 0.9  # the same person starts the next activity at once this often: no queue
CARRY_ON_GAP_HOURS = 1 / 60


class RoutingContext(BaseModel):
    """Next-activity probabilities after ``activity`` in a given history."""

    activity: str
    previous: str | None = Field(
        None, description=f"activity before it ('{START}' = none); None = any"
    )
    visit: int | None = Field(
        None,
        description=f"times `activity` ran in the case incl. this one (capped at {VISIT_CAP}); None = any",
    )
    support: int = Field(description="occurrences in the log")
    next: dict[str, float]


def _normalised(counts: pd.Series) -> dict[str, float]:
    total = float(counts.sum())
    return {str(b): float(n) / total for b, n in sorted(counts.items()) if n > 0}


def discover_routing(
    cases: np.ndarray,
    acts: np.ndarray,
    censored: np.ndarray | None = None,
    follow: np.ndarray | None = None,
) -> tuple[dict[str, float], dict[str, dict[str, float]], list[RoutingContext]]:
    """Start probabilities, first-order transitions and history contexts.

    ``cases`` and ``acts`` are the case id and activity of every activity
    instance, grouped by case and in execution order. ``censored`` marks the
    last instance of cases still open at the log's end: what follows it is
    unknown, so it counts for the start and the history but not as a step
    to END. With ``follow`` (hours from each instance to the next event of its
    case; for a censored one, to the log's end) a censored step is not dropped
    but hands its weight to the steps of its context that took longer than it
    has waited (:func:`~closedloop.tools.twin.survival.redistributed_weights`):
    a slow branch (a shipment bouncing back days later) keeps its share even
    though the log's last days show only the quick outcomes.
    """
    first = np.r_[True, cases[1:] != cases[:-1]]
    last = np.r_[cases[1:] != cases[:-1], True]
    prev = np.where(first, START, np.r_[[START], acts[:-1]])
    nxt = np.where(last, END, np.r_[acts[1:], [END]])
    frame = pd.DataFrame({"case": cases, "prev": prev, "act": acts, "next": nxt})
    visit = frame.groupby(["case", "act"], sort=False).cumcount().to_numpy() + 1
    frame["visit"] = np.minimum(visit, VISIT_CAP)

    starts = _normalised(frame.loc[first, "act"].value_counts())
    pending = np.zeros(len(frame), dtype=bool) if censored is None else np.asarray(censored, bool)
    levels = (["act"], ["prev", "act"], ["prev", "act", "visit"])
    for level, keys in enumerate(levels):
        frame[f"w{level}"] = (
            redistributed_weights(follow, pending, frame[keys])
            if follow is not None
            else (~pending).astype(float)
        )
    frame = frame[~pending]

    def weighted(rows: pd.DataFrame, level: int) -> dict[str, float]:
        return _normalised(rows.groupby("next", sort=True)[f"w{level}"].sum())

    transitions = {str(a): weighted(rows, 0) for a, rows in frame.groupby("act", sort=True)}
    contexts: list[RoutingContext] = []
    for level, keys in enumerate(levels[1:], start=1):
        for key, rows in frame.groupby(keys, sort=True):
            if len(rows) < MIN_SUPPORT:
                continue
            contexts.append(
                RoutingContext(
                    activity=str(key[1]),
                    previous=str(key[0]),
                    visit=int(key[2]) if level == 2 else None,
                    support=len(rows),
                    next=weighted(rows, level),
                )
            )
    return starts, transitions, contexts


def _cumulative(probs: dict[str, float], index: dict[str, int]) -> tuple[list[float], list[int]]:
    items = [(b, p) for b, p in probs.items() if p > 0 and (b == END or b in index)]
    if not items:
        return [1.0], [-1]
    cum = np.cumsum([p for _, p in items])
    cum = (cum / cum[-1]).tolist()
    cum[-1] = 1.0
    return cum, [-1 if b == END else index[b] for b, _ in items]


class Router:
    """Compiled routing for the simulator: activities by index, END = -1, START = -1 as previous."""

    def __init__(
        self,
        activities: list[str],
        starts: dict[str, float],
        transitions: dict[str, dict[str, float]],
        contexts: list[RoutingContext],
    ) -> None:
        index = {a: i for i, a in enumerate(activities)}
        self.index = index
        self.start = _cumulative(starts, index)
        self.level0 = [_cumulative(transitions.get(a, {END: 1.0}), index) for a in activities]
        self.level1: dict[tuple[int, int], tuple[list[float], list[int]]] = {}
        self.level2: dict[tuple[int, int, int], tuple[list[float], list[int]]] = {}
        for c in contexts:
            if c.activity not in index or (c.previous != START and c.previous not in index):
                continue
            p = -1 if c.previous == START else index[c.previous]
            table = _cumulative(c.next, index)
            if c.visit is None:
                self.level1[(p, index[c.activity])] = table
            else:
                self.level2[(p, index[c.activity], c.visit)] = table

    def table(self, prev: int, act: int, visit: int) -> tuple[list[float], list[int]]:
        """The most specific next-activity table for this history."""
        t = self.level2.get((prev, act, min(VISIT_CAP, visit)))
        if t is None:
            t = self.level1.get((prev, act))
            if t is None:
                t = self.level0[act]
        return t

    @staticmethod
    def draw(table: tuple[list[float], list[int]], u: float) -> int:
        """The next activity for uniform ``u`` in [0, 1) (cumulative tables end at exactly 1)."""
        cum, nxt = table
        return nxt[bisect_right(cum, u)]

    def set_share(self, act: int, target: int, share: float) -> None:
        """Make ``target`` (-1 = END) follow ``act`` with probability ``share`` in every context."""

        def rescale(table: tuple[list[float], list[int]]) -> tuple[list[float], list[int]]:
            cum, nxt = table
            probs = dict(zip(nxt, np.diff([0.0, *cum]).tolist(), strict=True))
            others = {b: p for b, p in probs.items() if b != target}
            rest = sum(others.values())
            if rest <= 0:
                others, rest = {-1: 1.0}, 1.0  # nothing else ever follows: the remainder ends
            new = {b: p * (1 - share) / rest for b, p in others.items()}
            new[target] = new.get(target, 0.0) + share
            items = [(b, p) for b, p in new.items() if p > 0]
            c = (np.cumsum([p for _, p in items]) / sum(p for _, p in items)).tolist()
            c[-1] = 1.0
            return c, [b for b, _ in items]

        self.level0[act] = rescale(self.level0[act])
        for key in [k for k in self.level1 if k[1] == act]:
            self.level1[key] = rescale(self.level1[key])
        for key in [k for k in self.level2 if k[1] == act]:
            self.level2[key] = rescale(self.level2[key])


def parallel_pairs(df: pd.DataFrame) -> list[tuple[str, str]]:
    """Consecutive activities (by completion) whose instances mostly overlap in time.

    ``df`` is the fit's frame (sorted by case and completion, with ``_prev``).
    """
    prev_end = df.groupby(CASE, sort=False)[COMPLETE].shift(1)
    overlap = (df[STARTED] < prev_end).to_numpy()
    if not overlap.any():
        return []
    pairs = pd.DataFrame({"prev": df["_prev"], "act": df[ACTIVITY], "overlap": overlap})
    share = pairs.groupby(["prev", "act"], sort=True)["overlap"].agg(["mean", "size"])
    keep = share[(share["mean"] >= PARALLEL_SHARE) & (share["size"] >= MIN_PARALLEL)]
    return [(str(a), str(b)) for a, b in keep.index if a != START]


def carry_on_pairs(df: pd.DataFrame) -> list[tuple[str, str]]:
    """Consecutive activities the same person does back to back (the next started within a
    minute of the last one's end, by the same named resource, in nearly every instance): the
    engine runs the second on the same server at once instead of queueing it again.

    ``df`` is the fit's frame (sorted by case and completion, with ``_prev``).
    """
    by_case = df.groupby(CASE, sort=False)
    gap = (df[STARTED] - by_case[COMPLETE].shift(1)) / pd.Timedelta(hours=1)
    named = df[RESOURCE].fillna("") != ""
    same = (named & (df[RESOURCE] == by_case[RESOURCE].shift(1))
            & (gap >= 0) & (gap <= CARRY_ON_GAP_HOURS)).to_numpy()  # fmt: skip
    if not same.any():
        return []
    pairs = pd.DataFrame({"prev": df["_prev"], "act": df[ACTIVITY], "same": same})
    share = pairs.groupby(["prev", "act"], sort=True)["same"].agg(["mean", "size"])
    keep = share[(share["mean"] >= CARRY_ON_SHARE) & (share["size"] >= MIN_PARALLEL)]
    return [(str(a), str(b)) for a, b in keep.index if a != START and a != b]
