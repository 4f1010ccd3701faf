"""Candidate automation rules from decision trees, backtested on history.

A rule is ``{"condition": <safe expression over case attributes>, "action": ...}``,
e.g. ``{"condition": "AMOUNT_REQ < 2500", "action": "auto_decline"}``. Rules are
proposed by a scikit-learn decision tree that predicts the decision people took
in each case (the *target*: which outcome activity the case reached, or a case
attribute) from the case attributes, fitted on the earlier cases only (time
split by case start). Every leaf that is pure enough becomes a candidate, its
path written in the condition language of :mod:`closedloop.tools.rules.conditions`
(never ``eval``). The numbers that matter -- coverage, precision against what
people decided, support, the confusion of the cases the rule fires on -- are
computed by evaluating that condition string on the fit period and, out of
sample, on the later score period (:mod:`closedloop.tools.rules.backtest`, on
the case table of :mod:`closedloop.tools.rules.cases`). A language model may
phrase and choose rules, never invent these numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn.tree import DecisionTreeClassifier

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ScenarioError
from closedloop.tools.rules.backtest import RuleBacktest, backtest_condition, iso_time
from closedloop.tools.rules.cases import (
    BPI2012_DECISION,
    CASE_START,
    LABEL,
    OutcomeTarget,
    Target,
    as_target,
    case_table,
    describe_target,
    feature_columns,
    split_by_time,
)
from closedloop.tools.rules.conditions import identifier

__all__ = ["CandidateRule", "RuleSet", "generate_rules", "nice_cut", "number_literal"]
# Also importable from here for callers written before the facade (twin_cli); new code
# imports them from closedloop.tools.rules.
__all__ += ["BPI2012_DECISION", "OutcomeTarget"]

MAX_CATEGORIES = 20  # one-hot columns per categorical feature (the most frequent values)


class CandidateRule(BaseModel):
    """A rule read off one tree leaf, with its backtest."""

    condition: str
    action: str
    predicts: str
    tree_leaf_cases: int = Field(description="fit-period cases in the tree leaf")
    backtest: RuleBacktest

    def as_rule(self) -> dict[str, str]:
        return {"condition": self.condition, "action": self.action}


class RuleSet(BaseModel):
    """Candidate rules of one target, with the tree's accuracy against the baseline."""

    target: str
    labels: dict[str, int] = Field(description="decided cases per label (fit + score)")
    features: list[str]
    split_at: str
    fit_cases: int
    score_cases: int
    unlabelled_cases: int = Field(description="cases left out: no outcome reached")
    majority_label: str = Field(description="most frequent label in the fit period")
    baseline_accuracy: float = Field(description="score-period accuracy of always the majority")
    tree_accuracy: float = Field(description="score-period accuracy of the whole tree")
    rules: list[CandidateRule]
    notes: list[str] = Field(default_factory=list)


def nice_cut(lo: float, hi: float) -> float:
    """The roundest number in (lo, hi]: a cut that splits the fit data like the tree's."""
    if not lo < hi:
        return hi
    step = 10.0 ** (math.floor(math.log10(max(abs(lo), abs(hi), 1e-12))) + 1)
    while step > (hi - lo) * 1e-9:
        cut = math.floor(hi / step) * step
        if lo < cut <= hi:
            return float(f"{cut:.12g}")
        step /= 10
    return hi


