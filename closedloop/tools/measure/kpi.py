"""KPI deltas of a treatment cohort against a control cohort, with an interval.

``CohortStats`` lives in ``closedloop.contracts`` (it is part of a stored measurement).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy import stats

from closedloop.contracts import CohortStats
from closedloop.tools.base import read_tool
from closedloop.tools.errors import ToolError


class KpiDelta(BaseModel):
    """Treatment minus control, with a Welch t confidence interval."""

    kpi: str
    treatment: CohortStats
    control: CohortStats
    delta: float
    ci_low: float
    ci_high: float
    relative_pct: float
    confidence: float
    significant: bool


def _cohort(values: np.ndarray, confidence: float) -> CohortStats:
    n = len(values)
    mean = float(values.mean())
    if n < 2:
        return CohortStats(n=n, mean=mean, ci_low=mean, ci_high=mean)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return CohortStats(n=n, mean=mean, ci_low=mean - half, ci_high=mean + half)


@read_tool
def kpi_delta(
    treatment: list[float], control: list[float], kpi: str = "cycle_time_hours", confidence: float = 0.95
) -> KpiDelta:
    """Compare a KPI between treated and control cases.

    ``delta`` is treatment mean minus control mean (negative = treatment is
    lower, e.g. faster), with a Welch t interval; ``significant`` is true when
    the interval excludes zero. Needs at least 2 values per cohort.
    """
    t = np.asarray(treatment, dtype=float)
    c = np.asarray(control, dtype=float)
    if len(t) < 2 or len(c) < 2:
        raise ToolError(f"kpi_delta needs >= 2 cases per cohort (treatment {len(t)}, control {len(c)})")
    if not (np.isfinite(t).all() and np.isfinite(c).all()):
        raise ToolError("kpi_delta got non-finite KPI values")
    delta = float(t.mean() - c.mean())
    vt, vc = t.var(ddof=1) / len(t), c.var(ddof=1) / len(c)
    se = math.sqrt(vt + vc)
    if se == 0:
        low = high = delta
    else:
        dof = (vt + vc) ** 2 / ((vt**2) / (len(t) - 1) + (vc**2) / (len(c) - 1))
        half = stats.t.ppf(0.5 + confidence / 2, dof) * se
        low, high = delta - half, delta + half
    base = c.mean()
    return KpiDelta(
        kpi=kpi,
        treatment=_cohort(t, confidence),
        control=_cohort(c, confidence),
        delta=delta,
        ci_low=float(low),
        ci_high=float(high),
        relative_pct=float(100 * delta / base) if base else 0.0,
        confidence=confidence,
        significant=bool(low > 0 or high < 0),
    )


def cycle_times_by_cohort(frame: pd.DataFrame, cohort_column: str, labels: dict[str, str]) -> dict[str, list[float]]:
    """Case cycle times in hours (first start to last end) grouped by cohort label.

    ``labels`` maps a value of ``cohort_column`` to a cohort name, e.g.
    ``{"r1:treatment": "treatment", "r1:control": "control"}``; other cases are ignored.
    """
    if cohort_column not in frame.columns:
        raise ToolError(f"event frame has no column {cohort_column!r}; columns: {sorted(frame.columns)}")
    per_case = frame.groupby("case:concept:name").agg(
        start=("start_timestamp", "min"), end=("time:timestamp", "max"), cohort=(cohort_column, "first")
    )
    per_case["hours"] = (per_case["end"] - per_case["start"]).dt.total_seconds() / 3600.0
    out: dict[str, list[float]] = {name: [] for name in set(labels.values())}
    for value, name in labels.items():
        out[name].extend(per_case.loc[per_case["cohort"] == value, "hours"].tolist())
    return out
