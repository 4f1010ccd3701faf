"""Root causes: which kinds of cases are slow, reworked or breach the SLA, as readable rules.

A shallow scikit-learn decision tree is fitted on one row per case, with only
what is known when the case starts (``casefeatures``): case attributes, event
attributes already on the case's first event, start weekday, start hour and
first resource. Features that define or leak the outcome are excluded and
named with the reason in ``features_excluded``: the number of activity
instances (it grows with duration), event attributes first recorded later in
the case, and any number whose rank correlation with the case's cycle time
(targets slow, sla) or with its count of activity instances (target rework)
reaches ``LEAK_RHO`` (a "duration" attribute that defines "slow").
Text columns become one indicator per frequent value (values rarer than the
minimum support cannot form a rule and are dropped, as are id-like columns);
numbers are used as they are, missing values included. Each leaf where the
target is at least ``min_lift`` times as common as in the whole log becomes a
rule with support (share of cases in the segment), confidence (share of them
with the target) and lift (confidence / base rate), ranked by lift x support.
The tree's accuracy is 5-fold cross-validated (on a seeded sample of 20,000
cases in larger logs): held-out cases. Rules are reported only when its
balanced accuracy (mean recall per class; the majority class scores 0.5, and
plain accuracy cannot reward a segment with a 25 % base rate that rises to
45 %) beats the majority class by at least ``min_margin``
(the margin is in the report, and ``verdict`` says in words what was found);
each rule names up to five example cases that are in its segment and have the
target, as evidence to open.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ToolError
from closedloop.tools.log import as_canonical
from closedloop.tools.log.columns import ACTIVITY, CASE
from closedloop.tools.mining import performance as perf
from closedloop.tools.mining.casefeatures import EVENT_COUNT, case_features
from closedloop.tools.mining.treepaths import Feature, conditions, paths

__all__ = ["RootCauseReport", "RootCauseRule", "case_features", "explain_target", "root_causes"]

Target = Literal["slow", "rework", "sla"]
MAX_LEVELS = 15  # indicator columns per text attribute
WORDS = {"slow": "slow", "rework": "reworked", "sla": "breach the SLA"}
VERBS = {"slow": "are slow", "rework": "are reworked", "sla": "breach the SLA"}
CV_MAX_CASES = 20_000
LEAK_RHO = 0.8
MIN_MARGIN = 0.05
EXAMPLES = 5
MIN_CLASS_CASES = 5  # fewer cases of either outcome: no tree is validated (nor fitted)


class RootCauseRule(BaseModel):
    """A segment of cases where the target is more common than overall."""

    conditions: list[str] = Field(description="all must hold, e.g. 'priority != high'")
    text: str = Field(description="the rule in one line, for people")
    cases: int = Field(description="cases in the segment")
    support: float = Field(description="share of all cases in the segment, 0..1")
    confidence: float = Field(description="share of the segment's cases with the target, 0..1")
    lift: float = Field(description="confidence / base_rate; > 1 means over-represented")
    example_cases: list[str] = Field(
        default_factory=list, description="ids of cases in the segment with the target (evidence)"
    )


class RootCauseReport(BaseModel):
    """Rules that explain a target (slow, reworked or SLA-breaching cases)."""

    target: str = Field(description="what is explained, with its definition")
    cases: int
    positives: int = Field(description="cases with the target")
    base_rate: float = Field(description="share of cases with the target, 0..1")
    rules: list[RootCauseRule] = Field(description="largest lift x support first")
    tree_depth: int
    accuracy: float | None = Field(
        description="5-fold cross-validated accuracy of the tree (None: too few positives)"
    )
    accuracy_cases: int = Field(
        default=0,
        description="cases the accuracy was validated on (a seeded sample of 20,000 above that)",
    )
    baseline_accuracy: float = Field(description="accuracy of always predicting the majority")
    balanced_accuracy: float | None = Field(description="cross-validated, mean recall per class")
    min_support: float
    min_lift: float
    features_used: list[str] = Field(description="attributes the tree splits on")
    features_considered: list[str]
    features_excluded: dict[str, str] = Field(
        default_factory=dict, description="attributes left out because they leak the outcome"
    )
    margin: float | None = Field(
        default=None,
        description="held-out balanced accuracy minus 0.5, the majority class's (None: not "
        "validated)",
    )
    min_margin: float = Field(default=MIN_MARGIN, description="margin rules need to be reported")
    verdict: str = Field(default="", description="what the tree found, in one line")


@read_tool
def root_causes(
    log: pd.DataFrame,
    target: Target = "slow",
    slow_percentile: float = 75.0,
    sla_hours: float | None = None,
    max_depth: int = 3,
    min_support: float = 0.05,
    min_lift: float = 1.1,
    max_rules: int = 10,
    seed: int = 0,
    min_margin: float = MIN_MARGIN,
) -> RootCauseReport:
    """Explain which cases are slow, reworked or breach an SLA, as readable rules.

    target: "slow" (cycle time above the slow_percentile, default p75), "rework"
    (some activity repeated in the case) or "sla" (cycle time above sla_hours).
    Fits a decision tree (depth <= max_depth, seeded) on what is known when a
    case starts: case attributes, event attributes already on its first event,
    start weekday/hour and first resource; attributes that leak the outcome
    (tracking the cycle time, recorded later) are excluded and listed in
    features_excluded. Returns rules such as
    "category = password AND priority != high -> 62% slow (support 12%, lift 2.5)"
    with support >= min_support (share of cases), lift >= min_lift and example
    case ids, best first (lift x support), only when the tree's cross-validated
    accuracy beats the majority baseline by min_margin (margin and verdict say
    so either way), the base rate and the attributes used.
    """
    return explain_target(
        as_canonical(log, "root_causes"),
        target,
        slow_percentile=slow_percentile,
        sla_hours=sla_hours,
        max_depth=max_depth,
        min_support=min_support,
        min_lift=min_lift,
        max_rules=max_rules,
        seed=seed,
        min_margin=min_margin,
    )


def explain_target(
    frame: pd.DataFrame,
    target: Target = "slow",
    slow_percentile: float = 75.0,
    sla_hours: float | None = None,
    max_depth: int = 3,
    min_support: float = 0.05,
    min_lift: float = 1.1,
    max_rules: int = 10,
    seed: int = 0,
    cases: pd.DataFrame | None = None,
    features: pd.DataFrame | None = None,
    min_margin: float = MIN_MARGIN,
) -> RootCauseReport:
    """``root_causes`` on a canonical frame, reusing ``case_table`` / ``case_features`` if given."""
    if target not in WORDS:
        raise ToolError(f"target must be one of {sorted(WORDS)}, got {target!r}")
    if not 0 < min_support < 1 or max_depth < 1 or max_rules < 0 or min_lift < 1:
        raise ToolError(
            "min_support must be in (0, 1), max_depth >= 1, max_rules >= 0, min_lift >= 1"
        )
    if not 0 < slow_percentile < 100:
        raise ToolError(f"slow_percentile must be in (0, 100), got {slow_percentile}")
    if target == "sla" and (sla_hours is None or not sla_hours > 0):
        raise ToolError("target 'sla' needs sla_hours > 0")
    if features is None:
        features = case_features(frame)
    excluded = dict(features.attrs.get("excluded", {}))
    if EVENT_COUNT in features.columns:
        excluded[EVENT_COUNT] = "grows with the case's duration and rework (a consequence)"
        features = features.drop(columns=[EVENT_COUNT])
    y, label = _target(frame, features.index, target, slow_percentile, sla_hours, cases)
    measure = _outcome_measure(frame, features.index, target, cases)
    features, leaks = _drop_leaks(features, measure, target)
    excluded.update(leaks)
    report = _explain(
        features, y, label, target, max_depth, min_support, min_lift, max_rules, seed, min_margin
    )
    report.features_excluded = excluded
    return report


def _outcome_measure(
    frame: pd.DataFrame, index: pd.Index, target: Target, cases: pd.DataFrame | None
) -> np.ndarray:
    """The quantity the target is cut from: cycle time, or activity instances for rework."""
    if target == "rework":
        return frame.groupby(CASE, sort=False).size().reindex(index).to_numpy(dtype=float)
    table = perf.case_table(frame) if cases is None else cases
    return table["cycle"].reindex(index).to_numpy(dtype=float)


def _drop_leaks(
    features: pd.DataFrame, measure: np.ndarray, target: Target
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Numbers that rank-correlate with the outcome measure by >= LEAK_RHO restate it."""
    what = "activity instances" if target == "rework" else "cycle time"
    leaks: dict[str, str] = {}
    outcome = pd.Series(measure)
    if outcome.nunique(dropna=True) < 2:  # a constant outcome: no correlation to measure
        return features, leaks
    for name in features.columns:
        values = features[name]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        if values.nunique(dropna=True) < 2:
            continue
        rho = _spearman(values.to_numpy(dtype=float), measure)
        if pd.notna(rho) and abs(rho) >= LEAK_RHO:
            leaks[str(name)] = (
                f"tracks the case's {what} (Spearman {rho:.2f}): restates the outcome"
            )
    return features.drop(columns=list(leaks)), leaks


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho over the pairs where both are known (average ranks for ties).

    pandas' ``corr(method="spearman")`` gives the same number but imports
    scipy.stats (about a second of start-up on a small log)."""
    known = ~(np.isnan(x) | np.isnan(y))
    if known.sum() < 2:
        return float("nan")
    rx = pd.Series(x[known]).rank().to_numpy()
    ry = pd.Series(y[known]).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _target(
    frame: pd.DataFrame,
    index: pd.Index,
    target: Target,
    pct: float,
    sla_hours: float | None,
    cases: pd.DataFrame | None,
) -> tuple[np.ndarray, str]:
    if target == "rework":
        repeated = frame.duplicated([CASE, ACTIVITY]).groupby(frame[CASE], sort=False).any()
        return repeated.reindex(index).to_numpy(dtype=bool), "reworked: some activity repeated"
    cycle = (perf.case_table(frame) if cases is None else cases)["cycle"].reindex(index).to_numpy()
    if target == "sla":
        return cycle > sla_hours, f"breach the SLA: cycle time above {sla_hours:g} h"
    limit = float(np.percentile(cycle, pct))
    return cycle > limit, f"slow: cycle time above p{pct:g} = {limit:.4g} h"


def _design(features: pd.DataFrame, min_count: int) -> tuple[np.ndarray, list[Feature]]:
    """Numeric matrix (NaN = missing) and what each column means."""
    n = len(features)
    columns: list[np.ndarray] = []
    meta: list[Feature] = []
    for name in features.columns:
        values = features[name]
        if pd.api.types.is_datetime64_any_dtype(values) or values.nunique(dropna=True) < 2:
            continue
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            x = values.to_numpy(dtype=float)
            finite = x[~np.isnan(x)]
            meta.append(
                Feature(
                    name,
                    None,
                    integer=bool(np.all(finite == np.round(finite))),
                    has_missing=bool(np.isnan(x).any()),
                )
            )
            columns.append(x)
            continue
        text = values.astype("str").where(values.notna())
        counts = text.value_counts()
        if len(counts) > n / 2:  # identifiers, free text
            continue
        for level, count in counts.head(MAX_LEVELS).items():
            if min_count <= count < n:
                meta.append(Feature(name, str(level)))
                columns.append((text == level).to_numpy(dtype=float))
    matrix = np.column_stack(columns) if columns else np.empty((n, 0))
    return matrix, meta


def _explain(
    features: pd.DataFrame,
    y: np.ndarray,
    label: str,
    target: Target,
    max_depth: int,
    min_support: float,
    min_lift: float,
    max_rules: int,
    seed: int,
    min_margin: float = MIN_MARGIN,
) -> RootCauseReport:
    n = len(y)
    positives = int(y.sum())
    base = positives / n if n else 0.0
    min_count = max(1, math.ceil(min_support * n))
    x, meta = _design(features, min_count)
    report = RootCauseReport(
        target=label,
        cases=n,
        positives=positives,
        base_rate=round(base, 4),
        rules=[],
        tree_depth=0,
        accuracy=None,
        baseline_accuracy=round(max(base, 1 - base), 4),
        balanced_accuracy=None,
        min_support=min_support,
        min_lift=min_lift,
        features_used=[],
        features_considered=sorted({f.column for f in meta}),
        min_margin=min_margin,
    )
    if positives in (0, n) or x.shape[1] == 0:
        report.verdict = (
            "no rule: every case has the same outcome"
            if positives in (0, n)
            else "no rule: no usable attribute known at case start"
        )
        return report
    if min(positives, n - positives) < MIN_CLASS_CASES:
        # 2-fold validation on a handful of cases cannot show a margin; decided before
        # scikit-learn is imported (a second of start-up on a small log)
        report.verdict = (
            f"no rule: too few cases of each outcome to validate a tree ({positives} of {n} "
            f"cases {VERBS[target]}; at least {MIN_CLASS_CASES} of each outcome needed)"
        )
        return report
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.tree import DecisionTreeClassifier

    tree = DecisionTreeClassifier(
        max_depth=max_depth,
        min_samples_leaf=min_count,
        random_state=seed,
    ).fit(x, y)
    rows = np.arange(n)
    if n > CV_MAX_CASES:  # accuracy is an estimate anyway: validate on a seeded sample
        rows = np.sort(np.random.default_rng(seed).choice(n, CV_MAX_CASES, replace=False))
    folds = min(5, int(y[rows].sum()), int((~y[rows]).sum()))
    if folds >= 2:
        scores = cross_validate(
            tree,
            x[rows],
            y[rows],
            scoring=("accuracy", "balanced_accuracy"),
            cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed),
        )
        report.accuracy = round(float(scores["test_accuracy"].mean()), 4)
        report.balanced_accuracy = round(float(scores["test_balanced_accuracy"].mean()), 4)
        report.accuracy_cases = len(rows)
        report.margin = round(report.balanced_accuracy - 0.5, 4)
    if report.margin is None or report.margin < min_margin:
        report.verdict = (
            "no rule: too few cases of each outcome to validate a tree"
            if report.margin is None
            else f"no rule: on held-out cases the tree's balanced accuracy is "
            f"{report.balanced_accuracy:.1%}, always predicting the majority class scores 50% "
            f"(margin {report.margin:+.1%} < {min_margin:.0%}); these attributes do not "
            f"explain which cases {VERBS[target]}"
        )
        return report
    report.verdict = (
        f"on held-out cases the tree's balanced accuracy is {report.balanced_accuracy:.1%} vs "
        f"50% for the majority class (margin {report.margin:+.1%}; accuracy "
        f"{report.accuracy:.1%} vs {report.baseline_accuracy:.1%})"
    )
    case_ids = features.index.astype("str").to_numpy()
    leaves = tree.apply(x)
    size = np.bincount(leaves, minlength=tree.tree_.node_count)
    hits = np.bincount(leaves, weights=y.astype(float), minlength=tree.tree_.node_count)
    rules = []
    for leaf, path in paths(tree.tree_):
        if size[leaf] < min_count or not base:
            continue
        confidence = hits[leaf] / size[leaf]
        lift = confidence / base
        if lift <= 1 or lift < min_lift:
            continue
        readable = conditions(path, meta)
        support = size[leaf] / n
        text = (
            f"{' AND '.join(readable) or 'all cases'} -> {confidence:.0%} {WORDS[target]} "
            f"(support {support:.0%}, lift {lift:.1f})"
        )
        rules.append(
            RootCauseRule(
                conditions=readable,
                text=text,
                cases=int(size[leaf]),
                support=round(support, 4),
                confidence=round(confidence, 4),
                lift=round(lift, 3),
                example_cases=case_ids[(leaves == leaf) & y][:EXAMPLES].tolist(),
            )
        )
    rules.sort(key=lambda r: (-r.lift * r.support, -r.lift))
    report.rules = rules[:max_rules]
    report.tree_depth = int(tree.get_depth())
    used = {int(f) for f in tree.tree_.feature if f >= 0}
    report.features_used = sorted({meta[f].column for f in used})
    return report
