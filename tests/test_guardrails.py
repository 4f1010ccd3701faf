"""Guardrail KPIs measured from events, the abort check with its defaults, and the sequential check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from closedloop.contracts import GuardrailThresholds
from closedloop.tools.errors import ToolError
from closedloop.tools.log.columns import ACTIVITY, CASE, RESOURCE, START, TIME_DTYPE, TIMESTAMP
from closedloop.tools.measure import guardrail_check, guardrail_kpis, sequential_rework_check

T0 = datetime(2024, 1, 1, tzinfo=UTC)
END = T0 + timedelta(days=60)


def cases(
    n: int, reworked: int = 0, slow: int = 0, reopened: int = 0, failed: int = 0, prefix: str = "c"
) -> pd.DataFrame:
    """``n`` cases a day apart: the first ``reworked`` repeat Work, the next ``slow`` take 30 h instead
    of 6 h, the first ``reopened`` are reopened after Close, the first ``failed`` end with outcome 'bot
    failed'. Work is done by 'ann' (2 h), Close by 'bob' (0.5 h)."""
    rows = []
    for i in range(n):
        start = T0 + timedelta(minutes=10 * i)
        hours = 30.0 if reworked <= i < reworked + slow else 6.0
        steps = [("Register", None, 0.0, 0.0), ("Work", "ann", 1.0, 3.0)]
        if i < reworked:
            steps.append(("Work", "ann", 3.0, 5.0))
        steps.append(("Close", "bob", hours - 0.5, hours))
        if i < reopened:
            steps += [
                ("Reopen", None, hours + 1, hours + 1),
                ("Close", "bob", hours + 1.5, hours + 2),
            ]
        outcome = "bot failed" if i < failed else "ok"
        rows += [
            (f"{prefix}{i}", a, r, start + timedelta(hours=s), start + timedelta(hours=e), outcome)
            for a, r, s, e in steps
        ]
    df = pd.DataFrame(rows, columns=[CASE, ACTIVITY, RESOURCE, START, TIMESTAMP, "case:outcome"])
    df[START] = df[START].astype(TIME_DTYPE)
    df[TIMESTAMP] = df[TIMESTAMP].astype(TIME_DTYPE)
    return df


def kpis(frame: pd.DataFrame, **kw):
    return guardrail_kpis(frame, end_activities=["Close"], window_end=END, **kw)


BASE = kpis(cases(2000, reworked=200))


@pytest.mark.parametrize(("reworked", "aborts"), [(260, True), (220, False), (200, False)])
def test_rework_up_three_points_aborts_one_point_does_not(reworked, aborts) -> None:
    after = kpis(cases(2000, reworked=reworked))
    check = guardrail_check(BASE, after)
    rework = next(r for r in check.results if r.kpi == "rework_rate")
    assert rework.worsening == pytest.approx(100 * (reworked - 200) / 2000)
    assert rework.ci_low < rework.worsening < rework.ci_high
    assert check.breached is aborts and rework.breached is aborts
    assert bool(check.breaches) is aborts and ("rework_rate" in " ".join(check.breaches)) is aborts
    assert "rework +2" in check.rule and "SLA attainment -1" in check.rule


def test_a_large_but_noisy_worsening_does_not_abort() -> None:
    small_base, small_after = (
        kpis(cases(40, reworked=4)),
        kpis(cases(40, reworked=6)),
    )  # +5 points of 40
    result = guardrail_check(small_base, small_after).results[0]
    assert result.worsening == pytest.approx(5.0) and result.ci_low < 0 and not result.breached


def test_sla_attainment_down_more_than_one_point_aborts() -> None:
    before = kpis(cases(3000, slow=60), sla_hours=24)  # 98 % within 24 h
    assert before.sla_attainment.rate == pytest.approx(0.98) and before.sla_hours == 24
    worse = guardrail_check(before, kpis(cases(3000, slow=150), sla_hours=24))  # 95 %
    sla = next(r for r in worse.results if r.kpi == "sla_attainment")
    assert sla.worsening == pytest.approx(3.0) and sla.breached and worse.breached
    same = guardrail_check(before, kpis(cases(3000, slow=75), sla_hours=24))  # 97.5 %: -0.5 point
    assert not same.breached


def test_sla_counts_cases_still_open_past_the_limit_as_misses() -> None:
    frame = cases(100)
    frame = frame[
        ~((frame[CASE] == "c0") & (frame[ACTIVITY] == "Close"))
    ]  # c0 still open after 60 days
    m = kpis(frame, sla_hours=24)
    assert m.open_cases == 1 and m.sla_attainment.rate == pytest.approx(0.99)


