"""Which candidate, if any: predictions judged on their conservative bound, ranked per cost and risk.

A candidate clears the bar when its **conservative bound** (the p90 of the
predicted change of mean cycle time: nine chances in ten the change is at
least this good, with simulation noise, refitted parameters and declared
assumptions all counted) is an improvement of at least the minimum. The
95 % interval is reported too; with the few bootstrap refits a plan can
afford its Student-t tails are wide, so requiring it wholly below zero
would refuse even changes that halve cycle time (see the report of issue 9's
planner work). Cleared candidates rank by that bound per cost and risk;
when none clears, "no change" is the decision, with each candidate's reason.
A candidate whose effect the loop could not measure (``unmeasurable``, e.g. a
route split into treatment and control that share the relieved pool) is
predicted and listed but never clears.

When none clears, a **canary** may still be chosen: a partial change (a
treatment share of one segment, guarded and reversible) whose median
prediction clears the bar but whose interval is wide because of an
assumption only running it can measure (``explore``: a new bot's failure
rate). The canary is measured like any plan, and the next plan predicts with
what it measured instead of the assumption, so a change earns its rollout on
evidence; one already measured is never explored again.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from closedloop.contracts import Prediction
from closedloop.tools.twin import Prediction as TwinPrediction

# score = bound / (1 + COST_WEIGHT * cost in people + RISK_WEIGHT * risk): effect first,
# cost and risk break near-ties (one more person weighs a quarter of the effect).
COST_WEIGHT = 0.25
RISK_WEIGHT = 0.25
RISK_OF_TIER = {"low": 0.0, "medium": 0.5, "high": 1.0}


def contract_prediction(pred: TwinPrediction, source: str | None = None) -> Prediction:
    """The plan's prediction (hours over all cases, per treated case, %) from the twin's predict;
    ``source`` says where its assumptions' ranges come from (shown to the approver)."""
    point = pred.result
    base = point.as_is.cycle_time_mean_hours.mean
    hours, pct = pred.delta_cycle_hours, pred.delta_pct
    treated = point.treated_share.mean or 0.0
    scale = 1 / treated if treated > 0 else 1.0
    return Prediction(
        baseline_hours=round(base, 3), delta_hours=round(hours.mean, 3),
        delta_per_treated_case_hours=round(hours.mean * scale, 3), treated_share=round(treated, 4),
        ci_low_hours=round(hours.low95, 3), ci_high_hours=round(hours.high95, 3),
        delta_pct=round(pct.mean, 2), ci_low_pct=round(pct.low95, 2), ci_high_pct=round(pct.high95, 2),
        ci_low_per_treated_case_hours=round(hours.low95 * scale, 3),
        ci_high_per_treated_case_hours=round(hours.high95 * scale, 3),
        p10_pct=round(pct.p10, 2), p50_pct=round(pct.p50, 2), p90_pct=round(pct.p90, 2),
        p10_hours=round(hours.p10, 3), p90_hours=round(hours.p90, 3), bootstrap=pred.bootstrap,
        spread_pct={k: round(v, 3) for k, v in pred.spread.items()},
        assumptions=[{**a.model_dump(), "source": source or a.source} for a in pred.assumptions],
    )


def conservative_pct(pred: Prediction) -> float:
    """The bound a plan is held to: p90 of the change in % (the 95 % upper bound if no p90)."""
    return pred.p90_pct if pred.p90_pct is not None else pred.ci_high_pct


def shortfall(pred: Prediction, min_improvement_pct: float) -> str | None:
    """Why a prediction does not clear the bar (None when it does)."""
    bound = conservative_pct(pred)
    if -bound >= min_improvement_pct:
        return None
    return (f"predicted {pred.delta_pct:+.1f} % (p90 {bound:+.1f} %, 95 % interval "
            f"{pred.ci_low_pct:+.1f} to {pred.ci_high_pct:+.1f} %): not {min_improvement_pct} % "
            "shorter with 90 % confidence")


def score(pred: Prediction, cost: float, risk_tier: str) -> float:
    """Benefit per cost and risk: the conservative improvement (points of %) over the weights."""
    return round(-conservative_pct(pred) / (1 + COST_WEIGHT * cost
                                            + RISK_WEIGHT * RISK_OF_TIER.get(risk_tier, 1.0)), 3)


class Weighed(BaseModel):
    """One candidate as the decision saw it."""

    label: str
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    change_kind: str = ""
    opportunity_id: int | None = None
    simulation_id: int | None = None
    predicted: Prediction | None = None
    cost: float = 0.0
    risk_tier: str | None = None
    score: float | None = None
    verdict: str = Field(description="chosen, cleared, below_bar, failed or not_simulated")
    reason: str = ""
    evidence: list[str] = Field(default_factory=list)
    unmeasurable: str | None = Field(
        None, description="why the loop could not measure this change's effect (never chosen)")
    explore: str | None = Field(
        None, description="what running it as a canary would measure that the prediction assumes")


def canary_reason(pred: Prediction, explore: str | None, unmeasurable: str | None,
                  min_improvement_pct: float) -> str | None:
    """Why a candidate below the bar may run as a canary (None when it may not): its median
    clears the bar and the canary measures what its interval assumes."""
    if explore is None or unmeasurable is not None or -pred.p50_pct < min_improvement_pct:
        return None
    return (f"median {pred.p50_pct:+.1f} % clears the bar but p90 {conservative_pct(pred):+.1f} % "
            f"does not: a canary, since {explore}")


def decide(weighed: list[Weighed], min_improvement_pct: float) -> list[Weighed]:
    """Judge each simulated candidate against the bar and rank them, best first; the first is
    marked chosen when it clears, else the best canary (module docstring) when there is one,
    else none is: the decision is "no change"."""
    out = []
    for w in weighed:
        if w.predicted is None:
            out.append(w)
            continue
        why = shortfall(w.predicted, min_improvement_pct) or w.unmeasurable
        s = score(w.predicted, w.cost, w.risk_tier or "high")
        canary = canary_reason(w.predicted, w.explore, w.unmeasurable, min_improvement_pct) \
            if why else None
        verdict = "canary" if canary else "below_bar" if why else "cleared"
        out.append(w.model_copy(update={"score": s, "verdict": verdict,
                                        "reason": canary or why or f"clears the bar; score {s}"}))
    rank = {"cleared": 0, "canary": 1}
    out.sort(key=lambda w: (rank.get(w.verdict, 2), -(w.score or 0.0) if w.verdict == "cleared"
                            else (w.predicted.p50_pct if w.verdict == "canary" and w.predicted
                                  else 0.0)))
    if out and out[0].verdict in rank:
        out[0] = out[0].model_copy(update={"verdict": "chosen"})
    return out


__all__ = ["COST_WEIGHT", "RISK_WEIGHT", "Weighed", "canary_reason", "conservative_pct",
           "contract_prediction", "decide", "score", "shortfall"]
