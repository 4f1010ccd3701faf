"""Guardrail KPIs of a cohort or period, measured from its events, and the check that aborts a change.

Rework (an activity repeated in a case), reopen (a reopen activity, or any
event after the case first reached an end activity), failure (a failure
activity or outcome value), SLA attainment (share of cases closed within
``sla_hours``; open cases censored, Kaplan-Meier) and staff cost (busy hours x
hourly cost). :func:`guardrail_check` compares a changed cohort/period with its
baseline against :class:`closedloop.contracts.GuardrailThresholds`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime

import numpy as np
import pandas as pd
from scipy import stats

from closedloop.contracts import (
    GuardrailCheck,
    GuardrailKpis,
    GuardrailResult,
    GuardrailThresholds,
    RateStat,
)
from closedloop.tools.base import read_tool
from closedloop.tools.errors import ToolError
from closedloop.tools.log.columns import ACTIVITY, CASE, RESOURCE, START, TIMESTAMP
from closedloop.tools.measure.survival import case_table, kaplan_meier, utc_timestamp

DEFAULT_HOURLY_COST = 1.0


def case_quality(
    frame: pd.DataFrame,
    *,
    end_activities: Iterable[str],
    window_end: datetime,
    start_activities: Iterable[str] | None = None,
    reopen_activities: Iterable[str] = (),
    failure_activities: Iterable[str] = (),
    failure_attribute: str | None = None,
    failure_values: Iterable[object] = (),
) -> pd.DataFrame:
    """One row per case (indexed by case id, ordered by last event): the ``case_table`` columns
    plus ``last_time`` and the flags ``rework``, ``reopen`` and ``failure``."""
    ends = set(end_activities)
    cases = case_table(frame, ends, window_end, start_activities)
    if cases.empty:
        raise ToolError("guardrail KPIs: no cases in the window")
    events = frame[frame[CASE].isin(cases.index) & (frame[TIMESTAMP] <= utc_timestamp(window_end))]
    events = events.sort_values([CASE, TIMESTAMP])
    by_case = events.groupby(CASE)
    cases["last_time"] = by_case[TIMESTAMP].max()
    cases["rework"] = events.groupby([CASE, ACTIVITY]).size().groupby(level=0).max().gt(1)
    first_end = events[events[ACTIVITY].isin(ends)].groupby(CASE)[TIMESTAMP].min()
    after_end = events[TIMESTAMP] > events[CASE].map(first_end)
    reopened = events[after_end | events[ACTIVITY].isin(set(reopen_activities))][CASE].unique()
    cases["reopen"] = cases.index.isin(reopened)
    failed = events[ACTIVITY].isin(set(failure_activities))
    if failure_attribute is not None:
        if failure_attribute not in events.columns:
            raise ToolError(
                f"event frame has no column {failure_attribute!r}; "
                f"columns: {sorted(events.columns)}"
            )
        failed |= events[failure_attribute].isin(list(failure_values))
    cases["failure"] = cases.index.isin(events[failed][CASE].unique())
    return cases.sort_values("last_time")


def _rate(flags: pd.Series) -> RateStat:
    n, k = len(flags), int(flags.sum())
    p = k / n if n else 0.0
    return RateStat(rate=p, n=n, se=math.sqrt(p * (1 - p) / n) if n else 0.0, count=k)


def _sla(cases: pd.DataFrame, sla_hours: float) -> RateStat:
    """Share closed within ``sla_hours``: 1 - S(sla) of the Kaplan-Meier curve, Greenwood error."""
    curve = kaplan_meier(cases["hours"], cases["closed"])
    s = float(curve.at(sla_hours))
    keep = (curve.times <= sla_hours) & (curve.at_risk > curve.events)
    var = s**2 * float(
        np.sum(
            curve.events[keep] / (curve.at_risk[keep] * (curve.at_risk[keep] - curve.events[keep]))
        )
    )
    count = int(((cases["hours"] <= sla_hours) & cases["closed"]).sum())
    return RateStat(rate=1 - s, n=len(cases), se=math.sqrt(var), count=count)


def _staff_cost(
    events: pd.DataFrame,
    hourly_cost: float | Mapping[str, float] | None,
    pool_of: Mapping[str, str] | None,
) -> tuple[float, float, list[str]]:
    """(busy hours, staff cost, assumptions): busy hours are the events' start-to-complete spans."""
    if START not in events.columns or RESOURCE not in events.columns:
        return 0.0, 0.0, ["no start times or resources in the events: staff cost not measured (0)"]
    spans = events.dropna(subset=[START, RESOURCE])
    hours = (spans[TIMESTAMP] - spans[START]).dt.total_seconds().clip(lower=0) / 3600.0
    busy = float(hours.sum())
    if hourly_cost is None:
        return (
            busy,
            busy * DEFAULT_HOURLY_COST,
            [f"hourly staff cost not known: {DEFAULT_HOURLY_COST:g} per busy hour for everyone"],
        )
    if not isinstance(hourly_cost, Mapping):
        return (
            busy,
            busy * float(hourly_cost),
            [f"one hourly staff cost ({hourly_cost:g}) for every pool"],
        )
    pools = spans[RESOURCE].map(lambda r: (pool_of or {}).get(r, r))
    rates = pools.map(lambda p: hourly_cost.get(p))
    missing = sorted(set(pools[rates.isna()]))
    notes = (
        [f"hourly staff cost not known for {', '.join(missing)}: {DEFAULT_HOURLY_COST:g} assumed"]
        if missing
        else []
    )
    return busy, float((hours * rates.fillna(DEFAULT_HOURLY_COST).astype(float)).sum()), notes


