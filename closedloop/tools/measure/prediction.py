"""The prediction a plan carries: a simulation's change of mean cycle time, overall and per treated case."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from closedloop.contracts import Prediction
from closedloop.tools.base import read_tool


@read_tool
def prediction_summary(result: Mapping[str, Any] | BaseModel) -> Prediction:
    """Predicted change of mean cycle time (hours and %) with its 95% interval.

    ``result`` is a simulation result (``SimulationResult`` or its JSON). A
    partial rollout changes only the treated cases, so the change and its
    interval are also given per treated case (divided by the treated share);
    that is the number a treatment-vs-control measurement can be compared
    with. A change for everyone (treated share 0 or unknown) is not rescaled.
    """
    data = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    d = data["delta"]["cycle_time_mean_hours"]
    base = data["as_is"]["cycle_time_mean_hours"]["mean"]

    def pct(value: float) -> float:
        return round(100 * value / base, 2) if base else 0.0

    treated = (data.get("treated_share") or {}).get("mean") or 0.0
    scale = 1 / treated if treated > 0 else 1.0
    return Prediction(
        baseline_hours=round(base, 3), delta_hours=round(d["mean"], 3),
        delta_per_treated_case_hours=round(d["mean"] * scale, 3), treated_share=round(treated, 4),
        ci_low_hours=round(d["ci_low"], 3), ci_high_hours=round(d["ci_high"], 3),
        delta_pct=pct(d["mean"]), ci_low_pct=pct(d["ci_low"]), ci_high_pct=pct(d["ci_high"]),
        ci_low_per_treated_case_hours=round(d["ci_low"] * scale, 3),
        ci_high_per_treated_case_hours=round(d["ci_high"] * scale, 3),
    )
