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
sample, on the later score period. A language model may phrase and choose
rules, never invent these numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.tree import DecisionTreeClassifier

from closedloop.tools.base import read_tool
from closedloop.tools.errors import EventLogError, ScenarioError
from closedloop.tools.rules.conditions import compile_condition, identifier

CASE, ACTIVITY, COMPLETE, START = (
    "case:concept:name", "concept:name", "time:timestamp", "start_timestamp"
)  # fmt: skip
_STANDARD = {CASE, ACTIVITY, COMPLETE, START, "org:resource", "org:group", "lifecycle:transition"}
LABEL, CASE_START, DECIDED_AT, VARIANT = "_label", "_start", "_decided_at", "_variant"
MAX_CATEGORIES = 20  # one-hot columns per categorical feature (the most frequent values)
MAX_DISTINCT_CATEGORICAL = 200  # more distinct values than this: an identifier, not a feature


class OutcomeTarget(BaseModel):
    """Which decision a case reached, read from its activities.

    ``outcomes`` maps a label to the activities that mean it, e.g.
    ``{"approve": ["A_APPROVED"], "decline": ["A_DECLINED", "A_CANCELLED"]}``.
    The earliest such activity in a case decides its label; cases with none
    get ``otherwise`` (None = they are left out: still open or undecided).
    """

    model_config = ConfigDict(extra="forbid")
    outcomes: dict[str, list[str]] = Field(min_length=1)
    otherwise: str | None = None


BPI2012_DECISION = OutcomeTarget(
    outcomes={"approve": ["A_APPROVED"], "decline": ["A_DECLINED", "A_CANCELLED"]}
)

Target = OutcomeTarget | Mapping[str, Sequence[str]] | str


class Confusion(BaseModel):
    """What people decided (label -> cases) where the rule fires and where it does not."""

    fired: dict[str, int]
    not_fired: dict[str, int]


class PeriodScore(BaseModel):
    period: Literal["fit", "score"]
    first_case_start: str | None
    last_case_start: str | None
    cases: int = Field(description="decided cases that started in the period")
    support: int = Field(description="cases the rule fires on")
    coverage: float = Field(description="support / cases")
    variant_coverage: float = Field(description="share of the period's process paths it fires on")
    precision: float | None = Field(description="share of fired cases people decided as predicted")
    base_rate: float = Field(description="share of all cases people decided as predicted")
    lift: float | None = Field(description="precision / base_rate")
    errors: int = Field(description="fired cases people decided otherwise")
    confusion: Confusion


class RuleBacktest(BaseModel):
    condition: str
    action: str
    predicts: str = Field(description="the decision label the action stands for")
    split_at: str = Field(description="start of the first score-period case (UTC ISO)")
    fit: PeriodScore
    score: PeriodScore
    min_precision: float
    min_support: int
    holds: bool = Field(description="score-period precision >= min_precision with enough support")
    message: str


class CandidateRule(BaseModel):
    condition: str
    action: str
    predicts: str
    tree_leaf_cases: int = Field(description="fit-period cases in the tree leaf")
    backtest: RuleBacktest

    def as_rule(self) -> dict[str, str]:
        return {"condition": self.condition, "action": self.action}


class RuleSet(BaseModel):
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


def as_target(target: Target) -> OutcomeTarget | str:
    if isinstance(target, (OutcomeTarget, str)):
        return target
    try:
        return OutcomeTarget(outcomes={k: list(v) for k, v in dict(target).items()})
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"invalid target {target!r}: {exc}") from None


def _describe(target: OutcomeTarget | str) -> str:
    if isinstance(target, str):
        return f"case attribute {target}"
    parts = [f"{label}: {' / '.join(acts)}" for label, acts in target.outcomes.items()]
    return "; ".join(parts) + (f"; otherwise {target.otherwise}" if target.otherwise else "")


def _attribute_columns(frame: pd.DataFrame) -> list[str]:
    """``case:`` columns plus event attributes that never vary within a case."""
    cols = [c for c in frame.columns if c.startswith("case:") and c != CASE]
    others = [
        c for c in frame.columns
        if not c.startswith(("case:", "_")) and c not in _STANDARD and f"case:{c}" not in cols
    ]  # fmt: skip
    if others:
        varying = frame.groupby(CASE, sort=False)[others].nunique(dropna=True).max()
        cols += [c for c in others if varying[c] <= 1]
    return cols