@read_tool
def guardrail_kpis(
    frame: pd.DataFrame,
    *,
    end_activities: Iterable[str],
    window_end: datetime,
    start_activities: Iterable[str] | None = None,
    reopen_activities: Iterable[str] = (),
    failure_activities: Iterable[str] = (),
    failure_attribute: str | None = None,
    failure_values: Iterable[object] = (),
    sla_hours: float | None = None,
    hourly_cost: float | Mapping[str, float] | None = None,
    pool_of: Mapping[str, str] | None = None,
) -> GuardrailKpis:
    """Guardrail KPIs of the cases in ``frame`` (one cohort or period) up to ``window_end``.

    Failure is measured only when failure activities or an attribute are given,
    SLA attainment only with ``sla_hours``. ``hourly_cost`` is one rate or a
    rate per pool (``pool_of`` maps resources to pools; without it the keys
    are resources); an unknown rate is declared in ``assumptions``.
    """
    failure_activities = list(failure_activities)
    cases = case_quality(
        frame,
        end_activities=end_activities,
        window_end=window_end,
        start_activities=start_activities,
        reopen_activities=reopen_activities,
        failure_activities=failure_activities,
        failure_attribute=failure_attribute,
        failure_values=failure_values,
    )
    events = frame[frame[CASE].isin(cases.index) & (frame[TIMESTAMP] <= utc_timestamp(window_end))]
    busy, cost, assumptions = _staff_cost(events, hourly_cost, pool_of)
    measured_failure = bool(failure_activities) or failure_attribute is not None
    return GuardrailKpis(
        cases=len(cases),
        open_cases=int((~cases["closed"]).sum()),
        rework=_rate(cases["rework"]),
        reopen=_rate(cases["reopen"]),
        failure=_rate(cases["failure"]) if measured_failure else None,
        sla_attainment=_sla(cases, sla_hours) if sla_hours is not None else None,
        sla_hours=sla_hours,
        busy_hours=busy,
        staff_cost=cost,
        cost_per_case=cost / len(cases),
        assumptions=assumptions,
    )


