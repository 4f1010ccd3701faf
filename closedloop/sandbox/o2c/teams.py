"""Teams of the order-to-cash sandbox: headcount, working hours and a FIFO work queue.

A team member only starts work inside the team's working hours (Monday to
Friday, ``start_hour`` to ``end_hour`` UTC); work started before closing is
finished. Lowering the headcount lets the removed members finish what they are
on; raising it puts the new members on waiting work at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class WorkItem:
    """One activity waiting for a team member."""

    order: Any
    activity: str
    enqueued: float


@dataclass
class Team:
    """A pool of interchangeable people."""

    name: str
    headcount: int
    start_hour: int
    end_hour: int
    waiting: deque[WorkItem] = field(default_factory=deque)
    busy: set[int] = field(default_factory=set)

    def is_working(self, moment: datetime) -> bool:
        """True when the team starts work at ``moment`` (a UTC datetime)."""
        return moment.weekday() < 5 and self.start_hour <= moment.hour < self.end_hour

    def dispatch(self, moment: datetime, start: Callable[[Team, int, WorkItem], None]) -> None:
        """Hand waiting items to free members (lowest member number first) if working now."""
        if not self.waiting or not self.is_working(moment):
            return
        for member in range(1, self.headcount + 1):
            if not self.waiting:
                return
            if member not in self.busy:
                self.busy.add(member)
                start(self, member, self.waiting.popleft())

    def entity(self) -> dict[str, Any]:
        """The team as its OData entity."""
        return {
            "Team": self.name, "Headcount": self.headcount,
            "WorkingHoursStart": self.start_hour, "WorkingHoursEnd": self.end_hour,
            "BusyMembers": len(self.busy), "WaitingItems": len(self.waiting),
        }
