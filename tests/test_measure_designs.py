"""Measurement designs on a simulated shared queue with a known truth, and censoring of open cases."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from closedloop.contracts import Guardrails, KpiMeasurement
from closedloop.tools.errors import ToolError
from closedloop.tools.log.columns import ACTIVITY, CASE, START, TIME_DTYPE, TIMESTAMP
from closedloop.tools.measure import (
    Interval,
    before_after_with_counterfactual,
    case_table,
    choose_design,
    interference_correction,
    kaplan_meier,
    restricted_mean,
    switchback,
    treatment_control_corrected,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
LABELS = {"r1:treatment": "treatment", "r1:control": "control"}
SLOW, FAST = 1.2, 0.8  # mean service hours without / with the change; one arrival per hour


def erlang_c_cycle_time(rate: float, service: float, servers: int) -> float:
    """Mean time in an M/M/c queue (waiting + service), the analytic truth."""
    a = rate * service
    rho = a / servers
    top = a**servers / math.factorial(servers) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(servers)) + top)
    return service + p_wait * service / (servers - a)


def shared_queue(
    hours: float,
    treated: Callable[[float, np.random.Generator], bool],
    seed: int,
    servers: Callable[[float], int] = lambda t: 2,
) -> list[tuple[str, float, float, float, bool]]:
    """FIFO queue shared by every case; a treated case (decided at arrival) is served faster."""
    rng = np.random.default_rng(seed)
    free, t, rows = [0.0] * servers(0.0), 0.0, []
    while (t := t + rng.exponential(1.0)) < hours:
        while len(free) < servers(t):  # staff added: the new person is free now
            heapq.heappush(free, t)
        is_treated = treated(t, rng)
        service = rng.exponential(FAST if is_treated else SLOW)
        begin = max(t, heapq.heappop(free))
        heapq.heappush(free, begin + service)
        rows.append((f"c{len(rows)}", t, begin, begin + service, is_treated))
    return rows


def event_frame(rows: list[tuple[str, float, float, float, bool]]) -> pd.DataFrame:
    """Register at arrival, Resolve from service start to end; the cohort as case attribute."""
    events = [(c, "Register", a, a, tr) for c, a, _, _, tr in rows]
    events += [(c, "Resolve", b, e, tr) for c, _, b, e, tr in rows]
    df = pd.DataFrame(events, columns=[CASE, ACTIVITY, "s", "e", "treated"])
    at = pd.Timestamp(T0)
    df[START] = (at + pd.to_timedelta(df["s"], unit="h")).astype(TIME_DTYPE)
    df[TIMESTAMP] = (at + pd.to_timedelta(df["e"], unit="h")).astype(TIME_DTYPE)
    df["case:experiment"] = np.where(df["treated"], "r1:treatment", "r1:control")
    return df.drop(columns=["s", "e", "treated"])


TRUTH = erlang_c_cycle_time(1.0, FAST, 2) - erlang_c_cycle_time(1.0, SLOW, 2)  # about -0.92 h
BLOCK, BLOCKS, WASHOUT = 48, 40, 24
END = T0 + timedelta(hours=BLOCK * BLOCKS)


def schedule(seed: int) -> list[tuple[datetime, datetime, bool]]:
    """Pairs of blocks in random order (on/off or off/on)."""
    rng = np.random.default_rng(1000 + seed)
    states = [
        s
        for _ in range(BLOCKS // 2)
        for s in ((True, False) if rng.random() < 0.5 else (False, True))
    ]
    return [
        (T0 + timedelta(hours=BLOCK * k), T0 + timedelta(hours=BLOCK * (k + 1)), on)
        for k, on in enumerate(states)
    ]


def test_switchback_recovers_the_total_effect_where_treatment_vs_control_sees_half() -> None:
    switch, naive = [], []
    for seed in range(8):
        blocks = schedule(seed)
        on = lambda t, rng, blocks=blocks: blocks[min(int(t // BLOCK), BLOCKS - 1)][2]
        est = switchback(
            event_frame(shared_queue(BLOCK * BLOCKS, on, seed)),
            blocks,
            end_activities=["Resolve"],
            window_end=END,
            washout_hours=WASHOUT,
        )
        assert (
            est.design == "switchback" and est.unit == "block" and est.units_changed == BLOCKS // 2
        )
        switch.append(est)
        half = lambda t, rng: bool(rng.random() < 0.5)
        naive.append(
            treatment_control_corrected(
                event_frame(shared_queue(BLOCK * BLOCKS, half, seed)),
                LABELS,
                end_activities=["Resolve"],
                window_end=END + timedelta(days=30),
            )
        )
    covered = sum(e.ci_low <= TRUTH <= e.ci_high for e in switch)
    # Over many seeds the block interval covers the truth ~92 % of the time and the mean is unbiased.
    assert covered >= 6, [(e.ci_low, e.ci_high) for e in switch]
    assert np.mean([e.effect for e in switch]) == pytest.approx(TRUTH, rel=0.25)
    naive_share = np.mean([e.effect for e in naive]) / TRUTH
    assert 0.2 < naive_share < 0.65  # the direct effect only: control cases sped up too
    assert all(e.design == "treatment_control" and "biased towards zero" in e.why for e in naive)


def test_interference_correction_moves_treatment_vs_control_to_the_total_effect() -> None:
    rows = shared_queue(2000, lambda t, rng: bool(rng.random() < 0.5), seed=7)
    # What a model of this queue predicts for the 50 % rollout: total effect vs the direct difference.
    direct = Interval(
        mean=FAST - SLOW, ci_low=FAST - SLOW - 0.05, ci_high=FAST - SLOW + 0.05, source="twin"
    )
    total = Interval(mean=TRUTH, ci_low=TRUTH - 0.1, ci_high=TRUTH + 0.1, source="twin")
    correction = interference_correction(total, direct)
    est = treatment_control_corrected(
        event_frame(rows),
        LABELS,
        end_activities=["Resolve"],
        window_end=T0 + timedelta(hours=3000),
        correction=correction,
    )
    plain = treatment_control_corrected(
        event_frame(rows), LABELS, end_activities=["Resolve"], window_end=T0 + timedelta(hours=3000)
    )
    assert est.design == "treatment_control_corrected" and "twin" in est.why
    assert est.ci_low <= TRUTH <= est.ci_high
    assert est.effect == pytest.approx(plain.effect + correction.mean)
    assert (
        est.ci_high - est.ci_low > plain.ci_high - plain.ci_low
    )  # the model's uncertainty is added


def test_before_after_with_the_twins_counterfactual_measures_a_staffing_change() -> None:
    change = 500.0
    staff = lambda t: 3 if t >= change else 2
    rows = shared_queue(3000, lambda t, rng: False, seed=3, servers=staff)
    as_is = erlang_c_cycle_time(1.0, SLOW, 2)
    truth = erlang_c_cycle_time(1.0, SLOW, 3) - as_is
    counterfactual = Interval(
        mean=as_is, ci_low=as_is - 0.1, ci_high=as_is + 0.1, source="twin as-is"
    )
    est = before_after_with_counterfactual(
        event_frame(rows),
        T0 + timedelta(hours=change),
        counterfactual,
        end_activities=["Resolve"],
        window_end=T0 + timedelta(hours=3000),
        washout_hours=24,
    )
    assert est.design == "before_after_with_counterfactual" and "counterfactual" in est.why
    assert est.ci_low <= truth <= est.ci_high and est.ci_high < 0
    assert est.baseline == as_is and est.units_baseline == 0
    wider = before_after_with_counterfactual(
        event_frame(rows),
        T0 + timedelta(hours=change),
        counterfactual.model_copy(update={"ci_low": as_is - 1, "ci_high": as_is + 1}),
        end_activities=["Resolve"],
        window_end=T0 + timedelta(hours=3000),
        washout_hours=24,
    )
    assert wider.ci_high - wider.ci_low > est.ci_high - est.ci_low  # both uncertainties count


def test_switchback_refuses_overlapping_or_too_few_blocks() -> None:
    frame = event_frame(shared_queue(200, lambda t, rng: False, seed=1))
    hour = timedelta(hours=1)
    with pytest.raises(ToolError, match="overlap"):
        switchback(
            frame,
            [(T0, T0 + 50 * hour, True), (T0 + 40 * hour, T0 + 90 * hour, False)],
            end_activities=["Resolve"],
            window_end=T0 + 300 * hour,
        )
    with pytest.raises(ToolError, match="2 on-blocks"):
        switchback(
            frame,
            [(T0, T0 + 100 * hour, True), (T0 + 100 * hour, T0 + 200 * hour, False)],
            end_activities=["Resolve"],
            window_end=T0 + 300 * hour,
        )


# --------------------------------------------------------------------------- censoring
def censored_sample(seed: int, n: int = 2000, mean: float = 48.0, window: float = 336.0):
    """Cycle times with mean 48 h, arrivals over a 14-day window: late long cases are still open."""
    rng = np.random.default_rng(seed)
    true = rng.exponential(mean, n)
    arrival = rng.uniform(0, window, n)
    closed = arrival + true <= window
    return np.where(closed, true, window - arrival), closed


def test_dropping_open_cases_biases_the_mean_low_the_restricted_mean_does_not() -> None:
    hours, closed = censored_sample(seed=5)
    truth = 48.0 * (1 - np.exp(-hours.max() / 48.0))  # mean of min(T, tau) for the exponential
    dropped = hours[closed].mean()
    rm = restricted_mean(hours, closed)
    assert (~closed).sum() > 200
    assert dropped < 0.9 * truth
    assert abs(rm.mean - truth) < 2.5 * rm.se and rm.open_cases == int((~closed).sum())


def test_kaplan_meier_agrees_with_scipy() -> None:
    hours, closed = censored_sample(seed=2, n=300)
    mine = kaplan_meier(hours, closed)
    theirs = stats.ecdf(stats.CensoredData(uncensored=hours[closed], right=hours[~closed])).sf
    grid = np.linspace(0, hours.max(), 50)
    np.testing.assert_allclose(mine.at(grid), theirs.evaluate(grid), atol=1e-12)
    complete = restricted_mean(hours[closed], np.ones(closed.sum(), bool))
    assert complete.mean == pytest.approx(hours[closed].mean())  # no censoring: the plain mean


def test_case_table_censors_open_cases_at_the_window_end() -> None:
    rows = [("a", 0.0, 0.0, 5.0, False), ("b", 1.0, 1.0, 30.0, False)]
    table = case_table(event_frame(rows), ["Resolve"], T0 + timedelta(hours=10))
    assert table.loc["a", "closed"] and table.loc["a", "hours"] == pytest.approx(5.0)
    assert not table.loc["b", "closed"] and table.loc["b", "hours"] == pytest.approx(9.0)


# --------------------------------------------------------------------------- chooser and contracts
@pytest.mark.parametrize(
    ("kind", "shares", "split", "toggle", "design"),
    [
        ("staffing", True, False, False, "before_after_with_counterfactual"),
        ("add_capacity", True, True, True, "before_after_with_counterfactual"),
        ("route_segment", True, True, True, "switchback"),
        ("automate_activity", True, True, False, "treatment_control_corrected"),
        ("priority", False, True, True, "treatment_control"),
        ("approval_threshold", True, False, False, "before_after_with_counterfactual"),
    ],
)
def test_choose_design(kind, shares, split, toggle, design) -> None:
    choice = choose_design(kind, shares_resources=shares, can_split=split, can_toggle=toggle)
    assert choice.design == design and choice.why


def test_old_measurement_and_guardrail_records_keep_their_shape() -> None:
    guard = Guardrails(
        max_relative_worsening=0.1,
        min_cases_per_cohort=5,
        max_writes=1,
        end_activities=["Close"],
        start_activities=["Register"],
    )
    assert list(guard.model_dump()) == [
        "max_relative_worsening",
        "min_cases_per_cohort",
        "max_writes",
        "end_activities",
        "start_activities",
    ]
    assert Guardrails.model_validate(guard.model_dump() | {"sla_hours": 24}).sla_hours == 24
    m = KpiMeasurement(
        source="t", events=0, min_cases_per_cohort=5, enough_cases=False, treatment_n=0, control_n=0
    )
    assert "design" not in m.model_dump() and "effect" not in m.model_dump()


def test_a_paired_switchback_cancels_what_a_pair_shares_and_narrows_the_interval() -> None:
    # Staff grows from 2 to 3 half-way (a drift both blocks of a pair share): block means
    # swing with it, the pairs' differences do not.
    grow = lambda t: 2 if t < BLOCK * BLOCKS / 2 else 3
    truth = np.mean(
        [erlang_c_cycle_time(1.0, FAST, c) - erlang_c_cycle_time(1.0, SLOW, c) for c in (2, 3)]
    )
    pairs = [(k, k + 1) for k in range(0, BLOCKS, 2)]
    paired, unpaired = [], []
    for seed in range(8):
        blocks = schedule(seed)
        on = lambda t, rng, blocks=blocks: blocks[min(int(t // BLOCK), BLOCKS - 1)][2]
        frame = event_frame(shared_queue(BLOCK * BLOCKS, on, seed, servers=grow))
        kw = {"end_activities": ["Resolve"], "window_end": END, "washout_hours": WASHOUT}
        paired.append(switchback(frame, blocks, pairs=pairs, **kw))
        unpaired.append(switchback(frame, blocks, **kw))
    assert all("paired: 20 pairs" in e.why for e in paired)
    assert sum(e.ci_low <= truth <= e.ci_high for e in paired) >= 6
    width = lambda es: np.mean([e.ci_high - e.ci_low for e in es])
    assert width(paired) < width(unpaired)
    assert np.mean([e.effect for e in paired]) == pytest.approx(truth, rel=0.3)
