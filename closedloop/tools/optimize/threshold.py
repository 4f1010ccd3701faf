"""An auto-decision threshold under a risk cap, with OR-Tools CP-SAT, checked by simulation.

``optimize_threshold`` picks a threshold on a case attribute under a risk cap
measured on history (e.g. BPI 2012: ``AMOUNT_REQ < t`` -> decide), checks it
out of sample and in the twin.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from ortools.sat.python import cp_model
from pydantic import BaseModel, Field

from closedloop.tools.base import read_tool
from closedloop.tools.errors import InfeasibleError, ScenarioError
from closedloop.tools.optimize.solver import solve
from closedloop.tools.optimize.verdict import check_reduction, interval_text, summarise
from closedloop.tools.rules import (
    BPI2012_DECISION,
    CASE_START,
    DECIDED_AT,
    LABEL,
    VARIANT,
    OutcomeTarget,
    Target,
    as_target,
    case_table,
    compile_condition,
    feature_columns,
    identifier,
    nice_cut,
    number_literal,
    predicted_label,
    records,
    split_by_time,
)
from closedloop.tools.twin import (
    AutoApprove,
    AutomateActivity,
    Estimate,
    ProcessTwin,
    Scenario,
    SimulationResult,
    as_twin,
    fit_twin,
    simulate,
)

__all__ = [
    "MAX_THRESHOLD_CANDIDATES", "RISK_UNITS", "ThresholdPlan", "ThresholdScore",
    "optimize_threshold",
]  # fmt: skip

MAX_THRESHOLD_CANDIDATES = 500
RISK_UNITS = 10_000  # the risk cap is honoured to 0.01 %


class ThresholdScore(BaseModel):
    """How a threshold does on the cases of one period (fit or score)."""

    period: Literal["fit", "score"]
    cases: int = Field(description="decided cases that started in the period")
    automated: int = Field(description="cases the threshold would decide automatically")
    automated_share: float
    harmful: int = Field(description="automated cases people decided with a risk label")
    risk: float | None = Field(description="harmful / automated")
    hours_to_decision: float | None = Field(
        description="mean hours from case start to the people's decision, automated cases"
    )


class ThresholdPlan(BaseModel):
    """An auto-decision threshold, its risk in and out of sample and its simulated effect."""

    status: Literal["optimal", "feasible", "infeasible"]
    message: str
    attribute: str
    direction: Literal["below", "above"]
    action: str
    predicts: str = Field(description="the decision label the action stands for")
    risk_labels: list[str] = Field(description="decisions that make an automated case harmful")
    risk_cap: float
    objective: Literal["cases", "hours_saved"]
    min_support: int
    candidates: int = Field(description="thresholds considered")
    threshold: float | None = None
    condition: str | None = Field(None, description="the rule, e.g. 'AMOUNT_REQ < 2500'")
    fit: ThresholdScore | None = None
    score: ThresholdScore | None = None
    holds_out_of_sample: bool | None = Field(
        None, description="risk on the later (score) period stays within the cap"
    )
    scenario: Scenario | None = None
    simulation: SimulationResult | None = None
    simulated_cycle_time_delta_pct: Estimate | None = None
    simulated_cycle_time_delta_hours: Estimate | None = None
    confirmed: bool | None = Field(
        None, description="holds out of sample and the simulated cycle time change has its "
        "whole 95 % interval below zero"
    )
    confirmation: str | None = Field(None, description="why the plan is confirmed or not, in words")
    notes: list[str] = Field(default_factory=list)


def _threshold_score(
    part: pd.DataFrame, fired: np.ndarray, harmful: np.ndarray, period: Literal["fit", "score"]
) -> ThresholdScore:
    hours = ((part[DECIDED_AT] - part[CASE_START]) / pd.Timedelta(hours=1)).to_numpy(dtype=float)
    n = int(fired.sum())
    hit = hours[fired]
    hit = hit[np.isfinite(hit)]
    return ThresholdScore(
        period=period, cases=len(part), automated=n,
        automated_share=n / len(part) if len(part) else 0.0,
        harmful=int((fired & harmful).sum()), risk=float((fired & harmful).sum()) / n if n else None,
        hours_to_decision=float(hit.mean()) if len(hit) else None,
    )  # fmt: skip


def _threshold_candidates(
    x: np.ndarray, harmful: np.ndarray, hours: np.ndarray, direction: str
) -> list[tuple[float, int, int, float]]:
    """(cut, cases, harmful, decision hours) for every distinct cut of the fit data."""
    ok = np.isfinite(x)
    order = np.argsort(x[ok], kind="mergesort")
    xs, hs, ts = x[ok][order], harmful[ok][order], np.nan_to_num(hours[ok][order])
    values = np.unique(xs)
    if len(values) > MAX_THRESHOLD_CANDIDATES:
        values = values[np.unique(np.linspace(0, len(values) - 1, MAX_THRESHOLD_CANDIDATES).round()
                                  .astype(int))]  # fmt: skip
    cum_h, cum_t = np.concatenate([[0], np.cumsum(hs)]), np.concatenate([[0.0], np.cumsum(ts)])
    out = []
    for k, v in enumerate(values):
        if direction == "below":
            upper = values[k + 1] if k + 1 < len(values) else v + max(1.0, abs(v))
            cut = nice_cut(float(v), float(upper))
            i = int(np.searchsorted(xs, cut, "left"))
            out.append((cut, i, int(cum_h[i]), float(cum_t[i])))
        else:
            lower = values[k - 1] if k > 0 else v - max(1.0, abs(v))
            cut = nice_cut(float(lower), float(v))
            i = int(np.searchsorted(xs, cut, "left"))
            out.append((cut, len(xs) - i, int(cum_h[-1] - cum_h[i]), float(cum_t[-1] - cum_t[i])))
    return out


@read_tool
def optimize_threshold(
    frame: pd.DataFrame,
    attribute: str = "AMOUNT_REQ",
    action: str = "auto_approve",
    target: Target = BPI2012_DECISION,
    direction: Literal["below", "above"] = "below",
    risk_cap: float = 0.05,
    risk_labels: list[str] | None = None,
    objective: Literal["cases", "hours_saved"] = "cases",
    min_support: int = 30,
    time_split: float = 0.8,
    actions: dict[str, str] | None = None,
    decide_at: str | None = None,
    then_activity: str | None = None,
    twin: ProcessTwin | None = None,
    validate: bool = True,
    seed: int = 0,
    cases: int = 500,
    replications: int = 5,
) -> ThresholdPlan:
    """Choose the threshold of an automatic decision (``attribute < t`` or ``>= t``) under a risk cap.

    E.g. on BPI 2012: auto-approve applications with ``AMOUNT_REQ`` below t.
    ``target`` says what people decided per case (see ``backtest_rule``);
    ``action`` is ``auto_<label>`` (``actions`` renames). Risk = share of the
    automated cases people decided with one of ``risk_labels`` (default: any
    other label), measured on the earlier ``time_split`` share of cases; it
    must stay <= ``risk_cap`` on >= ``min_support`` cases. CP-SAT picks, among
    every distinct cut of the data, the one that automates the most cases
    (``objective="cases"``) or saves the most hours from case start to the
    decision (``"hours_saved"``).

    The chosen rule is then checked: out of sample on the later cases
    (``score``, ``holds_out_of_sample``) and, with ``validate``, in the twin
    (``twin`` or one fitted on ``frame``): cases past the threshold skip
    ``decide_at`` (default: the activity that most often follows the first
    one) and jump to ``then_activity`` (default: the outcome activity of the
    decision). ``simulated_cycle_time_delta_pct`` gives the effect with its
    95 % interval; ``confirmed`` says both checks pass. When no threshold
    meets the cap the plan has ``status="infeasible"`` and the lowest risk
    that was reachable. Unknown attributes, labels or activities raise
    ScenarioError.
    """
    if not 0 <= risk_cap <= 1:
        raise ScenarioError(f"risk_cap must be in [0, 1], got {risk_cap}")
    if min_support < 1:
        raise ScenarioError(f"min_support must be >= 1, got {min_support}")
    target = as_target(target)
    table = case_table(frame, target)
    labels = sorted(table[LABEL].dropna().unique())
    predicts = predicted_label(action, labels, actions)
    name = attribute.removeprefix("case:")
    numeric = [c for c in feature_columns(table) if pd.api.types.is_numeric_dtype(table[c])
               and not pd.api.types.is_bool_dtype(table[c])]  # fmt: skip
    if name not in numeric:
        raise ScenarioError(f"unknown or non-numeric case attribute {attribute!r}; numeric case "
                            f"attributes: {', '.join(numeric) or '(none)'}")  # fmt: skip
    risky = [lb for lb in labels if lb != predicts] if risk_labels is None else list(risk_labels)
    unknown = sorted(set(risky) - set(labels))
    if unknown:
        raise ScenarioError(f"unknown risk label(s) {unknown}; labels: {', '.join(labels)}")
    fit, score = split_by_time(table, time_split)
    x = fit[name].to_numpy(dtype=float)
    harm = fit[LABEL].isin(risky).to_numpy()
    hours = ((fit[DECIDED_AT] - fit[CASE_START]) / pd.Timedelta(hours=1)).to_numpy(dtype=float)
    options = [c for c in _threshold_candidates(x, harm, hours, direction) if c[1] >= min_support]
    base = ThresholdPlan(
        status="infeasible", message="", attribute=name, direction=direction, action=action,
        predicts=predicts, risk_labels=risky, risk_cap=risk_cap, objective=objective,
        min_support=min_support, candidates=len(options),
    )  # fmt: skip
    op = "<" if direction == "below" else ">="
    if not options:
        return base.model_copy(update={"message": (
            f"infeasible: no threshold on {name} covers >= {min_support} fit-period cases")})
    model = cp_model.CpModel()
    pick = [model.new_bool_var(f"cut{k}") for k in range(len(options))]
    model.add_exactly_one(pick)
    cap = round(risk_cap * RISK_UNITS)
    model.add(sum(x_k * (h * RISK_UNITS - cap * n) for x_k, (_, n, h, _) in zip(pick, options)) <= 0)
    value = [n if objective == "cases" else round(t * 10) for _, n, _, t in options]
    model.maximize(sum(x_k * (v * (len(fit) + 1) - h)
                       for x_k, v, (_, _, h, _) in zip(pick, value, options)))  # fmt: skip
    solver, status = solve(model, seed)
    if status == cp_model.INFEASIBLE:
        best = min(options, key=lambda c: (c[2] / c[1], -c[1]))
        return base.model_copy(update={"message": (
            f"infeasible: no threshold keeps the risk <= {risk_cap:.1%} on >= {min_support} cases; "
            f"the lowest reachable is {best[2] / best[1]:.1%} ({name} {op} "
            f"{number_literal(best[0])}: {best[1]} fit-period cases, {best[2]} harmful)")})  # fmt: skip
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise InfeasibleError(f"CP-SAT found no threshold (status {solver.status_name(status)})")
    cut = next(c[0] for c, x_k in zip(options, pick) if solver.boolean_value(x_k))
    condition = f"{identifier(name)} {op} {number_literal(cut)}"
    rule = compile_condition(condition, names=[c for c in table.columns if not c.startswith("_")])
    fit_score = _threshold_score(fit, np.asarray(rule.mask(records(fit)), dtype=bool), harm, "fit")
    out = _threshold_score(score, np.asarray(rule.mask(records(score)), dtype=bool),
                           score[LABEL].isin(risky).to_numpy(), "score")  # fmt: skip
    holds = out.risk is not None and out.risk <= risk_cap
    label = "optimal" if status == cp_model.OPTIMAL else "feasible"
    plan = base.model_copy(update={
        "status": label, "threshold": cut, "condition": condition, "fit": fit_score,
        "score": out, "holds_out_of_sample": holds,
        "message": (f"{label}: {condition} -> {action}: fit period {fit_score.automated} cases "
                    f"({fit_score.automated_share:.1%}) at risk {fit_score.risk:.1%}; later cases "
                    f"{out.automated} ({out.automated_share:.1%}) at risk "
                    + ("n/a" if out.risk is None else f"{out.risk:.1%}")
                    + f" (cap {risk_cap:.1%})"),
    })  # fmt: skip
    if not validate:
        return plan
    return _simulate_threshold(plan, frame, table, fit, rule, target, decide_at, then_activity,
                               twin, seed, cases, replications)  # fmt: skip


def _simulate_threshold(
    plan: ThresholdPlan, frame: pd.DataFrame, table: pd.DataFrame, fit: pd.DataFrame, rule: Any,
    target: OutcomeTarget | str, decide_at: str | None, then_activity: str | None,
    twin: ProcessTwin | None, seed: int, cases: int, replications: int,
) -> ThresholdPlan:  # fmt: skip
    twin = as_twin(twin) if twin is not None else fit_twin(frame, seed=seed)
    notes = list(plan.notes)
    if plan.attribute not in twin.case_attributes:
        raise ScenarioError(f"the twin has no case attribute {plan.attribute!r}; it has "
                            f"{', '.join(twin.case_attributes) or '(none)'}")  # fmt: skip
    if decide_at is None:
        covered = fit[np.asarray(rule.mask(records(fit)), dtype=bool)]
        second = covered[VARIANT].str.split("\x1f").str[1].dropna()
        second = second[second.isin(list(twin.activities))]
        if second.empty:
            notes.append("no activity follows the first one in the automated cases: nothing "
                         "to skip, so the twin was not run")  # fmt: skip
            return plan.model_copy(update={"notes": notes})
        decide_at = str(second.value_counts().index[0])
    if then_activity is None and isinstance(target, OutcomeTarget):
        then_activity = next((a for a in target.outcomes.get(plan.predicts, [])
                              if a in twin.activities), None)  # fmt: skip
    if plan.direction == "below":
        scenario: Any = AutoApprove(activity=decide_at, attribute=plan.attribute,
                                    below=float(plan.threshold), then_activity=then_activity)  # fmt: skip
    else:  # the simulator's auto_approve takes "below" thresholds: skip the step instead
        scenario = AutomateActivity(activity=decide_at, segment=plan.condition,
                                    automated_duration_hours=0.0)  # fmt: skip
        notes.append(f"'above' thresholds are simulated as skipping {decide_at!r} (no jump)")
    sim = simulate(twin, scenario, cases=cases, replications=replications, seed=seed)
    score = plan.score
    risk = "n/a" if score is None or score.risk is None else f"{score.risk:.1%}"
    held = (bool(plan.holds_out_of_sample),
            f"risk on the later cases {risk} " + ("within" if plan.holds_out_of_sample else "over")
            + f" the cap {plan.risk_cap:.1%}")  # fmt: skip
    confirmed, why = summarise([held, check_reduction(sim.delta.cycle_time_mean_hours,
                                                      "cycle time per case")])  # fmt: skip
    return plan.model_copy(update={
        "scenario": scenario, "simulation": sim, "notes": notes + sim.notes[-3:],
        "simulated_cycle_time_delta_pct": sim.predicted_delta_pct,
        "simulated_cycle_time_delta_hours": sim.delta.cycle_time_mean_hours,
        "confirmed": confirmed, "confirmation": why,
        "message": plan.message + (
            f"; in the twin ({decide_at!r} skipped"
            + (f", then {then_activity!r}" if then_activity else "")
            + f") cycle time {interval_text(sim.predicted_delta_pct, ' %', 2)}; {why}"),
    })  # fmt: skip
