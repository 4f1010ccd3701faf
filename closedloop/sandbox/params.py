"""Hidden parameters of the simulated helpdesk (the "ground truth" callers must discover).

Durations are lognormal, given as (mean minutes, sigma of the underlying normal).
With the defaults, L1 (3 agents) runs close to capacity during business hours and
is the clear bottleneck; L2 (2 agents) is moderately loaded.

:data:`REGIMES` names other worlds as documented overrides of these defaults
(``second-line-bottleneck``, ``unreliable-bot``, ``overload``, ``nothing-helps``);
``default`` overrides nothing. A regime is chosen when the app is built and is
never visible through the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TypeVar

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
P = TypeVar("P")


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


@dataclass(frozen=True)
class Regime:
    """A named world: overrides of :class:`SandboxParams` fields, chosen at startup.

    A dict-valued override is merged key by key into the default dict (so
    ``{"password": 0.7}`` changes one category and keeps the others).
    """

    name: str
    summary: str
    overrides: dict[str, object]


#: The bundled helpdesk regimes. Only the hidden dynamics change (and the initial
#: staffing, which ``GET /config`` shows anyway); the API is the same in all of them.
REGIMES: dict[str, Regime] = {r.name: r for r in (
    Regime("default", "L1 (3 agents) runs near capacity and is the clear bottleneck; "
           "L2 (2 agents) is moderately loaded; the bot fails on 15 % of password resets.", {}),
    Regime("second-line-bottleneck",
           "L1 triage escalates far more tickets (hardware, network, software, access) and "
           "L2 resolves them more slowly, so L2 (2 agents, about 90 % busy) is the constraint "
           "while L1 (4 agents) has slack: one more L2 agent helps most.",
           {"staffing": {"L1": 4},
            "escalation_probability": {"password": 0.05, "software": 0.5, "hardware": 0.85,
                                       "network": 0.8, "access": 0.4},
            "resolve_l2_minutes": {"password": (13.0, 0.5), "software": (31.0, 0.6),
                                   "hardware": (40.0, 0.6), "network": (35.0, 0.6),
                                   "access": (22.0, 0.6)}}),
    Regime("unreliable-bot",
           "The Auto-resolve bot fails on 70 % of the routine password resets (and more "
           "elsewhere) and customers notice hours later, so auto-resolve rules add rework: "
           "reopens rise and cycle time gets longer. L1 has a fourth agent, so the bot's "
           "rework, not a saturated L1 that any relief would help, decides the effect.",
           {"staffing": {"L1": 4},
            "auto_resolve_failure": {"password": 0.7, "software": 0.85, "hardware": 0.95,
                                     "network": 0.95, "access": 0.8},
            "auto_fail_reopen_hours_mean": 4.0}),
    Regime("overload",
           "Arrivals about 17 % above the default (peak 7 per hour): L1 is loaded beyond its "
           "capacity, backlogs grow week over week and every relief of L1 pays off.",
           {"peak_arrivals_per_hour": 7.0}),
    Regime("nothing-helps",
           "Generous staffing (L1 8, L2 5) leaves only start-of-day backlogs, the bot fails "
           "on most tickets of every category and L2 is slower than L1 for every category: "
           "no staffing change, auto-resolve or routing rule shortens cycle time materially, "
           "so no change is the right answer.",
           {"staffing": {"L1": 8, "L2": 5},
            "auto_resolve_failure": {"password": 0.8, "software": 0.9, "hardware": 0.95,
                                     "network": 0.95, "access": 0.9},
            "auto_fail_reopen_hours_mean": 6.0,
            "resolve_l2_minutes": {"password": (40.0, 0.5), "software": (100.0, 0.6),
                                   "hardware": (60.0, 0.6), "network": (60.0, 0.6),
                                   "access": (50.0, 0.6)}}),
)}
DEFAULT_REGIME = "default"


def with_overrides(base: P, regime: Regime) -> P:
    """``base`` (a params dataclass) with the regime's overrides; dicts merge key by key."""
    changes = {
        name: {**getattr(base, name), **value} if isinstance(value, dict) else value
        for name, value in regime.overrides.items()
    }
    return replace(base, **changes)  # type: ignore[type-var]  # P is always a dataclass


def params_for(regime: str = DEFAULT_REGIME) -> SandboxParams:
    """The hidden parameters of a named regime (ValueError for an unknown name)."""
    if regime not in REGIMES:
        raise ValueError(f"unknown helpdesk regime {regime!r}; known: {', '.join(REGIMES)}")
    return with_overrides(SandboxParams(), REGIMES[regime])