def case_table(frame: pd.DataFrame, target: Target) -> pd.DataFrame:
    """One row per case: attributes (``case:`` dropped), label, start, decision time, variant.

    Cases without a label are kept with a missing ``_label``.
    """
    missing = [c for c in (CASE, ACTIVITY, COMPLETE) if c not in frame.columns]
    if missing:
        raise EventLogError(f"event frame lacks required column(s) {missing}")
    if frame.empty:
        raise ScenarioError("event frame is empty: no cases to learn rules from")
    target = as_target(target)
    df = frame.copy()
    df[CASE] = df[CASE].astype(str)
    df[ACTIVITY] = df[ACTIVITY].astype(str)
    df[COMPLETE] = pd.to_datetime(df[COMPLETE], utc=True)
    df[START] = pd.to_datetime(df[START], utc=True) if START in df else df[COMPLETE]
    df = df.sort_values([CASE, COMPLETE], kind="mergesort")
    by_case = df.groupby(CASE, sort=True)
    attrs = _attribute_columns(df)
    table = by_case[attrs].first() if attrs else pd.DataFrame(index=by_case.size().index)
    table.columns = [c.removeprefix("case:") for c in table.columns]
    for c in table.columns:
        if table[c].dtype == object or pd.api.types.is_string_dtype(table[c]):
            numeric = pd.to_numeric(table[c], errors="coerce")
            if numeric.notna().sum() == table[c].notna().sum() and numeric.notna().any():
                table[c] = numeric
    table[CASE_START] = by_case[START].min()
    table[VARIANT] = by_case[ACTIVITY].agg(lambda a: "\x1f".join(map(str, a)))
    if isinstance(target, str):
        name = target.removeprefix("case:")
        if name not in table.columns:
            raise ScenarioError(
                f"unknown target attribute {target!r}; case attributes: "
                f"{', '.join(c for c in table.columns if not c.startswith('_')) or '(none)'}"
            )
        table[LABEL] = table[name].map(lambda v: None if pd.isna(v) else str(v))
        table[DECIDED_AT] = pd.NaT
        return table.drop(columns=[name])
    label_of = {a: label for label, acts in target.outcomes.items() for a in acts}
    known = set(df[ACTIVITY].unique())
    absent = sorted(set(label_of) - known)
    if len(absent) == len(label_of):
        raise ScenarioError(
            f"none of the outcome activities {absent} occurs in the log; activities: "
            f"{', '.join(sorted(known)[:40])}"
        )
    hits = df[df[ACTIVITY].isin(label_of)].groupby(CASE, sort=False).head(1)
    hits = hits.set_index(CASE)
    table[LABEL] = hits[ACTIVITY].map(label_of).reindex(table.index)
    table[DECIDED_AT] = hits[COMPLETE].reindex(table.index)
    if target.otherwise is not None:
        table[LABEL] = table[LABEL].fillna(target.otherwise)
    return table


def feature_columns(table: pd.DataFrame) -> list[str]:
    """Attributes usable as tree features: numeric, bool or low-cardinality text."""
    usable = []
    for c in table.columns:
        if c.startswith("_"):
            continue
        col = table[c]
        if pd.api.types.is_datetime64_any_dtype(col) or col.notna().sum() == 0:
            continue
        if pd.api.types.is_numeric_dtype(col) or col.nunique() <= MAX_DISTINCT_CATEGORICAL:
            usable.append(c)
    return usable


