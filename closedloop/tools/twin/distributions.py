"""Duration distributions of a process twin: fit, choose, sample by inverse CDF.

A duration (processing time, extraneous delay) is modelled as a point mass at
zero plus a distribution of the positive values. The positive part is the
best of a few families, chosen by two-fold cross-validated Wasserstein
distance (earth mover's distance, in hours): fit on one half of the values,
measure how far the fitted distribution is from the other half, and the
other way round. The empirical distribution competes too (its score is the
sampling noise between the halves), so a parametric family only wins when it
describes unseen data at least as well as the data itself; with fewer than
MIN_FIT values the empirical distribution is used as is.

Sampling is by inverse CDF from uniforms, so the same uniforms give the same
durations in an as-is and a what-if run (common random numbers).
Parametric draws are capped at TAIL_CAP times the largest observed value.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

Family = Literal["lognormal", "gamma", "exponential", "empirical", "zero"]
SAMPLE_CAP = 2000
MIN_FIT = 20
TAIL_CAP = 2.0
ZERO = 1e-9  # hours; shorter durations count as zero (0.0036 ms)


class DurationModel(BaseModel):
    """A fitted distribution of durations in hours (see module docstring)."""

    family: Family
    count: int = Field(description="values it was fitted on")
    zero_share: float = Field(description="share of values that are zero")
    params: dict[str, float] = Field(default_factory=dict)
    sample: list[float] = Field(
        default_factory=list, description="sorted positive values (<= 2000), empirical quantiles"
    )
    mean_hours: float
    max_hours: float
    scores: dict[str, float] = Field(
        default_factory=dict, description="cross-validated Wasserstein distance (hours) per family"
    )


def _quantiles(values: np.ndarray, n: int) -> np.ndarray:
    """n evenly spaced quantiles of a sorted sample (mid-points)."""
    idx = ((np.arange(n) + 0.5) / n * len(values)).astype(np.int64)
    return values[np.minimum(idx, len(values) - 1)]


def _subsample(values: np.ndarray) -> list[float]:
    if len(values) > SAMPLE_CAP:
        values = _quantiles(values, SAMPLE_CAP)
    return [round(float(v), 7) for v in values]


def _fit(family: str, x: np.ndarray) -> dict[str, float]:
    if family == "lognormal":
        logs = np.log(x)
        return {"mu": float(logs.mean()), "sigma": float(max(logs.std(), 1e-6))}
    if family == "gamma":
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # scipy's optimiser on odd samples
            shape, _, scale = stats.gamma.fit(x, floc=0)
        return {"shape": float(shape), "scale": float(scale)}
    return {"scale": float(x.mean())}


def _ppf(family: str, params: dict[str, float], q: np.ndarray) -> np.ndarray:
    if family == "lognormal":
        return np.exp(params["mu"] + params["sigma"] * stats.norm.ppf(q))
    if family == "gamma":
        return stats.gamma.ppf(q, params["shape"], scale=params["scale"])
    return -params["scale"] * np.log1p(-q)


def _w1(fitted_on: np.ndarray, other: np.ndarray, family: str) -> float:
    """Wasserstein distance between ``family`` fitted on one half and the other half."""
    other = np.sort(other)
    if family == "empirical":
        return float(stats.wasserstein_distance(fitted_on, other))
    q = (np.arange(len(other)) + 0.5) / len(other)
    model = np.minimum(_ppf(family, _fit(family, fitted_on), q), TAIL_CAP * fitted_on.max())
    return float(np.abs(model - other).mean())


def fit_duration(values: np.ndarray, rng: np.random.Generator | None = None) -> DurationModel:
    """Fit the best duration distribution to ``values`` (hours, >= 0; see module docstring)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return DurationModel(family="zero", count=0, zero_share=1.0, mean_hours=0.0, max_hours=0.0)
    positive = np.sort(values[values > ZERO])
    base = {
        "count": len(values),
        "zero_share": round(1 - len(positive) / len(values), 6),
        "mean_hours": float(values.mean()),
        "max_hours": float(values.max()),
    }
    if len(positive) == 0:
        return DurationModel(family="zero", **base)
    sample = _subsample(positive)
    if len(positive) < MIN_FIT or positive[-1] - positive[0] <= 1e-6 * positive[-1]:
        return DurationModel(family="empirical", sample=sample, **base)
    rng = rng or np.random.default_rng(0)
    shuffled = rng.permutation(positive)
    half_a, half_b = shuffled[: len(shuffled) // 2], shuffled[len(shuffled) // 2 :]
    scores = {}
    for family in ("lognormal", "gamma", "exponential", "empirical"):
        try:
            score = (_w1(half_a, half_b, family) + _w1(half_b, half_a, family)) / 2
        except (ValueError, FloatingPointError, RuntimeError):
            continue  # a family that cannot be fitted (scipy optimiser) simply does not compete
        if math.isfinite(score):
            scores[family] = round(score, 6)
    best = min(scores, key=lambda f: (scores[f], f == "empirical"))
    params = {} if best == "empirical" else _fit(best, positive)
    return DurationModel(
        family=best, params=params, sample=sample if best == "empirical" else [], scores=scores,
        **base,
    )  # fmt: skip


def constant_duration(hours: float) -> DurationModel:
    """A duration that is always ``hours``."""
    if hours <= ZERO:
        return DurationModel(family="zero", count=1, zero_share=1.0, mean_hours=0.0, max_hours=0.0)
    return DurationModel(
        family="empirical", count=1, zero_share=0.0, sample=[hours], mean_hours=hours,
        max_hours=hours,
    )  # fmt: skip


class DurationSampler:
    """Inverse-CDF sampling of a DurationModel (vectorised over uniforms)."""

    def __init__(self, model: DurationModel) -> None:
        self.model = model
        self.zero = model.zero_share
        self.sample = np.asarray(model.sample, dtype=float)
        self.cap = TAIL_CAP * model.max_hours

    def __call__(self, u: np.ndarray) -> np.ndarray:
        m = self.model
        out = np.zeros(len(u))
        if m.family == "zero" or len(u) == 0:
            return out
        pos = u >= self.zero
        v = (u[pos] - self.zero) / max(1 - self.zero, 1e-12)
        v = np.clip(v, 0.0, 1 - 1e-12)
        if m.family == "empirical":
            n = len(self.sample)
            out[pos] = self.sample[np.minimum((v * n).astype(np.int64), n - 1)]
        else:
            out[pos] = np.minimum(_ppf(m.family, m.params, v), self.cap)
        return out
