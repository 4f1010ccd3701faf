"""Cases still open at the log's end (right-censoring) and what the fit learns from them.

A log is cut at some moment while cases are still running. Read naively, an
open case "ends" with its last recorded activity: the routing learns a false
``activity -> END``, the expected visits per case (and so each pool's load)
shrink, and the pool looks less busy than it is. This module tells open
cases from finished ones and gives the fit what it needs to learn without
pretending they ended:

- **end activities**: an activity ends cases when at least END_SHARE of its
  instances are never followed by another event: the plateau of a
  Kaplan-Meier curve of the time to the next event, where the last instance
  of a case is censored at its age (time to the cut), so recent cases do
  not count as finished just because nothing followed *yet*;
- **censored case**: its last activity is not an end activity and its last
  event lies within the horizon before the cut (the HORIZON_QUANTILE of the
  gaps between consecutive events of a case, so a case left untouched much
  longer than cases ever wait is read as abandoned, not open), or it waits in
  a backlog: most of the next instances of its last activity wait too (a
  growing queue keeps cases waiting longer than any wait the log saw finish),
  or its silence is shorter than the log shows that step taking: of its last
  activity's instances silent as long (the Kaplan-Meier curve at the case's
  age), at least half were followed later (the share beyond the plateau;
  order-to-cash's shipments bounce back for a new address 1-3 days later, over
  a weekend the whole process rests, and no within-case gap "horizon" tells
  that from abandonment). Where no activity mostly ends cases (BPI 2012's work
  items often, but not mostly, do), that rule alone (within the horizon)
  decides;
- **pending steps** (``follow``): the time from each instance to its case's
  next event, or to the cut for an open case's last one, with which the fit
  weighs a slow branch (:mod:`closedloop.tools.twin.survival`);
- :func:`expected_visits` solves the routing chain for the visits per case
  of each activity, which stays unbiased when the censored ends are left out;
- :func:`open_cases` lists the backlog at the cut (each open case in the
  activity it completed last) so a simulation can start from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from closedloop.tools.log.columns import ACTIVITY, CASE, CASE_PREFIX, COMPLETE
from closedloop.tools.twin.frame import plain
from closedloop.tools.twin.process_twin import OpenCase
from closedloop.tools.twin.routing import END, VISIT_CAP
from closedloop.tools.twin.survival import km_curve

__all__ = ["Censoring", "detect_censoring", "expected_visits", "open_cases"]

END_SHARE = 0.5  # an activity ending at least this share of its settled instances ends cases
HORIZON_QUANTILE = 0.99  # of within-case gaps: cases silent for longer count as abandoned
BACKLOG_NEIGHBOURS = 20  # later instances that tell a queue from a stale case
MAX_BACKLOG = 5000  # open cases kept as the twin's initial state


@dataclass
class Censoring:
    """Which cases were still open at the cut (rows of the prepared frame)."""

    cut: pd.Timestamp
    horizon_hours: float
    end_activities: list[str]
    censored: np.ndarray  # per row: the last row of a censored case (its "next" is unknown)
    # per row: hours to the case's next event; for a censored row, to the cut; 0 for a case's end
    follow: np.ndarray
    open_case_ids: list[str]


def _survival(gaps: np.ndarray, ages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier curve of the time to the next event: ``gaps`` of the instances followed
    by one, ``ages`` (time to the cut) of the last instances, censored."""
    return km_curve(np.r_[gaps, ages], np.r_[np.ones(len(gaps), bool), np.zeros(len(ages), bool)])


def _never_followed(gaps: np.ndarray, ages: np.ndarray) -> float:
    """Kaplan-Meier plateau: the share of instances no further event ever follows."""
    return float(_survival(gaps, ages)[1][-1]) if len(gaps) + len(ages) else 1.0


def _open_posterior(gaps: np.ndarray, ages: np.ndarray) -> np.ndarray:
    """P(more will follow | nothing followed for ``ages``) for the last instances of one
    activity: of the instances silent that long (the Kaplan-Meier curve at each age), the
    share beyond the plateau (those that end here)."""
    times, surv = _survival(gaps, ages)
    if not len(times):
        return np.zeros(len(ages))
    at = np.searchsorted(times, ages, side="right") - 1
    silent = np.where(at >= 0, surv[np.clip(at, 0, None)], 1.0)
    return np.divide(silent - surv[-1], silent, out=np.zeros(len(ages)), where=silent > 0)


