"""Hidden parameters of the simulated helpdesk (the "ground truth" callers must discover).

Durations are lognormal, given as (mean minutes, sigma of the underlying normal).
With the defaults, L1 (3 agents) runs close to capacity during business hours and
is the clear bottleneck; L2 (2 agents) is moderately loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CATEGORIES = ("password", "software", "hardware", "network", "access")
PRIORITIES = ("low", "medium", "high")
CHANNELS = ("email", "phone", "portal")
CUSTOMER_TIERS = ("standard", "gold")
QUEUES = ("L1", "L2")

#: Case attributes and their domains (rule conditions may test exactly these fields).
CASE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "category": CATEGORIES,
    "priority": PRIORITIES,
    "channel": CHANNELS,
    "customer_tier": CUSTOMER_TIERS,
}

Duration = tuple[float, float]  # (mean minutes, lognormal sigma)


def _per_category(**values: Duration) -> dict[str, Duration]:
    return dict(values)


@dataclass(frozen=True)
class SandboxParams:
    """All tunable knobs of the discrete-event simulation."""

    # Arrivals: peak rate (tickets per hour, weekday 08-18 UTC); off-peak is scaled
    # down by SimCalendar.arrival_weight (about 390 tickets per week in total).
    peak_arrivals_per_hour: float = 6.0
    category_weights: dict[str, float] = field(
        default_factory=lambda: {
            "password": 0.32, "software": 0.25, "hardware": 0.15, "network": 0.12, "access": 0.16,
        }
    )
    priority_weights: dict[str, float] = field(
        default_factory=lambda: {"low": 0.3, "medium": 0.5, "high": 0.2}
    )
    channel_weights: dict[str, float] = field(
        default_factory=lambda: {"email": 0.4, "phone": 0.2, "portal": 0.4}
    )
    tier_weights: dict[str, float] = field(
        default_factory=lambda: {"standard": 0.8, "gold": 0.2}
    )
    staffing: dict[str, int] = field(default_factory=lambda: {"L1": 3, "L2": 2})

    register_minutes: dict[str, Duration] = field(
        default_factory=lambda: {"email": (1.0, 0.3), "portal": (0.5, 0.3), "phone": (4.0, 0.4)}
    )
    triage_minutes: dict[str, Duration] = field(
        default_factory=lambda: _per_category(
            password=(4.4, 0.5), software=(9.9, 0.5), hardware=(9.9, 0.5),
            network=(9.9, 0.5), access=(7.7, 0.5),
        )
    )
    resolve_l1_minutes: dict[str, Duration] = field(
        default_factory=lambda: _per_category(
            password=(7.7, 0.5), software=(30.8, 0.6), hardware=(24.2, 0.6),
            network=(24.2, 0.6), access=(19.8, 0.6),
        )
    )
    resolve_l2_minutes: dict[str, Duration] = field(
        default_factory=lambda: _per_category(
            password=(12.0, 0.5), software=(28.0, 0.6), hardware=(36.0, 0.6),
            network=(32.0, 0.6), access=(20.0, 0.6),
        )
    )
    escalate_minutes: Duration = (5.0, 0.4)
    auto_resolve_minutes: Duration = (2.0, 0.3)
    close_minutes: Duration = (0.2, 0.3)
    # Probability that L1 triage escalates the ticket to L2.
    escalation_probability: dict[str, float] = field(
        default_factory=lambda: {
            "password": 0.02, "software": 0.2, "hardware": 0.6, "network": 0.55, "access": 0.15,
        }
    )
    # Probability that a human resolution is reopened by the customer.
    reopen_probability: dict[str, float] = field(
        default_factory=lambda: {
            "password": 0.04, "software": 0.08, "hardware": 0.08, "network": 0.08, "access": 0.06,
        }
    )
    # Hidden failure rate of the "Auto-resolve" bot per category.
    auto_resolve_failure: dict[str, float] = field(
        default_factory=lambda: {
            "password": 0.15, "software": 0.6, "hardware": 0.85, "network": 0.8, "access": 0.5,
        }
    )
    # Hours from resolution until the customer confirms (Close) or reopens (Reopen).
    confirm_hours_mean: float = 1.0
    reopen_hours_mean: float = 6.0
    auto_fail_reopen_hours_mean: float = 0.5
