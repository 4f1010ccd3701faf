"""What a simulation predicts for a change, in the units the Watchdog measures."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    Field,
)


class Prediction(BaseModel):
    """The simulated change of mean cycle time of a plan, with its 95% interval.

    ``delta_hours`` and its interval are over all cases; a partial rollout
    changes only the treated cases, so ``*_per_treated_case_hours`` (the
    overall numbers over ``treated_share``) are what a treatment-vs-control
    measurement is compared with.
    """

    baseline_hours: float
    delta_hours: float
    delta_per_treated_case_hours: float
    treated_share: float = Field(ge=0, le=1)
    ci_low_hours: float
    ci_high_hours: float
    delta_pct: float
    ci_low_pct: float
    ci_high_pct: float
    ci_low_per_treated_case_hours: float
    ci_high_per_treated_case_hours: float
    # From the twin's predict (simulation noise + bootstrap over cases + declared assumptions);
    # None for predictions made from simulation noise alone.
    p10_pct: float | None = None
    p50_pct: float | None = None
    p90_pct: float | None = Field(None, description="the plan's conservative bound (one-sided 90 %)")
    p10_hours: float | None = None
    p90_hours: float | None = None
    bootstrap: int | None = Field(None, description="twins refitted on resampled cases")
    spread_pct: dict[str, float] = Field(default_factory=dict,
                                         description="sd of the change per source of uncertainty")
    assumptions: list[dict[str, Any]] = Field(
        default_factory=list,
        description="parameters the log cannot show: name, range, point, source (for the approver)")


# --------------------------------------------------------------------------- measurement