def _in_backlog(acts: np.ndarray, done: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Per row: a case's last event that most of the next BACKLOG_NEIGHBOURS instances of the
    same activity still wait behind (no event followed them either), so a queue, not
    abandonment, explains its silence: a growing backlog keeps cases waiting longer than any
    wait its log has seen finish. A stale case among neighbours that moved on stays abandoned."""
    out = np.zeros(len(acts), dtype=bool)
    for a in set(acts.tolist()):
        rows = np.flatnonzero(acts == a)
        rows = rows[np.argsort(done[rows], kind="stable")]
        waiting = np.r_[0, np.cumsum(last[rows])]
        j = np.arange(len(rows))
        upto = np.minimum(j + 1 + BACKLOG_NEIGHBOURS, len(rows))
        size, count = upto - j - 1, waiting[upto] - waiting[j + 1]
        out[rows] = last[rows] & (size > 0) & (2 * count >= size)
    return out


def detect_censoring(df: pd.DataFrame, cut: pd.Timestamp | None = None) -> Censoring:
    """Open cases of a prepared frame (sorted by case and completion) at ``cut`` (log end)."""
    cut = df[COMPLETE].max() if cut is None else cut
    cases = df[CASE].to_numpy(dtype=object)
    last = np.r_[cases[1:] != cases[:-1], True]
    t = df[COMPLETE]
    gap = ((t.shift(-1) - t) / pd.Timedelta(hours=1)).to_numpy(dtype=float)
    age = ((cut - t) / pd.Timedelta(hours=1)).to_numpy(dtype=float)
    inner = gap[~last]
    inner = inner[np.isfinite(inner) & (inner >= 0)]
    horizon = float(np.quantile(inner, HORIZON_QUANTILE)) if len(inner) else 0.0
    acts = df[ACTIVITY].to_numpy(dtype=object)
    ends, posterior = [], np.zeros(len(df))
    for a in sorted(set(acts.tolist())):
        mine = acts == a
        g = gap[mine & ~last]
        g = np.clip(g[np.isfinite(g)], 0, None)
        if _never_followed(g, age[mine & last]) >= END_SHARE:
            ends.append(str(a))
        posterior[mine & last] = _open_posterior(g, age[mine & last])
    recent = last & (age <= horizon)
    if ends:
        not_end = ~pd.Series(acts).isin(ends).to_numpy()
        likely_open = last & (posterior >= 0.5)
        censored = (recent | likely_open | _in_backlog(acts, t.to_numpy(), last)) & not_end
    else:  # no activity mostly ends cases (BPI 2012's work items): weigh each case's silence
        censored = recent & (posterior >= 0.5)
    ids = [str(c) for c in cases[censored]]
    follow = np.where(last, np.where(censored, age, 0.0), np.nan_to_num(gap))
    return Censoring(cut, horizon, ends, censored, np.clip(follow, 0.0, None), ids)


def expected_visits(
    starts: dict[str, float], transitions: dict[str, dict[str, float]]
) -> dict[str, float] | None:
    """Visits per case of each activity under the routing chain (None: the chain never ends)."""
    acts = sorted(transitions)
    index = {a: i for i, a in enumerate(acts)}
    n = len(acts)
    p = np.zeros((n, n))
    for a, nxt in transitions.items():
        for b, prob in nxt.items():
            if b != END and b in index:
                p[index[a], index[b]] += prob
    s = np.array([starts.get(a, 0.0) for a in acts])
    try:
        v = np.linalg.solve((np.eye(n) - p).T, s)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(v)) or (v < -1e-9).any():
        return None
    return {a: float(max(v[i], 0.0)) for a, i in index.items()}


def open_cases(df: pd.DataFrame, c: Censoring, attributes: Sequence[str] = ()) -> list[OpenCase]:
    """The backlog at the cut: each open case in the activity it completed last, with its
    ``attributes`` (case attribute names, with or without ``case:`` in the frame)."""
    if not c.open_case_ids:
        return []
    rows = df[df[CASE].isin(set(c.open_case_ids))]
    columns = {n: f"{CASE_PREFIX}{n}" if f"{CASE_PREFIX}{n}" in df.columns else n
               for n in attributes}  # fmt: skip
    columns = {n: col for n, col in columns.items() if col in df.columns}
    out: list[OpenCase] = []
    for case, g in rows.groupby(CASE, sort=True):
        acts = g[ACTIVITY].tolist()
        first = g.iloc[0]
        out.append(
            OpenCase(
                case=str(case),
                activity=acts[-1],
                previous=acts[-2] if len(acts) > 1 else None,
                visit=min(acts.count(acts[-1]), VISIT_CAP),
                since=g[COMPLETE].iloc[-1].floor("us").to_pydatetime(),
                attributes={n: plain(first[col]) for n, col in columns.items()},
            )
        )
    return out[-MAX_BACKLOG:]
