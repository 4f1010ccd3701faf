"""Automation rules of the simulated helpdesk: matching and cohort assignment.

A rule has a condition on one case attribute, an action (``auto_resolve`` or
``route`` to a queue) and a ``treatment_share``. A new ticket is tested against
the active rules in creation order; the first match assigns it to that rule's
experiment, deterministically ``treatment`` or ``control`` from a seeded hash of
the case id and the rule id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

Op = Literal["eq", "in", "neq"]
ActionType = Literal["auto_resolve", "route"]


@dataclass(frozen=True)
class Rule:
    """An active automation rule as the simulation sees it."""

    rule_id: str
    name: str
    field: str
    op: Op
    value: str | tuple[str, ...]
    action_type: ActionType
    queue: str | None
    treatment_share: float

    def matches(self, attributes: dict[str, str]) -> bool:
        """True when the ticket's case attributes satisfy the rule's condition."""
        actual = attributes.get(self.field)
        if self.op == "eq":
            return actual == self.value
        if self.op == "neq":
            return actual != self.value
        values = (self.value,) if isinstance(self.value, str) else self.value
        return actual in values


def cohort_fraction(seed: int, case_id: str, rule_id: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, case id, rule id); no RNG state involved."""
    digest = hashlib.sha256(f"{seed}|{case_id}|{rule_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_cohort(seed: int, case_id: str, rule: Rule) -> Literal["treatment", "control"]:
    """Deterministically put a matching ticket into the rule's treatment or control cohort."""
    return "treatment" if cohort_fraction(seed, case_id, rule.rule_id) < rule.treatment_share else (
        "control"
    )


def first_match(rules: list[Rule], attributes: dict[str, str]) -> Rule | None:
    """The earliest-created active rule whose condition matches, or None."""
    for rule in rules:
        if rule.matches(attributes):
            return rule
    return None
