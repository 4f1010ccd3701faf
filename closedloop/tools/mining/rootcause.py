"""Root causes: which kinds of cases are slow, reworked or breach the SLA, as readable rules.

A shallow scikit-learn decision tree is fitted on one row per case:
- case attributes (``case:<name>`` columns) and event attributes that never
  change within a case (their first known value);
- derived facts known when the case starts: start weekday, start hour, first
  resource; and the number of activity instances (left out for the rework
  target, which it would merely restate).
Text columns become one indicator per frequent value (values rarer than the
minimum support cannot form a rule and are dropped, as are id-like columns);
numbers are used as they are, missing values included. Each leaf where the
target is at least ``min_lift`` times as common as in the whole log becomes a
rule with support (share of cases in the segment), confidence (share of them
with the target) and lift (confidence / base rate), ranked by lift x support.
The tree's accuracy is 5-fold cross-validated (on a seeded sample of 20,000
cases in larger logs). The per-case table is built in ``casefeatures``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
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

__all__ = ["RootCauseReport", "RootCauseRule", "case_features", "explain_target", "root_causes"]

Target = Literal["slow", "rework", "sla"]
MAX_LEVELS = 15  # indicator columns per text attribute
WORDS = {"slow": "slow", "rework": "reworked", "sla": "breach the SLA"}
CV_MAX_CASES = 20_000


class RootCauseRule(BaseModel):
    """A segment of cases where the target is more common than overall."""

    conditions: list[str] = Field(description="all must hold, e.g. 'priority != high'")
    text: str = Field(description="the rule in one line, for people")
    cases: int = Field(description="cases in the segment")
    support: float = Field(description="share of all cases in the segment, 0..1")
    confidence: float = Field(description="share of the segment's cases with the target, 0..1")
    lift: float = Field(description="confidence / base_rate; > 1 means over-represented")


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


@dataclass
class _Feature:
    column: str  # display name (attribute without the case: prefix)
    level: str | None  # None: numeric; else the indicator "column == level"
    integer: bool = False
    has_missing: bool = False


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
) -> RootCauseReport:
    """Explain which cases are slow, reworked or breach an SLA, as readable rules.

    target: "slow" (cycle time above the slow_percentile, default p75), "rework"
    (some activity repeated in the case) or "sla" (cycle time above sla_hours).
    Fits a decision tree (depth <= max_depth, seeded) on case attributes, event
    attributes constant within a case, start weekday/hour, first resource and
    number of activity instances. Returns rules such as
    "category = password AND priority != high -> 62% slow (support 12%, lift 2.5)"
    with support >= min_support (share of cases) and lift >= min_lift, best first
    (lift x support), the base rate, the tree's cross-validated accuracy next to the
    majority baseline, and the attributes used.
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
    if target == "rework":
        features = features.drop(columns=[EVENT_COUNT], errors="ignore")
    y, label = _target(frame, features.index, target, slow_percentile, sla_hours, cases)
    return _explain(features, y, label, target, max_depth, min_support, min_lift, max_rules, seed)


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


