"""Rule generation from decision trees, backtests, and the auto-decision threshold."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from closedloop.tools.base import ToolKind
from closedloop.tools.errors import ScenarioError
from closedloop.tools.log.ingest import frame_from_records, load_event_log
from closedloop.tools.optimize import optimize_threshold
from closedloop.tools.rules import (
    LABEL,
    ConditionError,
    OutcomeTarget,
    backtest_rule,
    case_table,
    compile_condition,
    generate_rules,
    split_by_time,
)
from closedloop.tools.twin import AutoApprove, fit_twin

LOAN = {"approve": ["Approve"], "decline": ["Decline"]}


@cache
def loan_log(cases: int = 1000, seed: int = 3) -> pd.DataFrame:
    """Small loan process: Submit -> Review (people) -> Approve | Decline; small amounts mostly declined."""
    rng = np.random.default_rng(seed)
    t = datetime(2024, 1, 1, 8, tzinfo=UTC)
    records = []
    for i in range(cases):
        t += timedelta(hours=float(rng.exponential(3.0)))
        amount = int(round(float(rng.lognormal(8.3, 0.9)), -1))
        p_decline = 0.97 if amount < 1000 else (0.5 if amount < 5000 else 0.2)
        decision = "Decline" if rng.random() < p_decline else "Approve"
        begin = t + timedelta(hours=float(rng.exponential(4.0)))
        end = begin + timedelta(hours=float(rng.gamma(2.0, 0.25)))
        who = f"clerk{rng.integers(1, 4)}"
        case = {"case_id": f"c{i}", "attributes": {"amount": amount, "channel": ["web", "branch"][i % 2]}}
        records += [
            {**case, "activity": "Submit", "timestamp": t.isoformat(), "resource": "web"},
            {**case, "activity": "Review", "lifecycle": "start", "timestamp": begin.isoformat(),
             "resource": who},
            {**case, "activity": "Review", "lifecycle": "complete", "timestamp": end.isoformat(),
             "resource": who},
            {**case, "activity": decision, "timestamp": (end + timedelta(minutes=5)).isoformat(),
             "resource": who},
        ]  # fmt: skip
    return frame_from_records(records)


@cache
def _bpi(path: str) -> pd.DataFrame:
    return load_event_log(path)


@pytest.fixture
def bpi2012(shared_data: Path) -> pd.DataFrame:
    return _bpi(str(shared_data / "logs" / "bpic2012.xes.gz"))


def test_rules_from_the_tree_are_backtested_out_of_sample() -> None:
    rules = generate_rules(loan_log(), target=LOAN, min_precision=0.9, min_support=20)
    assert rules.fit_cases + rules.score_cases == 1000 and rules.unlabelled_cases == 0
    assert rules.majority_label in {"approve", "decline"} and 0 < rules.baseline_accuracy < 1
    small = [r for r in rules.rules if r.action == "auto_decline" and "amount <" in r.condition]
    assert small, [r.condition for r in rules.rules]
    rule = small[0]
    # the tree's cut is written as the roundest number inside the gap of the fit data
    cut = re.fullmatch(r"amount < (\d+)", rule.condition)
    assert cut and 500 <= int(cut[1]) <= 2000, rule.condition
    bt = rule.backtest
    assert bt.fit.precision >= 0.9 and bt.fit.support >= 20
    assert bt.score.cases == rules.score_cases and bt.score.precision is not None
    assert bt.holds == (bt.score.precision >= 0.9 and bt.score.support >= 20)
    assert rule.as_rule() == {"condition": rule.condition, "action": "auto_decline"}
    for r in rules.rules:  # every rule is valid in the safe condition language
        compile_condition(r.condition, names=["amount", "channel"])


def test_backtest_numbers_match_a_direct_count() -> None:
    frame = loan_log()
    bt = backtest_rule(frame, "amount < 1000", "auto_decline", target=LOAN, time_split=0.75)
    table = case_table(frame, LOAN)
    fit, score = split_by_time(table, 0.75)
    for period, part in (("fit", fit), ("score", score)):
        got = getattr(bt, period)
        fired = part["amount"] < 1000
        assert got.cases == len(part) and got.support == int(fired.sum())
        assert got.coverage == pytest.approx(fired.mean())
        right = int((part.loc[fired, LABEL] == "decline").sum())
        assert got.precision == pytest.approx(right / fired.sum())
        assert got.errors == int(fired.sum()) - right
        assert got.base_rate == pytest.approx((part[LABEL] == "decline").mean())
        assert sum(got.confusion.fired.values()) == got.support
        assert sum(got.confusion.not_fired.values()) == got.cases - got.support
        assert 0 < got.variant_coverage <= 1
    assert bt.split_at == score["_start"].min().isoformat()


def test_same_seed_same_rules() -> None:
    first = generate_rules(loan_log(), target=LOAN, min_precision=0.8, min_support=20, seed=5)
    again = generate_rules(loan_log(), target=LOAN, min_precision=0.8, min_support=20, seed=5)
    assert first.model_dump() == again.model_dump()


def test_categorical_features_and_an_attribute_target(bundled_data: Path) -> None:
    frame = load_event_log(bundled_data / "03_repairExample.xes.gz")
    target = OutcomeTarget(outcomes={"restart": ["Restart Repair"]}, otherwise="first_time")
    rules = generate_rules(frame, target=target, min_precision=0.5, min_support=20)
    assert set(rules.labels) == {"restart", "first_time"}
    assert rules.unlabelled_cases == 0
    assert {"defectType", "phoneType"} <= set(rules.features)
    names = list(case_table(frame, target).columns)
    for r in rules.rules:
        compile_condition(r.condition, names=names)
        assert r.backtest.fit.precision >= 0.5
    by_attribute = generate_rules(loan_log(), target="channel", features=["amount"], min_support=20)
    assert set(by_attribute.labels) == {"web", "branch"}


def test_bad_input_is_named() -> None:
    frame = loan_log()
    with pytest.raises(ScenarioError, match="unknown or unusable feature.*amount"):
        generate_rules(frame, target=LOAN, features=["income"])
    with pytest.raises(ScenarioError, match="unknown action 'auto_reject'.*auto_decline"):
        backtest_rule(frame, "amount < 10", "auto_reject", target=LOAN)
    with pytest.raises(ConditionError, match="unknown attribute.*income"):
        backtest_rule(frame, "income < 10", "auto_decline", target=LOAN)
    with pytest.raises(ConditionError, match="function calls"):
        backtest_rule(frame, "__import__('os').system('true')", "auto_decline", target=LOAN)
    with pytest.raises(ScenarioError, match="time_split"):
        backtest_rule(frame, "amount < 10", "auto_decline", target=LOAN, time_split=1.0)
    with pytest.raises(ScenarioError, match="none of the outcome activities"):
        generate_rules(frame, target={"yes": ["A_APPROVED"]})
    with pytest.raises(ScenarioError, match="unknown target attribute"):
        generate_rules(frame, target="colour")


def test_rule_tools_are_read_tools() -> None:
    assert generate_rules.tool_kind is ToolKind.READ
    assert backtest_rule.tool_kind is ToolKind.READ
    assert optimize_threshold.tool_kind is ToolKind.READ


# --- auto-decision threshold (optimize_threshold) uses the same labelled history ----------


def _best_cut_by_brute_force(cap: float, min_support: int) -> int:
    table = case_table(loan_log(), LOAN)
    fit, _ = split_by_time(table, 0.8)
    best = 0
    for cut in sorted(fit["amount"].unique()) + [fit["amount"].max() + 1]:
        covered = fit[fit["amount"] < cut]
        if len(covered) >= min_support and (covered[LABEL] != "decline").mean() <= cap:
            best = max(best, len(covered))
    return best


def test_threshold_is_the_largest_automation_within_the_risk_cap() -> None:
    frame = loan_log()
    twin = fit_twin(frame)
    plan = optimize_threshold(frame, attribute="amount", action="auto_decline", target=LOAN,
                              risk_cap=0.1, min_support=20, twin=twin, cases=200,
                              replications=3)  # fmt: skip
    assert plan.status == "optimal", plan.message
    assert plan.condition == f"amount < {plan.threshold:g}"
    assert plan.fit.risk <= 0.1 and plan.fit.automated == _best_cut_by_brute_force(0.1, 20)
    assert plan.score is not None and plan.holds_out_of_sample == (plan.score.risk <= 0.1)
    assert isinstance(plan.scenario, AutoApprove)
    assert plan.scenario.activity == "Review" and plan.scenario.then_activity == "Decline"
    assert plan.scenario.below == plan.threshold
    sim = plan.simulated_cycle_time_delta_pct
    assert sim is not None and sim.mean < 0  # declined at once instead of after the review
    assert plan.confirmed == (plan.holds_out_of_sample and plan.simulation.delta.cycle_time_mean_hours.mean <= 0)


def test_threshold_infeasible_when_no_cut_meets_the_cap() -> None:
    plan = optimize_threshold(loan_log(), attribute="amount", action="auto_approve", target=LOAN,
                              risk_cap=0.05, min_support=20)  # fmt: skip
    assert plan.status == "infeasible" and plan.threshold is None and plan.simulation is None
    assert "no threshold keeps the risk <= 5.0%" in plan.message
    assert "lowest reachable" in plan.message


def test_threshold_bad_input() -> None:
    frame = loan_log()
    with pytest.raises(ScenarioError, match="non-numeric case attribute 'channel'"):
        optimize_threshold(frame, attribute="channel", action="auto_decline", target=LOAN)
    with pytest.raises(ScenarioError, match="risk_cap"):
        optimize_threshold(frame, attribute="amount", action="auto_decline", target=LOAN,
                           risk_cap=1.5)  # fmt: skip
    with pytest.raises(ScenarioError, match="unknown risk label"):
        optimize_threshold(frame, attribute="amount", action="auto_decline", target=LOAN,
                           risk_labels=["fraud"])  # fmt: skip


@pytest.mark.slow
def test_bpi2012_amount_rules_beat_the_majority_baseline(bpi2012: pd.DataFrame) -> None:
    target = {"approve": ["A_APPROVED"], "decline": ["A_DECLINED"]}
    rules = generate_rules(bpi2012, target=target, features=["AMOUNT_REQ"], min_precision=0.9)
    assert rules.majority_label == "decline"
    holding = [r for r in rules.rules if r.backtest.holds]
    assert holding, [r.backtest.message for r in rules.rules]
    for r in holding:  # precise out of sample, well above always-decline
        assert r.backtest.score.precision >= 0.9 > rules.baseline_accuracy
    bt = backtest_rule(bpi2012, "AMOUNT_REQ < 2500", "auto_decline", target=target)
    assert bt.score.precision > 0.95 and bt.score.support > 100


@pytest.mark.slow
def test_bpi2012_auto_approval_is_infeasible_and_auto_decline_is_not(bpi2012: pd.DataFrame) -> None:
    approve = optimize_threshold(bpi2012, risk_cap=0.2, validate=False)
    assert approve.status == "infeasible" and "AMOUNT_REQ" in approve.message
    decline = optimize_threshold(bpi2012, action="auto_decline", risk_cap=0.05, validate=False)
    assert decline.status == "optimal" and decline.condition.startswith("AMOUNT_REQ < ")
    assert decline.fit.risk <= 0.05 and decline.holds_out_of_sample
