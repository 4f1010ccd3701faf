"""The rules of governance as data: modes, risk tiers, default caps, who is a person, and the
errors governance raises on purpose. Imports nothing of ours."""

from __future__ import annotations

from typing import Any, Literal

Mode = Literal["shadow", "assisted", "supervised"]
Route = Literal["blocked", "shadow", "execute", "approval"]

MODES: tuple[str, ...] = ("shadow", "assisted", "supervised")
RISK_TIERS: tuple[str, ...] = ("low", "medium", "high")
DEFAULT_CAPS: dict[str, Any] = {
    "max_share_of_cases": 0.25,
    "max_risk_tier": "low",
    "max_writes_per_day": 20,
    "max_writes_per_plan": 5,
    "business_hours": None,
}
# A rollback takes supervised autonomy away at once; lower modes stay where they are.
DEMOTION: dict[str, str] = {"supervised": "assisted", "assisted": "assisted", "shadow": "shadow"}
#: The scope whose kill switch stops every scope at once.
GLOBAL_SCOPE = "*"
#: Names that are not a person: a promotion needs a human who confirms it.
NOT_A_PERSON = {
    "",
    "nobody",
    "unknown",
    "anonymous",
    "system",
    "api",
    "cli",
    "watchdog",
    "gate",
    "learn",
    "policy",
    "root",
    "admin",
}
# Writes that may be live count against the daily cap (a failed one never reached the system).
COUNTED_STATUSES = (
    "pending",
    "unknown",
    "succeeded",
    "unverified",
    "compensated",
    "compensation_failed",
)


class GovernanceError(Exception):
    """Base class of the errors this module raises on purpose."""


class PolicyError(GovernanceError, ValueError):
    """A policy change that is not valid (unknown mode, nothing to change)."""


class KillSwitchOn(GovernanceError):
    """The scope's kill switch is on: nothing of the scope may be written."""


class PromotionRefused(PolicyError):
    """A scope may not move up a mode: the evidence is missing or nobody confirmed it."""


class CapExceeded(GovernanceError):
    """A write would exceed the scope's caps (per day, per plan, risk tier, blast radius, hours)."""
