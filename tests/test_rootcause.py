"""Root-cause rules on real logs: they must hold on the data they claim to describe."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from closedloop.tools.base import ToolKind
from closedloop.tools.errors import ToolError
from closedloop.tools.log.ingest import ACTIVITY, CASE, load_event_log
from closedloop.tools.mining.rootcause import RootCauseReport, case_features, root_causes


def segment(features: pd.DataFrame, conditions: list[str]) -> np.ndarray:
    """Cases matching a rule's conditions, evaluated independently of the tree."""
    keep = np.ones(len(features), dtype=bool)
    for cond in conditions:
        cond = cond.removesuffix(" (or unknown)")
        if m := re.fullmatch(r"(.+) not in \{(.+)\}", cond):
            col, levels = m[1], m[2].split(", ")
            keep &= ~features[col].astype("str").isin(levels).to_numpy()
        elif m := re.fullmatch(r"(.+) != (.+)", cond):
            keep &= (features[m[1]].astype("str") != m[2]).to_numpy()
        elif m := re.fullmatch(r"(-?[\d.]+) < (.+) <= (-?[\d.]+)", cond):
            x = features[m[2]].to_numpy(dtype=float)
            keep &= (x > float(m[1])) & (x <= float(m[3]))
        elif m := re.fullmatch(r"(.+) <= (-?[\d.]+)", cond):
            keep &= features[m[1]].to_numpy(dtype=float) <= float(m[2])
        elif m := re.fullmatch(r"(.+) > (-?[\d.]+)", cond):
            keep &= features[m[1]].to_numpy(dtype=float) > float(m[2])
        elif m := re.fullmatch(r"(.+) = (.+)", cond):
            keep &= (features[m[1]].astype("str") == m[2]).to_numpy()
        else:
            raise AssertionError(f"unreadable condition {cond!r}")
    return keep


def assert_sensible(report: RootCauseReport) -> None:
    assert report.rules, report.target
    scores = [r.lift * r.support for r in report.rules]
    assert scores == sorted(scores, reverse=True)
    for rule in report.rules:
        assert rule.lift >= report.min_lift > 1 and rule.support >= report.min_support
        assert rule.confidence == pytest.approx(rule.lift * report.base_rate, abs=1e-3)
        assert rule.text.startswith(" AND ".join(rule.conditions))
    assert set(report.features_used) <= set(report.features_considered)
    assert report.accuracy is not None and 0 < report.accuracy <= 1
    assert 1 <= report.tree_depth <= 3
    # rules are shown only when the tree beats the majority class on held-out cases
    assert report.margin is not None and report.margin >= report.min_margin
    assert f"{report.margin:+.1%}" in report.verdict
    assert all(r.example_cases for r in report.rules)


def assert_no_rule(report: RootCauseReport) -> None:
    """Below the margin: no rules, and the verdict says why with the numbers."""
    assert report.rules == []
    assert report.verdict.startswith("no rule") and "majority class" in report.verdict
    assert report.margin is None or report.margin < report.min_margin


@pytest.fixture(scope="module")
def repair() -> pd.DataFrame:
    bundled = Path(__file__).resolve().parents[1] / "closedloop" / "data"
    return load_event_log(bundled / "03_repairExample.xes.gz")


def test_repair_rework_is_explained_by_defect_type(repair: pd.DataFrame) -> None:
    report = root_causes(repair, "rework")
    assert_sensible(report)
    # independent oracle: a case is reworked when an activity occurs twice in it
    seen: dict[str, set[str]] = defaultdict(set)
    reworked = set()
    for case, act in zip(repair[CASE], repair[ACTIVITY], strict=True):
        if act in seen[case]:
            reworked.add(case)
        seen[case].add(act)
    assert report.positives == len(reworked) == 293
    assert report.base_rate == pytest.approx(293 / 1104, abs=1e-4)
    assert report.rules[0].conditions[0] == "defectType <= 4"  # defect types 1-4: ~50 %
    assert report.rules[0].lift > 1.5
    assert "activity instances" not in report.features_considered  # restates the target
    assert "activity instances" in report.features_excluded
    # every rule's numbers hold on the data, read without the tree
    features = case_features(repair)
    y = features.index.isin(sorted(reworked))
    for rule in report.rules:
        rows = segment(features, rule.conditions)
        assert rows.sum() == rule.cases
        assert rule.support == pytest.approx(rows.mean(), abs=1e-4)
        assert rule.confidence == pytest.approx(y[rows].mean(), abs=1e-4)
        # the example cases are evidence: in the segment and reworked
        in_segment = set(features.index[rows])
        assert set(rule.example_cases) <= in_segment & reworked
    assert root_causes.tool_kind is ToolKind.READ  # type: ignore[attr-defined]


def test_slow_cases_of_the_repair_example_have_no_honest_rule(repair: pd.DataFrame) -> None:
    """The only split that 'explained' slow repairs was the number of activity instances,
    a consequence of being slow; without it the tree is no better than the majority."""
    report = root_causes(repair, "slow", slow_percentile=75, seed=1)
    assert report.target.startswith("slow: cycle time above p75")
    assert 0.2 <= report.base_rate <= 0.25
    assert "activity instances" in report.features_excluded
    assert_no_rule(report)
    assert report == root_causes(repair, "slow", slow_percentile=75, seed=1)


def test_helpdesk_sla_breaches(bundled_data: Path) -> None:
    frame = load_event_log(bundled_data / "helpdesk.xes.gz")
    report = root_causes(frame, "sla", sla_hours=1000, min_support=0.03)
    assert report.target == "breach the SLA: cycle time above 1000 h"
    # before: lift-1.2 rules from a tree no better than the majority class (margin +1.5 points)
    assert_no_rule(report)
    assert root_causes(frame, "sla", sla_hours=1000, min_support=0.03, min_margin=0.0).rules


def test_receipt_slow_cases(shared_data: Path) -> None:
    frame = load_event_log(shared_data / "logs" / "receipt.csv")
    report = root_causes(frame, "slow")
    assert_sensible(report)
    assert {"channel", "group", "responsible"} <= set(report.features_considered)
    shallow = root_causes(frame, "slow", max_depth=2, min_support=0.1)
    assert shallow.tree_depth <= 2


def test_no_rework_gives_no_rules(bundled_data: Path) -> None:
    frame = load_event_log(bundled_data / "running-example.csv")
    plain = frame[frame[CASE].isin(["1", "2", "4", "6"])]
    report = root_causes(plain, "rework")
    assert (report.positives, report.base_rate, report.rules) == (0, 0.0, [])
    assert report.accuracy is None and report.baseline_accuracy == 1.0


def test_bad_parameters_are_refused(repair: pd.DataFrame) -> None:
    with pytest.raises(ToolError, match="sla_hours"):
        root_causes(repair, "sla")
    with pytest.raises(ToolError, match="target"):
        root_causes(repair, "late")  # type: ignore[arg-type]
    with pytest.raises(ToolError, match="min_support"):
        root_causes(repair, min_support=0)
    with pytest.raises(ToolError, match="slow_percentile"):
        root_causes(repair, slow_percentile=100)
