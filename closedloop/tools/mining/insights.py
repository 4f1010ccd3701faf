"""Scored insights (bottlenecks, rework loops) from a mining report: what Triage chooses among."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel

from closedloop.tools.base import read_tool
from closedloop.tools.mining.opportunities import score_insight, segment_profile


class ScoredInsight(BaseModel):
    """One finding of a mining run with its score (``detail["score"]``) and evidence."""

    kind: Literal["bottleneck", "rework"]
    activity: str
    metric: str
    value: float
    detail: dict[str, Any]


@read_tool
def insights_from_report(report: Mapping[str, Any], frame: pd.DataFrame) -> list[ScoredInsight]:
    """Scored insights from a mining report (``MiningReport`` JSON) and its event frame.

    Every bottleneck is scored by its total delay (with the case-attribute
    segments of its cases), every rework loop by the hours its extra
    executions cost; both against all case hours. These scores know no connected
    system; Triage rescores them with what its catalog can do
    (:func:`~closedloop.tools.mining.opportunities.rescore_insight`).
    """
    cycle = report["cycle_time_hours"]["mean"]
    total_case_hours = cycle * report["cases"]
    waiting = {a["name"]: a for a in report["activities"]}
    out = []
    for b in report["bottlenecks"]:
        act = waiting.get(b["activity"], {})
        wait, proc = act.get("mean_waiting_hours", 0.0), act.get("mean_processing_hours", 0.0)
        share = wait / (wait + proc) if wait + proc > 0 else 1.0
        score = score_insight(
            "bottleneck", b["activity"], b["total_delay_hours"], total_case_hours, share
        )
        out.append(
            ScoredInsight(
                kind="bottleneck",
                activity=b["activity"],
                metric="total_delay_hours",
                value=b["total_delay_hours"],
                detail={
                    "score": score.model_dump(),
                    "waiting_share": round(share, 4),
                    "waiting_hours": b["waiting_hours"],
                    "cases_affected": b["cases_affected"],
                    "segments": [s.model_dump() for s in segment_profile(frame, b["activity"])],
                },
            )
        )
    for r in report["rework"]:
        hours = r["extra_executions"] * (
            waiting.get(r["activity"], {}).get("mean_processing_hours", 0.0)
            + waiting.get(r["activity"], {}).get("mean_waiting_hours", 0.0)
        )
        score = score_insight("rework", r["activity"], hours, total_case_hours)
        out.append(
            ScoredInsight(
                kind="rework",
                activity=r["activity"],
                metric="extra_executions",
                value=r["extra_executions"],
                detail={"score": score.model_dump(), "cases_affected": r["cases_with_rework"]},
            )
        )
    return out