def _wilson(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def difference_interval(
    base: RateStat, changed: RateStat, confidence: float = 0.95
) -> tuple[float, float]:
    """Interval of ``changed.rate - base.rate``: Newcombe's hybrid score interval for counts, else Wald."""
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    diff = changed.rate - base.rate
    if (
        base.count is not None
        and changed.count is not None
        and base.rate == base.count / base.n
        and changed.rate == changed.count / changed.n
    ):
        l1, u1 = _wilson(changed.count, changed.n, z)
        l0, u0 = _wilson(base.count, base.n, z)
        return (
            diff - math.sqrt((changed.rate - l1) ** 2 + (u0 - base.rate) ** 2),
            diff + math.sqrt((u1 - changed.rate) ** 2 + (base.rate - l0) ** 2),
        )
    half = z * math.hypot(base.se, changed.se)
    return diff - half, diff + half


def _rate_result(
    kpi: str,
    base: RateStat,
    changed: RateStat,
    threshold: float,
    up_is_worse: bool,
    confidence: float,
) -> GuardrailResult:
    low, high = difference_interval(base, changed, confidence)
    sign = 1.0 if up_is_worse else -1.0
    worse_low, worse_high = sorted((sign * 100 * low, sign * 100 * high))
    worsening = sign * 100 * (changed.rate - base.rate)
    return GuardrailResult(
        kpi=kpi,
        unit="points",
        baseline=base.rate,
        changed=changed.rate,
        worsening=worsening,
        ci_low=worse_low,
        ci_high=worse_high,
        threshold=threshold,
        breached=bool(worsening > threshold and worse_low > 0),
    )


@read_tool
def guardrail_check(
    baseline: GuardrailKpis, changed: GuardrailKpis, thresholds: GuardrailThresholds | None = None
) -> GuardrailCheck:
    """Which guardrails the change breached (``changed`` = treatment / after, ``baseline`` = control / before).

    A guardrail breaches when its estimated worsening exceeds its threshold
    AND the worsening is significant (its interval excludes zero), so noise
    alone does not abort a change. Rates are in percentage points; cost in %
    of the baseline cost per case (checked only with a threshold).
    """
    th = thresholds or GuardrailThresholds()
    c = th.confidence
    results = [
        _rate_result(
            "rework_rate", baseline.rework, changed.rework, th.max_rework_increase_points, True, c
        ),
        _rate_result(
            "reopen_rate", baseline.reopen, changed.reopen, th.max_reopen_increase_points, True, c
        ),
    ]
    if baseline.failure is not None and changed.failure is not None:
        results.append(
            _rate_result(
                "failure_rate",
                baseline.failure,
                changed.failure,
                th.max_failure_increase_points,
                True,
                c,
            )
        )
    if baseline.sla_attainment is not None and changed.sla_attainment is not None:
        results.append(
            _rate_result(
                "sla_attainment",
                baseline.sla_attainment,
                changed.sla_attainment,
                th.max_sla_drop_points,
                False,
                c,
            )
        )
    if th.max_cost_increase_pct is not None and baseline.cost_per_case > 0:
        pct = 100 * (changed.cost_per_case - baseline.cost_per_case) / baseline.cost_per_case
        results.append(
            GuardrailResult(
                kpi="cost_per_case",
                unit="pct",
                baseline=baseline.cost_per_case,
                changed=changed.cost_per_case,
                worsening=pct,
                ci_low=None,
                ci_high=None,
                threshold=th.max_cost_increase_pct,
                breached=pct > th.max_cost_increase_pct,
            )
        )
    breaches = [
        f"{r.kpi} worsened by {r.worsening:.2f} {r.unit} (limit {r.threshold:g})"
        + (f", interval [{r.ci_low:.2f}, {r.ci_high:.2f}]" if r.ci_low is not None else "")
        for r in results
        if r.breached
    ]
    rule = (
        f"abort when a guardrail worsens beyond its limit and significantly ({c:.0%} interval "
        f"excludes no worsening): rework +{th.max_rework_increase_points:g}, reopen "
        f"+{th.max_reopen_increase_points:g}, failure +{th.max_failure_increase_points:g} points, "
        f"SLA attainment -{th.max_sla_drop_points:g} points"
        + (
            f", cost per case +{th.max_cost_increase_pct:g} %"
            if th.max_cost_increase_pct is not None
            else ""
        )
    )
    return GuardrailCheck(breached=bool(breaches), breaches=breaches, results=results, rule=rule)