def split_by_time(table: pd.DataFrame, time_split: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Earlier ``time_split`` share of the labelled cases (by case start) and the later rest."""
    if not 0 < time_split < 1:
        raise ScenarioError(f"time_split must be strictly between 0 and 1, got {time_split}")
    labelled = table[table[LABEL].notna()].sort_values([CASE_START], kind="mergesort")
    n_fit = round(len(labelled) * time_split)
    if n_fit < 1 or n_fit >= len(labelled):
        raise ScenarioError(
            f"{len(labelled)} decided case(s) cannot be split {time_split:.0%} / "
            f"{1 - time_split:.0%} into a fit and a score period"
        )
    return labelled.iloc[:n_fit], labelled.iloc[n_fit:]


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    cols = [c for c in table.columns if not c.startswith("_")]
    values = table[cols].astype(object).where(table[cols].notna(), None)
    return values.to_dict("records")


def _iso(t: Any) -> str | None:
    return None if t is None or pd.isna(t) else pd.Timestamp(t).isoformat()


def score_period(
    part: pd.DataFrame, fired: np.ndarray, predicts: str, period: Literal["fit", "score"]
) -> PeriodScore:
    """Coverage, precision and confusion of a rule that fires on ``fired`` in ``part``."""
    labels = part[LABEL].to_numpy(dtype=object)
    support = int(fired.sum())
    right = int((labels[fired] == predicts).sum())
    base = float((labels == predicts).mean()) if len(labels) else 0.0
    precision = right / support if support else None
    variants = part[VARIANT]
    n_variants = variants.nunique()
    return PeriodScore(
        period=period,
        first_case_start=_iso(part[CASE_START].min()) if len(part) else None,
        last_case_start=_iso(part[CASE_START].max()) if len(part) else None,
        cases=len(part),
        support=support,
        coverage=support / len(part) if len(part) else 0.0,
        variant_coverage=variants[fired].nunique() / n_variants if n_variants else 0.0,
        precision=precision,
        base_rate=base,
        lift=precision / base if precision is not None and base > 0 else None,
        errors=support - right,
        confusion=Confusion(
            fired={str(k): int(v) for k, v in pd.Series(labels[fired]).value_counts().items()},
            not_fired={str(k): int(v) for k, v in pd.Series(labels[~fired]).value_counts().items()},
        ),
    )


def predicted_label(action: str, labels: Sequence[str], actions: Mapping[str, str] | None) -> str:
    mapping = {label: f"auto_{label}" for label in labels} | dict(actions or {})
    for label, act in mapping.items():
        if act == action:
            return label
    raise ScenarioError(
        f"unknown action {action!r}; actions for this target: {', '.join(mapping.values())}"
    )


def _backtest(
    fit: pd.DataFrame, score: pd.DataFrame, condition: str, action: str, predicts: str,
    names: list[str], min_precision: float, min_support: int,
) -> RuleBacktest:  # fmt: skip
    cond = compile_condition(condition, names=names)
    fit_score = score_period(fit, np.asarray(cond.mask(records(fit)), dtype=bool), predicts, "fit")
    out = score_period(score, np.asarray(cond.mask(records(score)), dtype=bool), predicts, "score")
    holds = out.precision is not None and out.precision >= min_precision
    holds = holds and out.support >= min_support
    pct = (lambda x: "n/a" if x is None else f"{100 * x:.1f}%")
    message = (
        f"{condition!r} -> {action}: fit period {fit_score.support} cases "
        f"({pct(fit_score.coverage)}), precision {pct(fit_score.precision)}; score period "
        f"{out.support} cases ({pct(out.coverage)}), precision {pct(out.precision)} vs base rate "
        f"{pct(out.base_rate)}; {'holds' if holds else 'does not hold'} out of sample "
        f"(needs >= {pct(min_precision)} on >= {min_support} cases)"
    )
    return RuleBacktest(
        condition=cond.expression, action=action, predicts=predicts,
        split_at=_iso(score[CASE_START].min()) or "", fit=fit_score, score=out,
        min_precision=min_precision, min_support=min_support, holds=holds, message=message,
    )  # fmt: skip


@read_tool
def backtest_rule(
    frame: pd.DataFrame,
    condition: str,
    action: str,
    target: Target = BPI2012_DECISION,
    time_split: float = 0.8,
    min_precision: float = 0.9,
    min_support: int = 30,
    actions: Mapping[str, str] | None = None,
) -> RuleBacktest:
    """Backtest one automation rule against what people decided in the log.

    ``condition`` is a safe expression over case attributes (names without
    ``case:``), e.g. ``"AMOUNT_REQ < 2500"``; ``action`` names the decision the
    rule would take, ``auto_<label>`` by default (``actions`` maps labels to
    other action names). ``target`` says what people decided per case: an
    outcome mapping ``{"approve": ["A_APPROVED"], "decline": ["A_DECLINED"]}``
    (the earliest such activity decides) or the name of a case attribute.

    Cases are ordered by start; the first ``time_split`` share is the fit
    period, the rest the score period. For both periods returns: cases,
    support (cases the rule fires on), coverage, variant coverage (share of
    process paths), precision (share of fired cases people decided the same),
    base rate of that decision, lift, errors and the confusion (actual labels
    where it fires and where it does not). ``holds`` is true when the score
    period precision is >= ``min_precision`` on >= ``min_support`` cases.
    Unknown attributes or actions raise ScenarioError naming the valid ones.
    """
    target = as_target(target)
    table = case_table(frame, target)
    labels = sorted(table[LABEL].dropna().unique())
    predicts = predicted_label(action, labels, actions)
    fit, score = split_by_time(table, time_split)
    names = [c for c in table.columns if not c.startswith("_")]
    return _backtest(fit, score, condition, action, predicts, names, min_precision, min_support)


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
        bt = _backtest(fit, score, condition, action, predicts, names, min_precision, min_support)
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
        target=_describe(target),
        labels={str(k): int(v) for k, v in labels.items()},
        features=features,
        split_at=_iso(score[CASE_START].min()) or "",
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
