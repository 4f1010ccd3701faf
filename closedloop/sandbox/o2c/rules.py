"""Auto-approval rules of the order-to-cash sandbox: matching and cohort assignment.

A rule matches new orders of one customer segment up to a net amount. Each
matching order joins the rule's experiment, deterministically ``treatment`` or
``control`` from a seeded hash of the order id and the rule id (the helpdesk
sandbox's hash, reused). Treated orders skip manual approval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from closedloop.sandbox.rules import cohort_fraction


@dataclass(frozen=True)
class AutoApprovalRule:
    """An active rule as the simulation sees it."""

    rule_id: str
    segment: str
    max_amount: float
    treatment_share: float

    def matches(self, segment: str, amount: float) -> bool:
        """True when an order of ``segment`` over ``amount`` EUR falls under the rule."""
        return segment == self.segment and amount <= self.max_amount


def cohort(seed: int, order_id: str, rule: AutoApprovalRule) -> Literal["treatment", "control"]:
    """The order's cohort in the rule's experiment (stable for a seed)."""
    share = cohort_fraction(seed, order_id, rule.rule_id)
    return "treatment" if share < rule.treatment_share else "control"


def first_match(
    rules: list[AutoApprovalRule], segment: str, amount: float
) -> AutoApprovalRule | None:
    """The earliest-created active rule matching the order, or None."""
    for rule in rules:
        if rule.matches(segment, amount):
            return rule
    return None
