"""Deterministic scoring and deduplication of mining insights into opportunities.

Priority = Impact x Feasibility / (1 + Risk). The LLM may choose among scored
insights and explain them; it never sets these numbers.

Feasibility asks whether the delay can be changed. Without a connected system
it is judged from the delay alone (waiting is easier to cut than handling).
With one, the system's catalog decides (its ``lever``, computed by
:func:`closedloop.tools.act.actionability.actionability`): no catalog change
applies -> hardly feasible, whatever the delay; a setting applies (threshold,
automation, routing: the system changes itself, waiting and handling alike) ->
fully feasible; only capacity applies -> judged from the delay as before (more
people cut waiting, not handling, and need hiring).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.base import read_tool

# Activities whose names suggest a decision about money or customers are riskier to touch.
RISKY_ACTIVITY = re.compile(
    r"approv|declin|decid|decision|pay|refund|credit|loan|contract", re.IGNORECASE
)
# What the connected system's catalog can do about an activity (None: no system known).
Lever = Literal["none", "capacity", "setting"]
NO_LEVER_FEASIBILITY = 0.1
SETTING_FEASIBILITY = 1.0


class InsightScore(BaseModel):
    impact: float = Field(
        ge=0, le=1, description="share of all case time this insight accounts for"
    )
    feasibility: float = Field(ge=0, le=1)
    risk: float = Field(ge=0, le=1)
    priority: float
    feasibility_reason: str = Field("", description="why this feasibility, for people")


class Segment(BaseModel):
    """A slice of cases passing through an activity (``attribute == value``)."""

    attribute: str
    value: str
    share: float = Field(description="share of the activity's cases in this segment")
    cases: int
    mean_waiting_hours: float
    mean_processing_hours: float


def fingerprint(
    process: str, pattern: str, activity: str, attributes: dict[str, Any] | None = None
) -> str:
    """Stable identity of a finding, so the same opportunity is never opened twice."""
    raw = json.dumps([process, pattern, activity, attributes or {}], sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def _feasibility(kind: str, waiting_share: float, lever: Lever | None) -> tuple[float, str]:
    """Feasibility of changing an insight's delay and why (see the module docstring)."""
    if lever == "none":
        return NO_LEVER_FEASIBILITY, "no change the connected system's catalog offers applies here"
    if lever == "setting":
        return SETTING_FEASIBILITY, "a setting of the connected system applies here"
    if kind == "bottleneck":
        base = 0.8 if waiting_share >= 0.5 else 0.5
        nature = "waiting" if waiting_share >= 0.5 else "handling"
        why = f"{nature}-dominated delay"
    else:
        base, why = 0.5, "rework"
    if lever == "capacity":
        return base, f"only capacity applies; {why}"
    return base, why


@read_tool
def score_insight(
    kind: str,
    activity: str,
    total_hours: float,
    total_case_hours: float,
    waiting_share: float = 1.0,
    lever: Lever | None = None,
) -> InsightScore:
    """Impact, feasibility, risk and priority of one insight.

    Impact is the insight's hours over all case hours. Feasibility comes from
    what the connected system can do about it (``lever``, see the module
    docstring) or, without a system (None), from the delay: waiting-dominated
    delays are more feasible to fix (capacity, routing, automation) than
    processing time. Activities that look like money or customer decisions
    carry more risk.
    """
    impact = min(1.0, total_hours / total_case_hours) if total_case_hours > 0 else 0.0
    return _scored(kind, activity, impact, waiting_share, lever)


@read_tool
def rescore_insight(
    score: InsightScore, kind: str, activity: str, waiting_share: float, lever: Lever
) -> InsightScore:
    """An insight's ``score`` again, with the feasibility of what the connected system's catalog
    can do about it (``lever``); its impact stays."""
    return _scored(kind, activity, score.impact, waiting_share, lever)


def _scored(
    kind: str, activity: str, impact: float, waiting_share: float, lever: Lever | None
) -> InsightScore:
    feasibility, why = _feasibility(kind, waiting_share, lever)
    risk = 0.2 if kind == "bottleneck" else 0.3
    if RISKY_ACTIVITY.search(activity):
        risk += 0.4
    risk = min(risk, 1.0)
    return InsightScore(
        impact=round(impact, 4),
        feasibility=feasibility,
        risk=risk,
        priority=round(impact * feasibility / (1 + risk), 4),
        feasibility_reason=why,
    )


@read_tool
def segment_profile(
    frame: pd.DataFrame, activity: str, max_values: int = 12, top: int = 24
) -> list[Segment]:
    """The case-attribute segments of the cases that pass through ``activity``.

    For each categorical case attribute (at most ``max_values`` distinct
    values) gives each value's share of the activity's cases and its mean
    waiting and processing hours at that activity, largest share first.
    """
    rows = frame[frame["concept:name"] == activity]
    if rows.empty:
        return []
    prev_end = frame.groupby("case:concept:name")["time:timestamp"].shift(1)
    wait = (frame["start_timestamp"] - prev_end).dt.total_seconds().div(3600).clip(lower=0)
    proc = (frame["time:timestamp"] - frame["start_timestamp"]).dt.total_seconds().div(3600)
    rows = rows.assign(_wait=wait.loc[rows.index].fillna(0.0), _proc=proc.loc[rows.index])
    segments: list[Segment] = []
    for col in [c for c in frame.columns if c.startswith("case:") and c != "case:concept:name"]:
        values = rows[col].astype(str)
        if values.nunique() > max_values or values.nunique() < 2:
            continue
        grouped = rows.groupby(values).agg(
            cases=("case:concept:name", "nunique"), w=("_wait", "mean"), p=("_proc", "mean")
        )
        total = rows["case:concept:name"].nunique()
        for value, g in grouped.iterrows():
            segments.append(
                Segment(
                    attribute=col.removeprefix("case:"),
                    value=str(value),
                    share=round(g["cases"] / total, 4),
                    cases=int(g["cases"]),
                    mean_waiting_hours=round(float(g["w"]), 3),
                    mean_processing_hours=round(float(g["p"]), 3),
                )
            )
    segments.sort(key=lambda s: (-s.share, s.attribute, s.value))
    return segments[:top]
