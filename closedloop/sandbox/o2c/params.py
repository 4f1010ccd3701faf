"""Hidden parameters of the simulated order-to-cash system (the ground truth callers must find).

Durations are lognormal, given as (mean minutes, sigma of the underlying normal).
With the defaults the approvers are the bottleneck: the approval threshold
(2,500 EUR) sends more than half of all orders to two approvers, who work
weekdays 09-17 UTC only. Raising the threshold or adding an approver relieves
them. Segments differ in credit-hold rate and in the share of *risky* orders
(customers who will pay very late or never); manual approval rejects most risky
orders, so auto-approving a risky segment trades approval waits for overdue
receivables and write-offs. Address errors, caught only after shipping, depend
on the region.

:data:`REGIMES` names other worlds as overrides of these defaults; a regime is
chosen when the app is built and never shown through the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from closedloop.sandbox.params import DEFAULT_REGIME, Regime, with_overrides

SEGMENTS = ("enterprise", "mid_market", "small_business", "new_customer")
REGIONS = ("EMEA", "NA", "LATAM", "APAC")
PAYMENT_TERMS = ("NT14", "NT30", "NT60")
TERM_DAYS = {"NT14": 14, "NT30": 30, "NT60": 60}
TEAMS = ("CREDIT_DESK", "APPROVERS", "PICKERS", "PACKERS", "CUSTOMER_SERVICE", "BILLING")
SALES_ORGANIZATION = "1010"
CURRENCY = "EUR"

Duration = tuple[float, float]  # (mean minutes, lognormal sigma)


@dataclass(frozen=True)
class TeamSetup:
    """Initial headcount and working hours (UTC, Monday to Friday) of a team."""

    headcount: int
    start_hour: int
    end_hour: int


@dataclass(frozen=True)
class O2CParams:
    """All tunable knobs of the order-to-cash simulation."""

    # Orders per hour at the weekday peak; SimCalendar.arrival_weight shapes the rest
    # of the week (about 390 orders per week).
    peak_orders_per_hour: float = 6.0
    segment_weights: dict[str, float] = field(default_factory=lambda: {
        "enterprise": 0.15, "mid_market": 0.30, "small_business": 0.40, "new_customer": 0.15})
    region_weights: dict[str, float] = field(default_factory=lambda: {
        "EMEA": 0.45, "NA": 0.30, "LATAM": 0.12, "APAC": 0.13})
    # Customers per segment (SoldToParty is drawn from this pool).
    customers: dict[str, int] = field(default_factory=lambda: {
        "enterprise": 40, "mid_market": 150, "small_business": 600, "new_customer": 2000})
    # Net amount: lognormal (mean EUR, sigma) per segment.
    amount: dict[str, tuple[float, float]] = field(default_factory=lambda: {
        "enterprise": (16000.0, 0.7), "mid_market": (6000.0, 0.7),
        "small_business": (1800.0, 0.8), "new_customer": (4000.0, 0.9)})
    terms_weights: dict[str, dict[str, float]] = field(default_factory=lambda: {
        "enterprise": {"NT14": 0.0, "NT30": 0.3, "NT60": 0.7},
        "mid_market": {"NT14": 0.1, "NT30": 0.8, "NT60": 0.1},
        "small_business": {"NT14": 0.5, "NT30": 0.5, "NT60": 0.0},
        "new_customer": {"NT14": 0.8, "NT30": 0.2, "NT60": 0.0}})
    teams: dict[str, TeamSetup] = field(default_factory=lambda: {
        "CREDIT_DESK": TeamSetup(2, 7, 19), "APPROVERS": TeamSetup(2, 9, 17),
        "PICKERS": TeamSetup(3, 6, 22), "PACKERS": TeamSetup(2, 6, 22),
        "CUSTOMER_SERVICE": TeamSetup(1, 8, 17), "BILLING": TeamSetup(1, 7, 19)})
    approval_threshold: float = 2500.0

    credit_check_minutes: Duration = (8.0, 0.4)
    release_hold_minutes: Duration = (15.0, 0.5)
    manual_approval_minutes: Duration = (22.0, 0.5)
    pick_minutes: Duration = (18.0, 0.5)
    pack_minutes: Duration = (12.0, 0.4)
    ship_minutes: Duration = (45.0, 0.4)
    correct_address_minutes: Duration = (20.0, 0.5)
    invoice_minutes: Duration = (4.0, 0.4)
    # Hours a credit hold waits for the customer's documents before the desk can release it.
    hold_wait_hours_mean: float = 6.0
    # Days from shipping until a wrong address bounces back.
    address_bounce_days: tuple[float, float] = (1.0, 3.0)

    credit_hold_rate: dict[str, float] = field(default_factory=lambda: {
        "enterprise": 0.03, "mid_market": 0.08, "small_business": 0.15, "new_customer": 0.35})
    address_error_rate: dict[str, float] = field(default_factory=lambda: {
        "EMEA": 0.03, "NA": 0.04, "LATAM": 0.20, "APAC": 0.10})
    # Share of orders from customers who will pay very late or never.
    risky_rate: dict[str, float] = field(default_factory=lambda: {
        "enterprise": 0.01, "mid_market": 0.03, "small_business": 0.06, "new_customer": 0.35})
    # Manual approval rejects this share of risky orders (and a few sound ones).
    reject_risky: float = 0.85
    reject_sound: float = 0.01
    # Days late past the due date: segment mean, scaled per customer (lognormal sigma).
    lateness_days: dict[str, float] = field(default_factory=lambda: {
        "enterprise": 1.0, "mid_market": 3.0, "small_business": 4.0, "new_customer": 3.0})
    customer_lateness_sigma: float = 0.6
    lateness_noise_days: float = 2.5
    risky_extra_late_days: float = 35.0
    risky_write_off: float = 0.5
    dunning_after_days: float = 7.0
    write_off_after_days: float = 30.0


#: The bundled o2c regimes (overrides of :class:`O2CParams`; dicts merge key by key).
REGIMES: dict[str, Regime] = {r.name: r for r in (
    Regime("default", "The approvers are the bottleneck; auto-approving a segment trades "
           "approval waits for some overdue receivables (new customers are often risky).", {}),
    Regime("risky-auto-approve",
           "Many more risky customers among small businesses and new customers, paying later "
           "and written off more often: auto-approval still cuts approval waits but lets "
           "far more bad receivables through, so the guardrail (write-offs, dunning) "
           "worsens clearly.",
           {"risky_rate": {"mid_market": 0.08, "small_business": 0.25, "new_customer": 0.6},
            "risky_extra_late_days": 50.0, "risky_write_off": 0.8}),
    Regime("nothing-helps",
           "Four approvers working 6 to 22 leave no approval queue to speak of: orders wait "
           "mostly for the credit desk's and billing's working hours, so no headcount or "
           "threshold change shortens order-to-invoice time materially; no change is the "
           "right answer.",
           {"teams": {"APPROVERS": TeamSetup(4, 6, 22)}}),
)}


def params_for(regime: str = DEFAULT_REGIME) -> O2CParams:
    """The hidden parameters of a named o2c regime (ValueError for an unknown name)."""
    if regime not in REGIMES:
        raise ValueError(f"unknown o2c regime {regime!r}; known: {', '.join(REGIMES)}")
    return with_overrides(O2CParams(), REGIMES[regime])
