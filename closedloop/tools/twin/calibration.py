"""How far a twin's predictions can be trusted: quantiles and the twin's own backtest.

Plain data (pydantic, JSON round-trip safe) shared by
:mod:`closedloop.tools.twin.uncertainty` (prediction intervals),
:mod:`closedloop.tools.twin.backtest` (fit on the earlier part of a log,
predict the later part) and :class:`~closedloop.tools.twin.process_twin.ProcessTwin`,
which carries its backtest.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

__all__ = ["Quantiles", "TwinBacktest", "predictive_quantiles", "widest"]


class Quantiles(BaseModel):
    """A predictive distribution summarised: mean, p10 / p50 / p90 and the 95 % interval."""

    mean: float
    sd: float = Field(description="predictive standard deviation (all sources)")
    p10: float
    p50: float
    p90: float
    low95: float
    high95: float
    draws: int = Field(description="simulated draws behind it")

    def at_least(self, bound: float) -> Quantiles:
        """The same distribution with every quantile raised to ``bound`` where it falls below
        (a symmetric t cannot know that e.g. a relative change stops at -100 %)."""
        raised = {k: max(getattr(self, k), bound) for k in ("p10", "p50", "p90", "low95", "high95")}
        return self.model_copy(update=raised)


def predictive_quantiles(center: float, sd: float, draws: int) -> Quantiles:
    """Quantiles of a new draw around ``center``: Student t with ``draws - 1`` degrees of freedom.

    With few draws the t quantiles (and the ``sqrt(1 + 1/n)`` factor for
    predicting a new value rather than the mean) keep the interval honest.
    """
    sd = float(sd) if math.isfinite(sd) and sd > 0 else 0.0
    dof = max(draws - 1, 1)
    scale = sd * math.sqrt(1.0 + 1.0 / max(draws, 1))

    def q(p: float) -> float:
        return float(center + stats.t.ppf(p, dof) * scale)

    return Quantiles(
        mean=float(center), sd=sd, p10=q(0.10), p50=float(center), p90=q(0.90),
        low95=q(0.025), high95=q(0.975), draws=draws,
    )  # fmt: skip


def widest(*groups: list[float]) -> tuple[float, int]:
    """The largest sample standard deviation among groups of two values or more, and its size.

    Each group holds draws with more sources of uncertainty sampled than the
    one before (simulation only, + assumptions, + parameters); the widest is
    the honest spread, and its size sets the t quantiles' degrees of freedom.
    """
    best = (0.0, max((len(g) for g in groups), default=1))
    for g in groups:
        if len(g) > 1 and float(np.std(g, ddof=1)) > best[0]:
            best = (float(np.std(g, ddof=1)), len(g))
    return best


class TwinBacktest(BaseModel):
    """A twin fitted on the earlier part of a log, predicting the later part.

    The realised value is the mean cycle time (first start to last event seen)
    of the cases that started after the cut, as the log shows them (cases
    still open at the log's end count as far as they got); the prediction
    simulates forward from the cut (the open cases at the cut as the initial
    backlog, new arrivals on the twin's calendar up to the log's last case
    start, since a log extracted by case start admits none after it) and
    observes the simulated cases the same way, up to the log's end.

    ``replayed`` is the same forecast with the cases arriving when the log
    says they did: the process model judged apart from the arrival forecast
    (what a what-if changes; the arrivals are the same in both of its worlds).
    """

    status: Literal["ok", "skipped"] = "ok"
    reason: str = ""
    train_share: float
    cut: str | None = Field(None, description="ISO time of the cut")
    log_end: str | None = None
    train_cases: int = 0
    test_cases: int = 0
    open_at_cut: int = Field(0, description="cases still open at the cut (the initial backlog)")
    realised_hours: float | None = None
    predicted: Quantiles | None = None
    error_pct: float | None = Field(None, description="(predicted mean - realised) / realised")
    covered: bool | None = Field(None, description="realised value inside the 95 % interval")
    covered_80: bool | None = Field(None, description="realised value inside p10..p90")
    baseline_hours: float | None = Field(
        None, description="training mean cycle time (the naive forecast)"
    )
    baseline_error_pct: float | None = None
    replayed: Quantiles | None = Field(None, description="the forecast with the log's arrivals")
    replayed_error_pct: float | None = None
    replayed_covered: bool | None = None
    arrivals_per_day_before: float | None = Field(None, description="case starts, training")
    arrivals_per_day_after: float | None = Field(
        None, description="case starts after the cut, per day up to the log's last case start"
    )
    seconds: float = 0.0
