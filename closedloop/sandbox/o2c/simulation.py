"""Discrete-event simulation of order-to-cash (the o2c sandbox's hidden dynamics).

Orders arrive as a non-homogeneous Poisson process (weekday daytime heavy).
Each is created, credit-checked by the credit desk (some land on credit hold:
the customer's documents take hours, then the desk releases the hold),
manually approved when its net amount is at or above the approval threshold
(approvers reject most orders of risky customers), picked, packed and shipped.
A wrong address bounces the shipment back after days; customer service
corrects it and the order ships again. Billing invoices it; the customer pays
by the payment terms plus their own lateness; overdue receivables get a dunning
notice and risky customers' receivables are sometimes written off.

An auto-approval rule skips manual approval for the treatment share of the
orders it matches: those orders are not delayed by the approvers, but risky
ones are no longer rejected, which shows weeks later as dunning and write-offs.
The knobs are in :mod:`closedloop.sandbox.o2c.params`.

Randomness is seeded: arrivals use one stream, each order's attributes and
fate (risky, credit hold, address error, lateness) another, its durations a
third, so an order's fate does not depend on staffing, threshold or rules and
the same seed with the same calls yields identical events. Every activity
instance is logged once, at completion, with its start and completion time.
The clock, schedule, arrivals and rule list come from
:class:`closedloop.sandbox.engine.EventSimulation`; all public methods take
``self.lock`` (reentrant).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from closedloop.sandbox.engine import DAY, HOUR, EventSimulation, lognormal_minutes
from closedloop.sandbox.o2c.orders import Order, draw_order
from closedloop.sandbox.o2c.params import TERM_DAYS, O2CParams
from closedloop.sandbox.o2c.rules import AutoApprovalRule, cohort, first_match
from closedloop.sandbox.o2c.teams import Team, WorkItem


@dataclass(slots=True)
class O2CEvent:
    """One completed activity instance; times are whole milliseconds since the start."""

    seq: int
    start_ms: int
    end_ms: int
    order: Order
    activity: str
    resource: str
    team: str


class O2CSimulation(EventSimulation[AutoApprovalRule, O2CEvent]):
    """The order-to-cash world: clock, teams, threshold, rules, orders and the event log."""

    def __init__(
        self, seed: int = 7, start: datetime | None = None, params: O2CParams | None = None
    ) -> None:
        self.params = params or O2CParams()
        super().__init__(seed, start, "closedloop-o2c-arrivals", self.params.peak_orders_per_hour)
        self.approval_threshold = self.params.approval_threshold
        self.teams = {name: Team(name, s.headcount, s.start_hour, s.end_hour)
                      for name, s in self.params.teams.items()}
        self.orders: list[Order] = []
        self._schedule(self._next_arrival_time(0.0), self._arrive)
        self._schedule(0.0, self._hourly)

    # ------------------------------------------------------------------ public API
    def set_team(
        self, name: str, headcount: int, start_hour: int | None = None,
        end_hour: int | None = None,
    ) -> int:
        """Change a team's headcount (and working hours); return the previous headcount.

        Raises KeyError for an unknown team.
        """
        with self.lock:
            team = self.teams[name]
            previous = team.headcount
            team.headcount = headcount
            if start_hour is not None:
                team.start_hour = start_hour
            if end_hour is not None:
                team.end_hour = end_hour
            self._dispatch(team)
            return previous

    def set_threshold(self, amount: float) -> float:
        """Set the manual-approval threshold (EUR, applies to credit-cleared orders from now)."""
        with self.lock:
            previous, self.approval_threshold = self.approval_threshold, amount
            return previous

    # ------------------------------------------------------------------ machinery
    def _log(self, order: Order, activity: str, started: float, resource: str,
             team: str = "") -> None:
        end_ms = round(self.now * 1000)
        if self.events and end_ms < self.events[-1].end_ms:
            end_ms = self.events[-1].end_ms
        self.events.append(O2CEvent(len(self.events) + 1, min(round(started * 1000), end_ms),
                                    end_ms, order, activity, resource, team))

    def _timed(self, order: Order, activity: str, resource: str, minutes: tuple[float, float],
               then: Callable[[Order], None]) -> None:
        """An activity done by a system or an outside party (no team, no queue)."""
        duration = lognormal_minutes(order.durations, minutes) * 60.0
        self._schedule(self.now + duration, self._finish_timed, order, activity, resource,
                       self.now, then)

    def _finish_timed(self, order: Order, activity: str, resource: str, started: float,
                      then: Callable[[Order], None]) -> None:
        self._log(order, activity, started, resource)
        then(order)

    def _enqueue(self, team_name: str, order: Order, activity: str) -> None:
        team = self.teams[team_name]
        team.waiting.append(WorkItem(order, activity, self.now))
        self._dispatch(team)

    def _dispatch(self, team: Team) -> None:
        team.dispatch(self.calendar.to_datetime(self.now), self._start_work)

    def _start_work(self, team: Team, member: int, item: WorkItem) -> None:
        minutes = self._work_minutes[item.activity]
        duration = lognormal_minutes(item.order.durations, minutes) * 60.0
        self._schedule(self.now + duration, self._finish_work, team, member, item, self.now)

    def _finish_work(self, team: Team, member: int, item: WorkItem, started: float) -> None:
        order, activity = item.order, item.activity
        self._log(order, activity, started, f"{team.name}-{member}", team.name)
        team.busy.discard(member)
        self._next_steps[activity](order, f"{team.name}-{member}")
        self._dispatch(team)

    def _hourly(self) -> None:
        for team in self.teams.values():
            self._dispatch(team)
        self._schedule(math.floor(self.now / HOUR + 1) * HOUR, self._hourly)

    @property
    def _work_minutes(self) -> dict[str, tuple[float, float]]:
        p = self.params
        return {"Credit Check": p.credit_check_minutes,
                "Release Credit Hold": p.release_hold_minutes,
                "Manual Approval": p.manual_approval_minutes, "Pick": p.pick_minutes,
                "Pack": p.pack_minutes, "Correct Address": p.correct_address_minutes,
                "Create Invoice": p.invoice_minutes}

    @property
    def _next_steps(self) -> dict[str, Callable[[Order, str], None]]:
        return {"Credit Check": self._after_credit_check,
                "Release Credit Hold": lambda order, _: self._after_credit(order),
                "Manual Approval": self._after_approval,
                "Pick": lambda order, _: self._enqueue("PACKERS", order, "Pack"),
                "Pack": lambda order, _: self._ship(order),
                "Correct Address": lambda order, _: self._ship(order),
                "Create Invoice": lambda order, _: self._invoiced(order)}

    # ------------------------------------------------------------------ the process
    def _arrive(self) -> None:
        self._schedule(self._next_arrival_time(self.now), self._arrive)
        order = draw_order(self.seed, len(self.orders) + 1, self.now, self.params)
        self.orders.append(order)
        rule = first_match(self.rules, order.segment, order.amount)
        if rule is not None:
            arm = cohort(self.seed, order.order_id, rule)
            order.experiment = f"{rule.rule_id}:{arm}"
            order.auto_approve = arm == "treatment"
        self._log(order, "Create Order", self.now, "system")
        self._enqueue("CREDIT_DESK", order, "Credit Check")

    def _after_credit_check(self, order: Order, _: str) -> None:
        if order.credit_hold:
            order.status = "CreditHold"
            wait = order.durations.expovariate(1.0 / self.params.hold_wait_hours_mean) * HOUR
            self._schedule(self.now + wait, self._enqueue, "CREDIT_DESK", order,
                           "Release Credit Hold")
        else:
            self._after_credit(order)

    def _after_credit(self, order: Order) -> None:
        if order.auto_approve:
            order.approval = "AutoApproved"
        elif order.amount >= self.approval_threshold:
            order.approval, order.status = "Pending", "PendingApproval"
            self._enqueue("APPROVERS", order, "Manual Approval")
            return
        else:
            order.approval = "NotRequired"
        self._release(order)

    def _after_approval(self, order: Order, approver: str) -> None:
        p = self.params
        if order.reject_draw < (p.reject_risky if order.risky else p.reject_sound):
            order.approval, order.status = "Rejected", "Rejected"
            self._log(order, "Reject Order", self.now, approver, "APPROVERS")
            return
        order.approval = "Approved"
        self._release(order)

    def _release(self, order: Order) -> None:
        order.status = "InDelivery"
        self._enqueue("PICKERS", order, "Pick")

    def _ship(self, order: Order) -> None:
        self._timed(order, "Ship", "carrier", self.params.ship_minutes, self._shipped)

    def _shipped(self, order: Order) -> None:
        if order.address_error:
            order.address_error = False
            order.status = "AddressError"
            low, high = self.params.address_bounce_days
            delay = order.durations.uniform(low, high) * DAY
            self._schedule(self.now + delay, self._enqueue, "CUSTOMER_SERVICE", order,
                           "Correct Address")
        else:
            order.status = "Delivered"
            self._enqueue("BILLING", order, "Create Invoice")

    def _invoiced(self, order: Order) -> None:
        p = self.params
        order.status = "Invoiced"
        due = self.now + TERM_DAYS[order.terms] * DAY
        order.due = due
        late_days = order.lateness_days + (p.risky_extra_late_days if order.risky else 0.0)
        pays_at = max(self.now + DAY, due + late_days * DAY)
        never = order.risky and order.write_off_draw < p.risky_write_off
        if never or pays_at > due + p.dunning_after_days * DAY:
            self._schedule(due + p.dunning_after_days * DAY, self._event, order,
                           "Send Dunning Notice", "dunning-run", "Overdue")
        if never:
            self._schedule(due + p.write_off_after_days * DAY, self._event, order,
                           "Write Off Receivable", "fi-batch", "WrittenOff")
        else:
            self._schedule(pays_at, self._event, order, "Receive Payment", "customer", "Paid")

    def _event(self, order: Order, activity: str, resource: str, status: str) -> None:
        if order.status in ("Paid", "WrittenOff"):
            return
        order.status = status
        self._log(order, activity, self.now, resource)

    def history_entity(self, event: O2CEvent) -> dict[str, Any]:
        """One event as an entity of the status-history (change document) set."""
        return {
            "ChangeSequence": event.seq,
            "ChangeDocument": f"CD-{self.seed}-{event.seq:08d}",
            "SalesOrder": event.order.order_id,
            "Activity": event.activity,
            "ActivityStartedAt": self.calendar.iso(event.start_ms / 1000.0),
            "ActivityCompletedAt": self.calendar.iso(event.end_ms / 1000.0),
            "Resource": event.resource,
            "Team": event.team,
            **event.order.attributes(),
        }

