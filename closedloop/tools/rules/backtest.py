"""Backtests of automation rules against what people decided in the log.

A rule (a condition over case attributes and an action standing for one
decision label) is evaluated, never ``eval``-ed, on the earlier fit period and
out of sample on the later score period: coverage, variant coverage,
precision, base rate, lift, errors and the confusion of decisions where it
fires and where it does not (:class:`PeriodScore`, :class:`RuleBacktest`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ScenarioError
from closedloop.tools.rules.cases import (
    BPI2012_DECISION,
    CASE_START,
    LABEL,
    VARIANT,
    Target,
    as_target,
    case_table,
    records,
    split_by_time,
)
from closedloop.tools.rules.conditions import compile_condition

__all__ = [
    "Confusion", "PeriodScore", "RuleBacktest", "backtest_condition", "backtest_rule", "iso_time",
    "predicted_label", "score_period",
]  # fmt: skip


class Confusion(BaseModel):
    """What people decided (label -> cases) where the rule fires and where it does not."""

    fired: dict[str, int]
    not_fired: dict[str, int]


class PeriodScore(BaseModel):
    """How a rule does on the cases of one period (fit or score)."""

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
    """A rule scored on the fit and, out of sample, on the score period."""

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


def iso_time(t: Any) -> str | None:
    """A timestamp as UTC ISO text, None when missing."""
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
        first_case_start=iso_time(part[CASE_START].min()) if len(part) else None,
        last_case_start=iso_time(part[CASE_START].max()) if len(part) else None,
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
    """The label an action stands for (``auto_<label>`` unless ``actions`` renames)."""
    mapping = {label: f"auto_{label}" for label in labels} | dict(actions or {})
    for label, act in mapping.items():
        if act == action:
            return label
    raise ScenarioError(
        f"unknown action {action!r}; actions for this target: {', '.join(mapping.values())}"
    )


def backtest_condition(
    fit: pd.DataFrame, score: pd.DataFrame, condition: str, action: str, predicts: str,
    names: list[str], min_precision: float, min_support: int,
) -> RuleBacktest:  # fmt: skip
    """Backtest ``condition`` on an already split case table (see :func:`backtest_rule`)."""
    cond = compile_condition(condition, names=names)
    fit_score = score_period(fit, np.asarray(cond.mask(records(fit)), dtype=bool), predicts, "fit")
    out = score_period(score, np.asarray(cond.mask(records(score)), dtype=bool), predicts, "score")
    holds = out.precision is not None and out.precision >= min_precision
    holds = holds and out.support >= min_support
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"
    message = (
        f"{condition!r} -> {action}: fit period {fit_score.support} cases "
        f"({pct(fit_score.coverage)}), precision {pct(fit_score.precision)}; score period "
        f"{out.support} cases ({pct(out.coverage)}), precision {pct(out.precision)} vs base rate "
        f"{pct(out.base_rate)}; {'holds' if holds else 'does not hold'} out of sample "
        f"(needs >= {pct(min_precision)} on >= {min_support} cases)"
    )
    return RuleBacktest(
        condition=cond.expression, action=action, predicts=predicts,
        split_at=iso_time(score[CASE_START].min()) or "", fit=fit_score, score=out,
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
    return backtest_condition(
        fit, score, condition, action, predicts, names, min_precision, min_support
    )