def test_reopen_failure_and_staff_cost_from_events() -> None:
    frame = cases(100, reworked=10, reopened=5, failed=7)
    frame.loc[(frame[CASE] == "c50") & (frame[ACTIVITY] == "Work"), ACTIVITY] = (
        "Reopen"  # ann reopens it
    )
    m = kpis(
        frame,
        reopen_activities=["Reopen"],
        failure_attribute="case:outcome",
        failure_values=["bot failed"],
        hourly_cost={"first line": 30.0, "bob": 50.0},
        pool_of={"ann": "first line"},
    )
    assert (m.reopen.count, m.failure.count, m.rework.count) == (6, 7, 10)
    busy = 100 * 2.0 + 10 * 2.0 + 105 * 0.5  # Work, repeated Work, every Close
    assert m.busy_hours == pytest.approx(busy)
    assert (
        m.staff_cost == pytest.approx((100 + 10) * 2.0 * 30 + 105 * 0.5 * 50)
        and m.assumptions == []
    )
    unknown = kpis(frame, hourly_cost={"bob": 50.0})
    assert "ann" in unknown.assumptions[0] and unknown.staff_cost == pytest.approx(
        110 * 2.0 * 1.0 + 105 * 0.5 * 50
    )
    default = kpis(frame)
    assert default.failure is None and default.staff_cost == pytest.approx(default.busy_hours)
    assert "not known" in default.assumptions[0]


def test_failure_and_cost_guardrails() -> None:
    base, worse = kpis(cases(1000, failed=50), failure_activities=[]), kpis(cases(1000, failed=90))
    assert base.failure is None  # failure is measured only when it is defined
    by_attr = {"failure_attribute": "case:outcome", "failure_values": ["bot failed"]}
    check = guardrail_check(
        kpis(cases(1000, failed=50), **by_attr), kpis(cases(1000, failed=90), **by_attr)
    )
    assert [r.kpi for r in check.results if r.breached] == ["failure_rate"]
    assert worse.cost_per_case > 0
    dearer = kpis(cases(1000, reworked=1000))
    limited = guardrail_check(BASE, dearer, GuardrailThresholds(max_cost_increase_pct=10))
    cost = next(r for r in limited.results if r.kpi == "cost_per_case")
    assert cost.unit == "pct" and cost.worsening > 10 and cost.breached
    assert "cost_per_case" not in [r.kpi for r in guardrail_check(BASE, dearer).results]


def test_guardrail_kpis_need_cases() -> None:
    with pytest.raises(ToolError, match="no cases"):
        guardrail_kpis(cases(3), end_activities=["Close"], window_end=T0 - timedelta(days=1))


# --------------------------------------------------------------------------- sequential check
def test_sequential_check_aborts_early_on_a_three_point_rise() -> None:
    rng = np.random.default_rng(4)
    decision = sequential_rework_check(rng.random(5000) < 0.13, baseline_rate=0.10)
    assert decision.decision == "abort" and decision.stopped_at < 5000
    assert "false-abort rate <= ~0.05" in decision.rule


def test_sequential_check_keeps_its_false_abort_rate() -> None:
    rng = np.random.default_rng(11)
    runs = [
        sequential_rework_check(rng.random(4000) < 0.10, baseline_rate=0.10) for _ in range(300)
    ]
    false_aborts = np.mean([r.decision == "abort" for r in runs])
    assert false_aborts <= 0.08  # alpha 0.05 (Wald's bound alpha / (1 - beta) = 0.0625)
    misses = np.mean(
        [
            sequential_rework_check(rng.random(4000) < 0.12, baseline_rate=0.10).decision != "abort"
            for _ in range(200)
        ]
    )
    assert misses <= 0.3  # beta 0.2 at the full threshold
    assert sequential_rework_check([], baseline_rate=0.1).decision == "continue"
    with pytest.raises(ToolError):
        sequential_rework_check([True], baseline_rate=0.0)


def test_an_estimated_baseline_keeps_the_false_abort_rate() -> None:
    # The baseline rate is itself a sample (1,400 cases before the change). Taken as known, its
    # error makes an unchanged rework rate look like a breach well above alpha.
    rng = np.random.default_rng(5)
    true_rate, baseline_cases, plain, aware = 0.046, 1400, [], []
    for _ in range(400):
        estimated = rng.binomial(baseline_cases, true_rate) / baseline_cases
        changed = rng.random(800) < true_rate  # the change does not touch rework
        plain.append(sequential_rework_check(changed, estimated).decision == "abort")
        aware.append(
            sequential_rework_check(changed, estimated, baseline_cases=baseline_cases).decision
            == "abort"
        )
    assert np.mean(plain) > 0.06  # the nominal 5 % does not hold for an estimated baseline
    assert np.mean(aware) <= 0.05
    caught = [
        sequential_rework_check(
            rng.random(2000) < true_rate + 0.04,
            rng.binomial(baseline_cases, true_rate) / baseline_cases,
            baseline_cases=baseline_cases,
        ).decision
        == "abort"
        for _ in range(200)
    ]
    assert np.mean(caught) >= 0.8  # a rise of twice the threshold is still caught early
    decision = sequential_rework_check([False], 0.046, baseline_cases=baseline_cases)
    assert "of 1400 cases + one standard error" in decision.rule
    with pytest.raises(ToolError, match="too uncertain"):
        sequential_rework_check([False], 0.05, baseline_cases=10)
