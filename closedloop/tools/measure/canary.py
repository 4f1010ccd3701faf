"""What a canary of an automation shows: how often the bot failed a case of its segment.

A new bot's failure rate is not in the log before it runs, so the Planner
predicts with a declared range (``closedloop.tools.act.evidence``). Once a
canary has run on part of the segment, the log has it: a treated case the bot
failed is one in which people did the work the bot took over after all (a
person's event of a taken-over activity), and a case it handled is one that
finished without such an event. How long each failure went unnoticed is the
silence before the case came back to people. Cases still open with neither
are censored, and so are cases that began within ``settle_hours`` of the
window's end, since a failure may show only hours later (a customer reopening
a ticket).

:func:`automation_failures` counts them and gives the rate's 95 % (Wilson)
interval and the notice delays' quartiles; the Watchdog stores them with the
plan, and the next Planner run uses them instead of the declared ranges for
the same action on the same segment (pooled as :class:`FailureCounts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from scipy import stats

from closedloop.contracts import AutomationFailures
from closedloop.tools.base import read_tool
from closedloop.tools.log.columns import ACTIVITY, CASE, RESOURCE, TIMESTAMP

__all__ = ["AutomationFailures", "FailureCounts", "automation_failures"]

DEFAULT_SETTLE_HOURS = 24.0
MIN_CANARY_CASES = 20  # decided treated cases before a canary's rate replaces the prior
MIN_NOTICED = 10  # failed cases before their notice delays replace the log's evidence


def _interval(failed: int, cases: int) -> tuple[float, float]:
    ci = stats.binomtest(failed, cases).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


@read_tool
def automation_failures(
    frame: pd.DataFrame,
    treated_cases: Iterable[str],
    taken_over: Sequence[str],
    end_activities: Iterable[str],
    people: Iterable[str] | None = None,
    settle_hours: float = DEFAULT_SETTLE_HOURS,
) -> AutomationFailures:
    """The bot's failures among ``treated_cases`` of ``frame`` (the events since the change).

    A treated case failed when one of ``taken_over`` (the activities the bot
    does instead of people) has an event by one of ``people`` (those who did
    these activities before the change; any resource when None or when the
    frame has no resource column, so a bot logging its own activity names
    needs ``people``). It was handled when it reached one of ``end_activities``
    without such an event. Only cases whose first event lies ``settle_hours``
    or more before the frame's last event are judged.
    """
    treated = set(map(str, treated_cases))
    events = frame[frame[CASE].astype(str).isin(treated)]
    if events.empty:
        return AutomationFailures(failed=0, cases=0, pending=0, settle_hours=settle_hours,
                                  taken_over=list(taken_over))
    end = frame[TIMESTAMP].max()
    first = events.groupby(CASE)[TIMESTAMP].min()
    judged = set(first[first <= end - pd.Timedelta(hours=settle_hours)].index)
    events = events[events[CASE].isin(judged)]
    by_person = events[ACTIVITY].isin(list(taken_over))
    known = set(map(str, people)) if people is not None else set()
    if known and RESOURCE in events.columns:
        by_person &= events[RESOURCE].astype(str).isin(known)
    failed = set(events.loc[by_person, CASE])
    finished = set(events.loc[events[ACTIVITY].isin(set(end_activities)), CASE])
    handled = finished - failed
    cases = len(failed) + len(handled)
    low, high = _interval(len(failed), cases) if cases else (0.0, 1.0)
    notice = _notice_hours(events, by_person)
    q1, q3 = (float(q) for q in np.quantile(notice, [0.25, 0.75])) if notice else (None, None)
    return AutomationFailures(
        failed=len(failed), cases=cases, pending=len(judged) - cases,
        rate=len(failed) / cases if cases else None, low95=low, high95=high,
        settle_hours=settle_hours, taken_over=list(taken_over),
        notice_n=len(notice), notice_q1=q1, notice_q3=q3)


def _notice_hours(events: pd.DataFrame, by_person: pd.Series) -> list[float]:
    """Per failed case, how long its failure went unnoticed: the silence that ended when the case
    came back to people (the gap before the event just ahead of people's first taken-over work,
    e.g. a customer's reopen after the bot's resolution; the bot's own step where nothing came
    between). Queueing for people afterwards is not part of it: the twin queues that itself."""
    ordered = events.assign(_person=by_person.to_numpy()).sort_values([CASE, TIMESTAMP], kind="stable")
    out = []
    for _, case in ordered.groupby(CASE, sort=False):
        people = np.flatnonzero(case["_person"].to_numpy())
        if len(people) == 0 or people[0] < 2:
            continue
        ends = case[TIMESTAMP].to_numpy()
        k = people[0]
        out.append(float((ends[k - 1] - ends[k - 2]) / np.timedelta64(1, "h")))
    return out


class FailureCounts(BaseModel):
    """Canary evidence pooled over the plans that measured the same action on the same segment
    (each plan's last measurement)."""

    failed: int
    cases: int
    plans: list[int] = Field(default_factory=list)
    notice_hours: tuple[float, float] | None = Field(
        None, description="interquartile hours a failure went unnoticed (the plan with most failures)")
    notice_n: int = 0

    @property
    def interval(self) -> tuple[float, float]:
        """The pooled rate's 95 % (Wilson) interval."""
        return _interval(self.failed, self.cases) if self.cases else (0.0, 1.0)

    @property
    def enough(self) -> bool:
        """Whether there are enough judged cases for the evidence to replace a declared prior."""
        return self.cases >= MIN_CANARY_CASES

    @property
    def enough_notice(self) -> bool:
        """Whether enough failures were seen for their notice delays to replace the log's."""
        return self.notice_hours is not None and self.notice_n >= MIN_NOTICED

