"""The discrete-event machinery both sandbox simulations share.

A clock (``now``, simulation seconds), a heap of scheduled callbacks, seeded
non-homogeneous Poisson arrivals (thinning against the calendar's arrival
weight), the active rules and the event log. Each domain's simulation
(:mod:`closedloop.sandbox.simulation`, :mod:`closedloop.sandbox.o2c.simulation`)
subclasses :class:`EventSimulation` and adds its own process.

All public methods take ``self.lock`` (reentrant), so one instance may be shared
between HTTP handler threads and a background clock.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from closedloop.sandbox.simclock import SimCalendar

HOUR = 3600.0
DAY = 24 * HOUR


class _HasRuleId(Protocol):
    rule_id: str


RuleT = TypeVar("RuleT", bound=_HasRuleId)
EventT = TypeVar("EventT")


class EventSimulation(Generic[RuleT, EventT]):
    """Clock, schedule, arrivals, rules and event log of one seeded simulated world."""

    def __init__(self, seed: int, start: datetime | None, arrival_stream: str,
                 peak_arrivals_per_hour: float) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        self.calendar = SimCalendar(start)
        self.now = 0.0
        self.rules: list[RuleT] = []
        self.events: list[EventT] = []
        self._heap: list[tuple[float, int, Callable[..., None], tuple]] = []
        self._counter = itertools.count()
        self._peak_rate = peak_arrivals_per_hour / HOUR
        self._arrival_rng = random.Random(f"{arrival_stream}:{seed}")

    def advance(self, hours: float) -> int:
        """Run the simulation ``hours`` forward; return how many events were emitted."""
        with self.lock:
            return self.run_until(self.now + hours * HOUR)

    def run_until(self, t_end: float) -> int:
        """Process every scheduled happening up to ``t_end`` (sim seconds); return events emitted."""
        with self.lock:
            before = len(self.events)
            heap = self._heap
            while heap and heap[0][0] <= t_end:
                t, _, callback, args = heapq.heappop(heap)
                self.now = t
                callback(*args)
            self.now = max(self.now, t_end)
            return len(self.events) - before

    def add_rule(self, rule: RuleT) -> None:
        """Activate a rule for cases that arrive from now on."""
        with self.lock:
            self.rules.append(rule)

    def remove_rule(self, rule_id: str) -> bool:
        """Deactivate a rule; cases already assigned keep their cohort. False if unknown."""
        with self.lock:
            kept = [r for r in self.rules if r.rule_id != rule_id]
            removed = len(kept) != len(self.rules)
            self.rules = kept
            return removed

    def last_seq(self) -> int:
        """The sequence number of the latest event (0 when none)."""
        return len(self.events)

    def _schedule(self, t: float, callback: Callable[..., None], *args: object) -> None:
        heapq.heappush(self._heap, (t, next(self._counter), callback, args))

    def _next_arrival_time(self, t: float) -> float:
        """The next arrival after ``t``: a peak-rate Poisson process thinned by the calendar."""
        rng = self._arrival_rng
        while True:
            t += rng.expovariate(self._peak_rate)
            if rng.random() < self.calendar.arrival_weight(t):
                return t


def lognormal_minutes(rng: random.Random, spec: tuple[float, float]) -> float:
    """A lognormal duration in minutes with the given (mean, sigma)."""
    mean, sigma = spec
    return rng.lognormvariate(math.log(mean) - sigma * sigma / 2.0, sigma)
