"""Building an effect estimate: a model's interval, the censoring horizon, the interval of a difference.

Shared by the designs in ``designs``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd
from pydantic import BaseModel, Field, model_validator
from scipy import stats

from closedloop.contracts import EffectEstimate


class Interval(BaseModel):
    """A model's estimate with its interval (e.g. the twin's simulated as-is mean cycle time)."""

    mean: float
    ci_low: float
    ci_high: float
    confidence: float = Field(default=0.95, gt=0, lt=1)
    source: str = "model"

    @model_validator(mode="after")
    def _contains(self) -> Interval:
        if not self.ci_low <= self.mean <= self.ci_high:
            raise ValueError(
                f"interval [{self.ci_low}, {self.ci_high}] does not contain {self.mean}"
            )
        return self

    @property
    def se(self) -> float:
        """Standard error implied by a normal interval."""
        return (self.ci_high - self.ci_low) / (2 * stats.norm.ppf(0.5 + self.confidence / 2))


class CarryOverPrediction(BaseModel):
    """A model's switchback over the live blocks: what on-minus-off misses of the total effect
    (``miss``, hours), and the off-blocks' mean cycle time in the model with the change toggled
    (``off_toggled_hours``) and without it (``off_as_is_hours``): carry-over is the change
    reaching the off-blocks, which the live off-blocks can confirm or refute."""

    miss: Interval
    off_toggled_hours: float
    off_as_is_hours: float


def interference_correction(predicted_total: Interval, predicted_direct: Interval) -> Interval:
    """The hours to add to a treatment-minus-control difference to get the total effect.

    Both come from the same model run with the partial rollout: ``predicted_total``
    is its change for everyone vs no one, ``predicted_direct`` its own
    treatment-minus-control difference. Their errors are combined as independent
    (conservative when they are positively correlated, as runs of one model are).
    """
    mean = predicted_total.mean - predicted_direct.mean
    se = math.hypot(predicted_total.se, predicted_direct.se)
    z = stats.norm.ppf(0.975)
    return Interval(
        mean=mean,
        ci_low=mean - z * se,
        ci_high=mean + z * se,
        confidence=0.95,
        source=f"{predicted_total.source}: total minus direct effect",
    )


def _estimator(open_cases: int, tau: float | None) -> str:
    if open_cases == 0:
        return "mean cycle time (every case closed)"
    return f"restricted mean cycle time up to {tau:.1f} h (Kaplan-Meier, {open_cases} open cases censored)"


def horizon(groups: Iterable[pd.DataFrame], tau_hours: float | None) -> float:
    """Common horizon: the caller's, else the longest time seen in any group.

    Not the shortest group's follow-up (the textbook RMST choice): that would
    cap the slower group's long cases and bias the difference towards zero. A
    group whose curve ends earlier while still open is held flat (or continued
    with its arm's pooled curve), so its restricted mean is a lower bound.
    """
    if tau_hours is not None:
        return float(tau_hours)
    return float(max(g["hours"].max() for g in groups if len(g)))


def estimate(
    design: str,
    why: str,
    effect: float,
    se: float,
    dof: float | None,
    confidence: float,
    baseline: float,
    unit: str,
    units: tuple[int, int],
    cases: pd.DataFrame,
    tau: float | None,
    assumptions: list[str],
) -> EffectEstimate:
    """The estimate of ``design``: ``effect`` +- a t (with ``dof``) or normal quantile x ``se``.

    ``baseline`` is the no-change level, ``units`` the number of units (blocks or
    cases) with and without the change, ``cases`` the case table actually used.
    """
    q = stats.t.ppf(0.5 + confidence / 2, dof) if dof else stats.norm.ppf(0.5 + confidence / 2)
    low, high = effect - q * se, effect + q * se
    open_cases = int((~cases["closed"]).sum())
    return EffectEstimate(
        design=design,
        why=why,
        effect=float(effect),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        baseline=float(baseline),
        changed=float(baseline + effect),
        relative_pct=float(100 * effect / baseline) if baseline else None,
        significant=bool(low > 0 or high < 0),
        unit=unit,
        units_changed=units[0],
        units_baseline=units[1],
        cases=len(cases),
        open_cases=open_cases,
        estimator=_estimator(open_cases, tau),
        tau_hours=tau if open_cases else None,
        assumptions=assumptions,
    )