def _design(features: pd.DataFrame, min_count: int) -> tuple[np.ndarray, list[_Feature]]:
    """Numeric matrix (NaN = missing) and what each column means."""
    n = len(features)
    columns: list[np.ndarray] = []
    meta: list[_Feature] = []
    for name in features.columns:
        values = features[name]
        if pd.api.types.is_datetime64_any_dtype(values) or values.nunique(dropna=True) < 2:
            continue
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            x = values.to_numpy(dtype=float)
            finite = x[~np.isnan(x)]
            meta.append(
                _Feature(
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
                meta.append(_Feature(name, str(level)))
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
) -> RootCauseReport:
    from sklearn.model_selection import StratifiedKFold, cross_validate
    from sklearn.tree import DecisionTreeClassifier

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
    )
    if positives in (0, n) or x.shape[1] == 0:
        return report
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
    leaves = tree.apply(x)
    size = np.bincount(leaves, minlength=tree.tree_.node_count)
    hits = np.bincount(leaves, weights=y.astype(float), minlength=tree.tree_.node_count)
    rules = []
    for leaf, path in _paths(tree.tree_):
        if size[leaf] < min_count or not base:
            continue
        confidence = hits[leaf] / size[leaf]
        lift = confidence / base
        if lift <= 1 or lift < min_lift:
            continue
        conditions = _conditions(path, meta)
        support = size[leaf] / n
        text = (
            f"{' AND '.join(conditions) or 'all cases'} -> {confidence:.0%} {WORDS[target]} "
            f"(support {support:.0%}, lift {lift:.1f})"
        )
        rules.append(
            RootCauseRule(
                conditions=conditions,
                text=text,
                cases=int(size[leaf]),
                support=round(support, 4),
                confidence=round(confidence, 4),
                lift=round(lift, 3),
            )
        )
    rules.sort(key=lambda r: (-r.lift * r.support, -r.lift))
    report.rules = rules[:max_rules]
    report.tree_depth = int(tree.get_depth())
    used = {int(f) for f in tree.tree_.feature if f >= 0}
    report.features_used = sorted({meta[f].column for f in used})
    return report


def _paths(t: object) -> list[tuple[int, list[tuple[int, bool, float, bool]]]]:
    """Every leaf with its path: (feature, went left, threshold, missing values went this way)."""
    out = []
    stack: list[tuple[int, list]] = [(0, [])]
    missing_left = getattr(t, "missing_go_to_left", None)
    while stack:
        node, path = stack.pop()
        left, right = t.children_left[node], t.children_right[node]
        if left == right:  # a leaf
            out.append((node, path))
            continue
        f, thr = int(t.feature[node]), float(t.threshold[node])
        goes_left = bool(missing_left[node]) if missing_left is not None else False
        stack.append((right, [*path, (f, False, thr, not goes_left)]))
        stack.append((left, [*path, (f, True, thr, goes_left)]))
    return out


def _conditions(path: list[tuple[int, bool, float, bool]], meta: list[_Feature]) -> list[str]:
    """Readable conditions, one per attribute, in the order the tree first tests them."""
    numeric: dict[str, dict[str, object]] = {}
    equal: dict[str, str] = {}
    not_equal: dict[str, list[str]] = {}
    order: list[str] = []
    for f, went_left, thr, with_missing in path:
        feat = meta[f]
        if feat.column not in order:
            order.append(feat.column)
        if feat.level is not None:
            if went_left:
                not_equal.setdefault(feat.column, []).append(feat.level)
            else:
                equal[feat.column] = feat.level
            continue
        bounds = numeric.setdefault(feat.column, {"lo": None, "hi": None, "missing": True})
        if went_left:
            bounds["hi"] = thr if bounds["hi"] is None else min(bounds["hi"], thr)
        else:
            bounds["lo"] = thr if bounds["lo"] is None else max(bounds["lo"], thr)
        bounds["missing"] = bool(bounds["missing"]) and with_missing and feat.has_missing
    by_column = {m.column: m for m in meta}
    out = []
    for col in order:
        if col in equal:
            out.append(f"{col} = {equal[col]}")
        elif col in not_equal:
            levels = sorted(set(not_equal[col]))
            out.append(
                f"{col} != {levels[0]}"
                if len(levels) == 1
                else f"{col} not in {{{', '.join(levels)}}}"
            )
        else:
            b = numeric[col]
            fmt = _number_format(by_column[col].integer)
            lo, hi = b["lo"], b["hi"]
            text = (
                f"{fmt(lo)} < {col} <= {fmt(hi)}"
                if lo is not None and hi is not None
                else f"{col} <= {fmt(hi)}"
                if hi is not None
                else f"{col} > {fmt(lo)}"
            )
            out.append(f"{text} (or unknown)" if b["missing"] else text)
    return out


def _number_format(integer: bool) -> Callable[[float], str]:
    if integer:
        return lambda v: f"{math.floor(v):d}"
    return lambda v: f"{v:.4g}"
