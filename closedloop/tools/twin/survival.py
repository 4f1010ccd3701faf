"""Kaplan-Meier estimates for a log cut while cases still run (right-censoring).

A step that is still pending at the log's end (a shipment that has not yet
bounced, an approval not yet given) says only that its outcome took longer
than the time that has passed. Dropping such steps keeps the quick outcomes
and loses the slow ones: the share of a slow branch and its delays come out
too small. Efron's *redistribution to the right* keeps them: each pending
step hands its weight, in equal parts, to the steps of its group that took
longer than it has waited so far; the weighted outcomes are then the
Kaplan-Meier (Aalen-Johansen, for competing next activities) estimate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["km_curve", "redistributed_weights", "reweighted"]


def km_curve(times: np.ndarray, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier curve: (sorted times, share with no event by then).

    ``events`` is True where the time is an event and False where it is censored; at equal
    times the event goes first. The curve's last value is the plateau.
    """
    times = np.asarray(times, dtype=float)
    events = np.asarray(events, dtype=bool)
    order = np.lexsort((~events, times))
    at_risk = len(times) - np.arange(len(times))
    factors = np.where(events[order], 1.0 - 1.0 / at_risk, 1.0)
    return times[order], np.cumprod(factors)


def _group_weights(times: np.ndarray, pending: np.ndarray) -> np.ndarray:
    order = np.lexsort((pending, times))  # at equal times the finished step goes first
    n = len(times)
    at_risk = n - np.arange(n)
    done = ~pending[order]
    factors = np.where(done, 1.0 - 1.0 / at_risk, 1.0)
    before = np.r_[1.0, np.cumprod(factors)[:-1]]  # share still pending just before each step
    weights = np.empty(n)
    weights[order] = np.where(done, n * before / at_risk, 0.0)
    return weights


def redistributed_weights(times: np.ndarray, pending: np.ndarray, keys: pd.DataFrame) -> np.ndarray:
    """Per step, its weight once pending steps handed theirs to the longer steps of their group.

    ``times``: hours until the step's outcome (finished steps) or until the log's end
    (pending ones); ``pending``: True for the steps whose outcome is not known yet;
    ``keys``: columns whose values make a step's group (e.g. the activity it leaves), one row
    per step in the same order.
    Finished steps get at least 1, pending ones 0; a group without pending steps keeps
    weight 1 everywhere. A pending step that waited longer than any finished one of its
    group has no one to hand its weight to, so it is lost, as when it is dropped.
    """
    pending = np.asarray(pending, dtype=bool)
    weights = np.ones(len(pending))
    if not pending.any():
        return weights
    times = np.asarray(times, dtype=float)
    groups = keys.reset_index(drop=True).groupby(list(keys.columns), sort=False).indices
    for idx in groups.values():
        if pending[idx].any():
            weights[idx] = _group_weights(times[idx], pending[idx])
    return weights


def reweighted(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The sample ``weights`` describe, as many values as given: the weighted empirical
    distribution's mid-quantiles (``values`` unchanged when every weight is 1)."""
    values = np.asarray(values, dtype=float)
    weights = np.asarray(weights, dtype=float)
    if len(values) == 0 or bool((weights == 1.0).all()) or weights.sum() <= 0:
        return values
    order = np.argsort(values, kind="stable")
    cdf = np.cumsum(weights[order]) / weights.sum()
    at = (np.arange(len(values)) + 0.5) / len(values)
    return values[order][np.minimum(np.searchsorted(cdf, at, side="left"), len(values) - 1)]
