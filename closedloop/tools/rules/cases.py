"""Cases as a table for rule learning: target labels, attributes, time split.

:func:`case_table` turns an event frame into one row per case: the case
attributes (``case:`` dropped; event attributes that never vary within a case
count too), the decision people took (the *target*, :class:`OutcomeTarget` or
a case attribute) in ``LABEL``, the case start, the decision time and the
variant. :func:`split_by_time` cuts the decided cases into an earlier fit and
a later score period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from closedloop.tools.errors import EventLogError, ScenarioError
from closedloop.tools.log.attributes import case_level_columns
from closedloop.tools.log.columns import (
    ACTIVITY,
    CASE,
    CASE_PREFIX,
    COMPLETE,
    START,
)

__all__ = [
    "BPI2012_DECISION", "CASE_START", "DECIDED_AT", "LABEL", "VARIANT", "OutcomeTarget", "Target",
    "as_target", "attribute_columns", "case_table", "describe_target", "feature_columns",
    "records", "split_by_time",
]  # fmt: skip

# Columns of the case table (a leading "_" keeps them apart from attribute names).
LABEL, CASE_START, DECIDED_AT, VARIANT = "_label", "_start", "_decided_at", "_variant"
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


def as_target(target: Target) -> OutcomeTarget | str:
    """An OutcomeTarget (from a mapping) or an attribute name; ScenarioError when invalid."""
    if isinstance(target, (OutcomeTarget, str)):
        return target
    try:
        return OutcomeTarget(outcomes={k: list(v) for k, v in dict(target).items()})
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"invalid target {target!r}: {exc}") from None


def describe_target(target: OutcomeTarget | str) -> str:
    """The target in words, e.g. ``approve: A_APPROVED; decline: A_DECLINED``."""
    if isinstance(target, str):
        return f"case attribute {target}"
    parts = [f"{label}: {' / '.join(acts)}" for label, acts in target.outcomes.items()]
    return "; ".join(parts) + (f"; otherwise {target.otherwise}" if target.otherwise else "")


def attribute_columns(frame: pd.DataFrame) -> list[str]:
    """``case:`` columns plus event attributes that never vary within a case."""
    cols, constant = case_level_columns(frame)
    return cols + constant


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
    attrs = attribute_columns(df)
    table = by_case[attrs].first() if attrs else pd.DataFrame(index=by_case.size().index)
    table.columns = [c.removeprefix(CASE_PREFIX) for c in table.columns]
    for c in table.columns:
        if table[c].dtype == object or pd.api.types.is_string_dtype(table[c]):
            numeric = pd.to_numeric(table[c], errors="coerce")
            if numeric.notna().sum() == table[c].notna().sum() and numeric.notna().any():
                table[c] = numeric
    table[CASE_START] = by_case[START].min()
    table[VARIANT] = by_case[ACTIVITY].agg(lambda a: "\x1f".join(map(str, a)))
    if isinstance(target, str):
        name = target.removeprefix(CASE_PREFIX)
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
    """The attribute columns of a case table as dicts (missing -> None), for conditions."""
    cols = [c for c in table.columns if not c.startswith("_")]
    values = table[cols].astype(object).where(table[cols].notna(), None)
    return values.to_dict("records")