def number_literal(value: float) -> str:
    """A number as condition text: whole numbers without ``.0``."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


class _Encoded:
    """Tree inputs: numeric columns as they are, text columns one-hot (top values)."""

    def __init__(self, fit: pd.DataFrame, features: list[str]):
        self.columns: list[tuple[str, Any]] = []  # (feature, None | category value)
        self.numeric_values: dict[str, np.ndarray] = {}
        for f in features:
            col = fit[f]
            if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
                for value in col.dropna().value_counts().index[:MAX_CATEGORIES]:
                    self.columns.append((f, value))
            else:
                self.columns.append((f, None))
                self.numeric_values[f] = np.unique(col.dropna().to_numpy(dtype=float))

    def matrix(self, part: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(part), len(self.columns)), dtype=float)
        for j, (f, value) in enumerate(self.columns):
            col = part[f]
            if value is None:
                out[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
            else:
                out[:, j] = (col == value).fillna(False).to_numpy(dtype=float)
        return out

    def condition(self, path: list[tuple[int, bool, float]]) -> str:
        """Condition text of a root-to-leaf path of (column, went_left, threshold)."""
        lower: dict[str, float] = {}
        upper: dict[str, float] = {}
        equal: dict[str, Any] = {}
        excluded: dict[str, list[Any]] = {}
        order: list[str] = []
        for j, left, threshold in path:
            f, value = self.columns[j]
            if f not in order:
                order.append(f)
            if value is not None:
                if left:
                    excluded.setdefault(f, []).append(value)
                else:
                    equal[f] = value
                continue
            vals = self.numeric_values[f]
            below = vals[vals <= threshold]
            above = vals[vals > threshold]
            lo = float(below[-1]) if len(below) else threshold
            hi = float(above[0]) if len(above) else threshold
            cut = nice_cut(lo, hi)
            if left:
                upper[f] = min(upper.get(f, math.inf), cut)
            else:
                lower[f] = max(lower.get(f, -math.inf), cut)
        parts = []
        for f in order:
            name = identifier(f)
            if f in equal:
                parts.append(f"{name} == {equal[f]!r}")
            elif f in excluded:
                values = excluded[f]
                parts.append(
                    f"{name} != {values[0]!r}" if len(values) == 1
                    else f"{name} not in ({', '.join(repr(v) for v in values)})"
                )  # fmt: skip
            if f in lower:
                parts.append(f"{name} >= {number_literal(lower[f])}")
            if f in upper:
                parts.append(f"{name} < {number_literal(upper[f])}")
        return " and ".join(parts)


def _leaf_paths(tree: Any) -> list[tuple[int, list[tuple[int, bool, float]]]]:
    t = tree.tree_
    out: list[tuple[int, list[tuple[int, bool, float]]]] = []
    stack: list[tuple[int, list[tuple[int, bool, float]]]] = [(0, [])]
    while stack:
        node, path = stack.pop()
        if t.children_left[node] == -1:
            out.append((node, path))
            continue
        j, threshold = int(t.feature[node]), float(t.threshold[node])
        stack.append((int(t.children_right[node]), [*path, (j, False, threshold)]))
        stack.append((int(t.children_left[node]), [*path, (j, True, threshold)]))
    return sorted(out, key=lambda x: x[0])


@read_tool
def generate_rules(
    frame: pd.DataFrame,
    target: Target = BPI2012_DECISION,
    features: list[str] | None = None,
    time_split: float = 0.8,
    min_precision: float = 0.9,
    min_support: int = 30,
    max_depth: int = 3,
    actions: Mapping[str, str] | None = None,
    seed: int = 0,
) -> RuleSet:
    """Propose automation rules from a decision tree and backtest each on later cases.

    ``target`` says what people decided per case (see ``backtest_rule``; default:
    BPI 2012 loan applications, approve = ``A_APPROVED``, decline =
    ``A_DECLINED``/``A_CANCELLED``). ``features`` are case attribute names
    (default: every numeric or low-cardinality attribute; pick ones known
    before the decision). A tree of depth ``max_depth`` (leaves of at least
    ``min_support`` cases, ``seed`` for ties) is fitted on the earlier
    ``time_split`` share of cases; every leaf whose condition is right for at
    least ``min_precision`` of its fit-period cases becomes a candidate
    ``{"condition": "...", "action": "auto_<label>"}`` (``actions`` renames
    actions), scored out of sample on the later cases (see ``RuleBacktest``;
    ``holds`` says whether it stays precise). Also reports the tree's
    score-period accuracy against the majority-class baseline. Rules are
    ordered by fit-period support. Unknown features raise ScenarioError.
    """
    if not 0 < min_precision <= 1:
        raise ScenarioError(f"min_precision must be in (0, 1], got {min_precision}")
    if min_support < 1 or max_depth < 1:
        raise ScenarioError("min_support and max_depth must be >= 1")
    target = as_target(target)
    table = case_table(frame, target)
    names = [c for c in table.columns if not c.startswith("_")]
    usable = feature_columns(table)
    notes: list[str] = []
    if features is None:
        features = usable
    else:
        features = [f.removeprefix("case:") for f in features]
        bad = [f for f in features if f not in usable]
        if bad:
            raise ScenarioError(
                f"unknown or unusable feature(s) {bad}; usable case attributes: "
                f"{', '.join(usable) or '(none)'}"
            )
    if not features:
        raise ScenarioError(
            f"no usable case attribute to learn rules from; case attributes: {names or '(none)'}"
        )
    fit, score = split_by_time(table, time_split)
    unlabelled = int(table[LABEL].isna().sum())
    enc = _Encoded(fit, features)
    tree = DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=min_support,
                                  random_state=seed)  # fmt: skip
    tree.fit(enc.matrix(fit), fit[LABEL].to_numpy(dtype=str))
    classes = list(tree.classes_)
    majority = str(fit[LABEL].value_counts().index[0])
    y_score = score[LABEL].to_numpy(dtype=str)
    tree_accuracy = float((tree.predict(enc.matrix(score)) == y_score).mean())
    baseline = float((y_score == majority).mean())

    rules: list[CandidateRule] = []
    seen: set[tuple[str, str]] = set()
    for node, path in _leaf_paths(tree):
        if not path:
            notes.append("the tree found no split: no attribute separates the decisions")
            break
        predicts = str(classes[int(np.argmax(tree.tree_.value[node][0]))])
        action = _predicted_label_action(predicts, actions)
        condition = enc.condition(path)
        if (condition, action) in seen:
            continue
        seen.add((condition, action))
        bt = backtest_condition(
            fit, score, condition, action, predicts, names, min_precision, min_support
        )
        if bt.fit.precision is None or bt.fit.precision < min_precision:
            continue
        if bt.fit.support < min_support:
            continue
        rules.append(CandidateRule(
            condition=bt.condition, action=action, predicts=predicts,
            tree_leaf_cases=int(tree.tree_.n_node_samples[node]), backtest=bt,
        ))  # fmt: skip
    rules.sort(key=lambda r: (-r.backtest.fit.support, r.condition))
    if not rules:
        notes.append(
            f"no leaf reaches {min_precision:.0%} precision on >= {min_support} fit-period cases"
        )
    labels = table[LABEL].value_counts()
    return RuleSet(
        target=describe_target(target),
        labels={str(k): int(v) for k, v in labels.items()},
        features=features,
        split_at=iso_time(score[CASE_START].min()) or "",
        fit_cases=len(fit),
        score_cases=len(score),
        unlabelled_cases=unlabelled,
        majority_label=majority,
        baseline_accuracy=baseline,
        tree_accuracy=tree_accuracy,
        rules=rules,
        notes=notes,
    )


def _predicted_label_action(label: str, actions: Mapping[str, str] | None) -> str:
    if actions and label in actions:
        return actions[label]
    return f"auto_{label}"
