"""Sales orders of the o2c sandbox: their attributes, hidden fate and OData representation.

An order's attributes and fate are drawn when it arrives from its own seeded
stream (nothing the caller changes alters them): segment, region, customer,
net amount, payment terms, and whether it is *risky* (the customer will pay
very late or never), lands on credit hold, has a wrong ship-to address, and
how late its customer pays. Durations come from a second per-order stream.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from closedloop.sandbox.o2c.params import (
    CURRENCY,
    PAYMENT_TERMS,
    REGIONS,
    SALES_ORGANIZATION,
    SEGMENTS,
    O2CParams,
)
from closedloop.sandbox.simclock import SimCalendar

_CUSTOMER_PREFIX = {"enterprise": "10", "mid_market": "20", "small_business": "30",
                    "new_customer": "40"}


@dataclass(eq=False)
class Order:
    """A sales order moving through order-to-cash."""

    order_id: str
    created: float
    customer: str
    segment: str
    region: str
    amount: float
    terms: str
    risky: bool
    credit_hold: bool
    address_error: bool
    lateness_days: float
    reject_draw: float
    write_off_draw: float
    durations: random.Random = field(repr=False)
    experiment: str = ""
    auto_approve: bool = False
    status: str = "Created"
    approval: str = ""
    due: float | None = None

    def attributes(self) -> dict[str, Any]:
        """Case attributes repeated on every status-history entry."""
        return {
            "SoldToParty": self.customer, "CustomerSegment": self.segment,
            "SalesRegion": self.region, "TotalNetAmount": self.amount,
            "TransactionCurrency": CURRENCY, "CustomerPaymentTerms": self.terms,
            "Experiment": self.experiment,
        }

    def entity(self, calendar: SimCalendar) -> dict[str, Any]:
        """The order as an entity of ``A_SalesOrder``."""
        return {
            "SalesOrder": self.order_id, "SalesOrganization": SALES_ORGANIZATION,
            **self.attributes(),
            "CreationDateTime": calendar.iso(self.created),
            "OverallStatus": self.status, "ApprovalStatus": self.approval,
            "DueDate": None if self.due is None else calendar.iso(self.due),
        }


def _pick(rng: random.Random, weights: dict[str, float], domain: tuple[str, ...]) -> str:
    return rng.choices(domain, weights=[weights.get(v, 0.0) for v in domain])[0]


def customer_lateness(seed: int, customer: str, segment: str, params: O2CParams) -> float:
    """The customer's habitual days late (fixed per seed and customer)."""
    sigma = params.customer_lateness_sigma
    rng = random.Random(f"closedloop-o2c-customer:{seed}:{customer}")
    return params.lateness_days[segment] * rng.lognormvariate(-sigma * sigma / 2.0, sigma)


def draw_order(seed: int, number: int, now: float, params: O2CParams) -> Order:
    """The ``number``-th order of the simulation, arriving at ``now``."""
    order_id = str(5_000_000 + number)
    rng = random.Random(f"closedloop-o2c-order:{seed}:{order_id}")
    p = params
    segment = _pick(rng, p.segment_weights, SEGMENTS)
    region = _pick(rng, p.region_weights, REGIONS)
    customer = f"{_CUSTOMER_PREFIX[segment]}{rng.randrange(p.customers[segment]):06d}"
    mean, sigma = p.amount[segment]
    amount = round(rng.lognormvariate(math.log(mean) - sigma * sigma / 2.0, sigma), 2)
    terms = _pick(rng, p.terms_weights[segment], PAYMENT_TERMS)
    lateness = customer_lateness(seed, customer, segment, p) + rng.gauss(0, p.lateness_noise_days)
    return Order(
        order_id=order_id, created=now, customer=customer, segment=segment, region=region,
        amount=amount, terms=terms,
        risky=rng.random() < p.risky_rate[segment],
        credit_hold=rng.random() < p.credit_hold_rate[segment],
        address_error=rng.random() < p.address_error_rate[region],
        lateness_days=lateness, reject_draw=rng.random(), write_off_draw=rng.random(),
        durations=random.Random(f"closedloop-o2c-durations:{seed}:{order_id}"),
    )
