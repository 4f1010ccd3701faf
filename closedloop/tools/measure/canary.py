"""What a canary of an automation shows: how often the bot failed a case of its segment.

A new bot's failure rate is not in the log before it runs, so the Planner
predicts with a declared range (``closedloop.tools.act.evidence``). Once a
canary has run on part of the segment, the log has it: a treated case the bot
failed is one in which people did the work the bot took over after all
(a person's event of a taken-over activity), and a case it handled is one that
finished without such an event. Cases still open with neither are censored,
and so are cases that began within ``settle_hours`` of the window's end, since
a failure may show only hours later (a customer reopening a ticket).

:func:`automation_failures` counts both and gives the rate's 95 % (Wilson)
interval; the Watchdog stores it with the plan, and the next Planner run uses
it instead of the declared prior for the same action on the same segment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
from pydantic import BaseModel, Field
from scipy import stats

from closedloop.contracts import AutomationFailures
from closedloop.tools.base import read_tool
from closedloop.tools.log.columns import ACTIVITY, CASE, RESOURCE, TIMESTAMP

__all__ = ["AutomationFailures", "FailureCounts", "automation_failures"]

DEFAULT_SETTLE_HOURS = 24.0
MIN_CANARY_CASES = 20  # decided treated cases before a canary's rate replaces the prior


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
    return AutomationFailures(
        failed=len(failed), cases=cases, pending=len(judged) - cases,
        rate=len(failed) / cases if cases else None, low95=low, high95=high,
        settle_hours=settle_hours, taken_over=list(taken_over))


class FailureCounts(BaseModel):
    """Canary evidence pooled over the plans that measured the same action on the same segment
    (each plan's last measurement)."""

    failed: int
    cases: int
    plans: list[int] = Field(default_factory=list)

    @property
    def interval(self) -> tuple[float, float]:
        """The pooled rate's 95 % (Wilson) interval."""
        return _interval(self.failed, self.cases) if self.cases else (0.0, 1.0)

    @property
    def enough(self) -> bool:
        """Whether there are enough judged cases for the evidence to replace a declared prior."""
        return self.cases >= MIN_CANARY_CASES

