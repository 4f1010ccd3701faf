"""Discrete-event simulation of an IT helpdesk (the sandbox's hidden dynamics).

Tickets arrive as a non-homogeneous Poisson process (thinning), are registered,
triaged at L1, resolved at L1 or escalated and resolved at L2, confirmed and
closed, and sometimes reopened. Human queues have a number of agents, serve the
highest priority first (then FIFO) and only start work in business hours.
Automation rules can replace the human L1 work with a bot ("Auto-resolve") or
route tickets straight to a queue, for a treatment share of matching tickets.

Every activity emits a ``start`` and a ``complete`` event stamped with the
simulation clock. Randomness is seeded: arrivals use one stream and each ticket
its own stream, so a ticket's attributes do not depend on the active rules, and
the same seed with the same calls yields identical events.

The clock, schedule, arrivals and rule list come from
:class:`closedloop.sandbox.engine.EventSimulation`; all public methods take
``self.lock`` (reentrant).
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from closedloop.sandbox.engine import HOUR, EventSimulation, lognormal_minutes
from closedloop.sandbox.params import CASE_ATTRIBUTES, SandboxParams
from closedloop.sandbox.rules import Rule, assign_cohort, first_match


@dataclass(slots=True)
class SimEvent:
    """One emitted event; ``t_ms`` is whole milliseconds since the simulation start."""

    seq: int
    t_ms: int
    case_id: str
    activity: str
    lifecycle: str
    resource: str
    attributes: dict[str, str]


@dataclass(slots=True)
class Ticket:
    """A case moving through the helpdesk."""

    case_id: str
    attributes: dict[str, str]
    rng: random.Random
    arrived: float
    action: Rule | None = None
    closed: bool = False


class Simulation(EventSimulation[Rule, SimEvent]):
    """The helpdesk world: clock, queues, staffing, rules and the event log."""

    def __init__(
        self, seed: int = 7, start: datetime | None = None, params: SandboxParams | None = None
    ) -> None:
        self.params = params or SandboxParams()
        super().__init__(seed, start, "closedloop-sandbox-arrivals",
                         self.params.peak_arrivals_per_hour)
        self.staffing: dict[str, int] = dict(self.params.staffing)
        self._times_ms: list[int] = []
        self._busy: dict[str, set[int]] = {q: set() for q in self.staffing}
        self._waiting: dict[str, list[tuple[int, float, int, Ticket, str]]] = {
            q: [] for q in self.staffing
        }
        self._ticket_count = 0
        self._schedule(self._next_arrival_time(0.0), self._arrive)
        self._schedule(self.calendar.next_open(-1e-9), self._business_open)

    # ------------------------------------------------------------------ public API
    def set_staffing(self, queue: str, agents: int) -> int:
        """Set the number of agents of ``queue`` (KeyError if unknown); return the previous count.

        Extra agents start on waiting work at once (in business hours); removed agents
        finish the activity they are on and then leave.
        """
        with self.lock:
            previous = self.staffing[queue]
            self.staffing[queue] = agents
            self._dispatch(queue)
            return previous

    def query_events(
        self, after_seq: int = 0, limit: int = 5000,
        since: datetime | None = None, until: datetime | None = None,
    ) -> tuple[list[SimEvent], int | None]:
        """Events with seq > after_seq and since <= timestamp < until, oldest first.

        Returns (page, next_after_seq) where next_after_seq is the last seq of the page
        when more matching events exist right now, else None.
        """
        with self.lock:
            start = max(after_seq, 0)
            if since is not None:
                since_ms = math.ceil(self.calendar.to_seconds(since) * 1000)
                start = max(start, bisect.bisect_left(self._times_ms, since_ms))
            until_ms = None if until is None else self.calendar.to_seconds(until) * 1000
            page: list[SimEvent] = []
            index = start
            while index < len(self.events):
                event = self.events[index]
                if until_ms is not None and event.t_ms >= until_ms:
                    break
                if len(page) == limit:
                    return page, page[-1].seq if page else None
                page.append(event)
                index += 1
            return page, None

    def queue_stats(self) -> dict[str, dict[str, int]]:
        """Agents, busy agents and waiting tickets per queue right now."""
        with self.lock:
            return {
                q: {
                    "agents": self.staffing[q],
                    "busy": len(self._busy[q]),
                    "waiting": len(self._waiting[q]),
                }
                for q in self.staffing
            }

    def ticket_count(self) -> int:
        """How many tickets have arrived so far."""
        return self._ticket_count

    # ------------------------------------------------------------------ machinery
    def _emit(self, ticket: Ticket, activity: str, lifecycle: str, resource: str, queue: str) -> None:
        t_ms = round(self.now * 1000)
        if self._times_ms and t_ms < self._times_ms[-1]:
            t_ms = self._times_ms[-1]
        attributes = dict(ticket.attributes)
        attributes["queue"] = queue
        self.events.append(
            SimEvent(len(self.events) + 1, t_ms, ticket.case_id, activity, lifecycle, resource,
                     attributes)
        )
        self._times_ms.append(t_ms)

    def _activity(
        self, ticket: Ticket, activity: str, resource: str, minutes: tuple[float, float],
        then: Callable[..., None], *args: object, queue: str = "",
    ) -> None:
        """Emit the start now and schedule the completion after a lognormal duration."""
        self._emit(ticket, activity, "start", resource, queue)
        duration = lognormal_minutes(ticket.rng, minutes) * 60.0
        self._schedule(self.now + duration, self._complete, ticket, activity, resource, queue,
                       then, args)

    def _complete(self, ticket: Ticket, activity: str, resource: str, queue: str,
                  then: Callable[..., None], args: tuple) -> None:
        self._emit(ticket, activity, "complete", resource, queue)
        then(*args)

    def _arrive(self) -> None:
        self._schedule(self._next_arrival_time(self.now), self._arrive)
        self._ticket_count += 1
        case_id = f"T-{self._ticket_count:06d}"
        rng = random.Random(f"closedloop-sandbox-case:{self.seed}:{case_id}")
        p = self.params
        weights = {
            "category": p.category_weights, "priority": p.priority_weights,
            "channel": p.channel_weights, "customer_tier": p.tier_weights,
        }
        attributes = {
            name: rng.choices(domain, weights=[weights[name][v] for v in domain])[0]
            for name, domain in CASE_ATTRIBUTES.items()
        }
        ticket = Ticket(case_id, attributes, rng, self.now)
        rule = first_match(self.rules, attributes)
        experiment = ""
        if rule is not None:
            cohort = assign_cohort(self.seed, case_id, rule)
            experiment = f"{rule.rule_id}:{cohort}"
            ticket.action = rule if cohort == "treatment" else None
        attributes["experiment"] = experiment
        minutes = p.register_minutes[attributes["channel"]]
        self._activity(ticket, "Register ticket", "system", minutes, self._after_register, ticket)

    def _after_register(self, ticket: Ticket) -> None:
        rule = ticket.action
        if rule is not None and rule.action_type == "auto_resolve":
            self._activity(ticket, "Auto-resolve", "bot", self.params.auto_resolve_minutes,
                           self._after_auto_resolve, ticket)
        elif rule is not None and rule.action_type == "route" and rule.queue in self.staffing:
            self._enqueue(rule.queue, ticket, "Resolve")
        else:
            self._enqueue("L1", ticket, "Triage")

    def _after_auto_resolve(self, ticket: Ticket) -> None:
        p = self.params
        if ticket.rng.random() < p.auto_resolve_failure[ticket.attributes["category"]]:
            delay = ticket.rng.expovariate(1.0 / p.auto_fail_reopen_hours_mean) * HOUR
            self._schedule(self.now + delay, self._reopen, ticket, "L1", "Triage")
        else:
            self._schedule_close(ticket)

    def _enqueue(self, queue: str, ticket: Ticket, activity: str) -> None:
        rank = 0 if ticket.attributes["priority"] == "high" else 1
        heapq.heappush(self._waiting[queue], (rank, self.now, next(self._counter), ticket, activity))
        self._dispatch(queue)

    def _dispatch(self, queue: str) -> None:
        waiting = self._waiting[queue]
        if not waiting or not self.calendar.is_business(self.now):
            return
        busy = self._busy[queue]
        for agent in range(1, self.staffing[queue] + 1):
            if not waiting:
                return
            if agent in busy:
                continue
            _, _, _, ticket, activity = heapq.heappop(waiting)
            self._start_work(queue, agent, ticket, activity)

    def _start_work(self, queue: str, agent: int, ticket: Ticket, activity: str) -> None:
        self._busy[queue].add(agent)
        category = ticket.attributes["category"]
        p = self.params
        if activity == "Triage":
            minutes = p.triage_minutes[category]
        elif queue == "L1":
            minutes = p.resolve_l1_minutes[category]
        else:
            minutes = p.resolve_l2_minutes[category]
        self._activity(ticket, activity, f"{queue}-agent-{agent}", minutes, self._after_work,
                       queue, agent, ticket, activity, queue=queue)

    def _after_work(self, queue: str, agent: int, ticket: Ticket, activity: str) -> None:
        p = self.params
        category = ticket.attributes["category"]
        if activity == "Triage":
            if queue == "L1" and ticket.rng.random() < p.escalation_probability[category]:
                self._activity(ticket, "Escalate", f"{queue}-agent-{agent}", p.escalate_minutes,
                               self._after_escalate, queue, agent, ticket, queue=queue)
                return
            self._busy[queue].discard(agent)
            self._enqueue(queue, ticket, "Resolve")
            return
        self._busy[queue].discard(agent)
        if ticket.rng.random() < p.reopen_probability[category]:
            delay = ticket.rng.expovariate(1.0 / p.reopen_hours_mean) * HOUR
            self._schedule(self.now + delay, self._reopen, ticket, queue, "Resolve")
        else:
            self._schedule_close(ticket)
        self._dispatch(queue)

    def _after_escalate(self, queue: str, agent: int, ticket: Ticket) -> None:
        self._busy[queue].discard(agent)
        self._enqueue("L2", ticket, "Resolve")
        self._dispatch(queue)

    def _reopen(self, ticket: Ticket, queue: str, activity: str) -> None:
        self._emit(ticket, "Reopen", "start", "customer", "")
        self._emit(ticket, "Reopen", "complete", "customer", "")
        self._enqueue(queue, ticket, activity)

    def _schedule_close(self, ticket: Ticket) -> None:
        delay = ticket.rng.expovariate(1.0 / self.params.confirm_hours_mean) * HOUR
        self._schedule(self.now + delay, self._close, ticket)

    def _close(self, ticket: Ticket) -> None:
        self._activity(ticket, "Close", "system", self.params.close_minutes, self._closed, ticket)

    def _closed(self, ticket: Ticket) -> None:
        ticket.closed = True

    def _business_open(self) -> None:
        for queue in self._waiting:
            self._dispatch(queue)
        self._schedule(self.calendar.next_open(self.now), self._business_open)

