"""Measure a live change with the design chosen for it: total effect, censored cases, guardrails.

The Watchdog's measurement. It reads the events the system logged since the
change (as the connector gives them, each case's cohort in ``case:experiment``),
and returns a :class:`closedloop.contracts.KpiMeasurement` that says which design
measured the effect and why (``design``/``why``/``effect``), with the guardrail
KPIs of each cohort or period, their check against the thresholds and the
sequential rework test. Cases still open at the last event are censored
(restricted mean), never dropped; "enough cases" still means enough *closed*
cases per cohort.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from scipy import stats

from closedloop.contracts import (
    CohortStats,
    DesignChoice,
    EffectEstimate,
    GuardrailCheck,
    GuardrailKpis,
    Guardrails,
    GuardrailThresholds,
    KpiMeasurement,
    RateStat,
    SequentialDecision,
)
from closedloop.tools.base import read_tool
from closedloop.tools.errors import ScenarioError, ToolError
from closedloop.tools.log import CASE, TIMESTAMP, frame_from_records
from closedloop.tools.measure.cohorts import EXPERIMENT_COLUMN
from closedloop.tools.measure.designs import (
    before_after_with_counterfactual,
    corrected_for_carry_over,
    switchback,
    treatment_control_corrected,
)
from closedloop.tools.measure.effect import CarryOverPrediction, Interval
from closedloop.tools.measure.guardrails import case_quality, guardrail_check, guardrail_kpis
from closedloop.tools.measure.sequential import sequential_rework_check
from closedloop.tools.measure.survival import case_table, restricted_mean, utc_timestamp

ModelNumber = Interval | Callable[[float | None, float, list[datetime]], Interval]
"""A model's number (no-change cycle time, interference correction), or a function of
(censoring horizon, window hours, the window's case arrivals) giving it on the measured scale."""
Schedule = Callable[[Any], list[tuple[Any, Any, bool]]]
CarryOver = Callable[[float | None, list[tuple[Any, Any, bool]], list[datetime]],
                     CarryOverPrediction]
"""A model's carry-over of a switchback over blocks (see ``corrected_for_carry_over``), as a
function of (censoring horizon, blocks, the window's case arrivals)."""


def _at_scale(model: ModelNumber, cases: pd.DataFrame, end: Any,
              arrived: pd.Series | None = None) -> Interval:
    """The model's number for the measured ``cases``: their censoring horizon (the longest time
    seen, when a case is still open), the window from their first arrival to ``end`` and the
    arrivals of every case in it (``arrived``, default the cases' own)."""
    if isinstance(model, Interval):
        return model
    tau = float(cases["hours"].max()) if not cases["closed"].all() else None
    window = (pd.Timestamp(end) - cases["arrival"].min()).total_seconds() / 3600.0
    arrivals = cases["arrival"] if arrived is None else arrived
    return model(tau, max(window, 1.0), [a.floor("us").to_pydatetime() for a in arrivals])


def _stats(cases: pd.DataFrame, tau: float | None) -> CohortStats:
    rm = restricted_mean(cases["hours"], cases["closed"], tau)
    half = float(stats.norm.ppf(0.975)) * rm.se
    return CohortStats(n=len(cases), mean=rm.mean, ci_low=rm.mean - half, ci_high=rm.mean + half)


def _quality(frame: pd.DataFrame, g: Guardrails, window_end: Any) -> dict[str, Any]:
    return {"end_activities": g.end_activities, "start_activities": g.start_activities,
            "window_end": window_end, "reopen_activities": g.reopen_activities or [],
            "failure_activities": g.failure_activities or []}


def _sequential(frame: pd.DataFrame, g: Guardrails, window_end: Any, baseline: RateStat,
                th: GuardrailThresholds) -> SequentialDecision | None:
    """The SPRT over the changed cases' rework in closing order (None when it cannot run)."""
    try:
        cases = case_quality(frame, **_quality(frame, g, window_end))
        closed = cases[cases["closed"]]
        return sequential_rework_check(closed["rework"].tolist(), baseline.rate,
                                       th.max_rework_increase_points, baseline_cases=baseline.n)
    except ToolError:  # no cases, or a baseline of 0 % / near 100 %: the SPRT is undefined
        return None


def _guardrails(changed: pd.DataFrame, changed_end: Any, baseline: pd.DataFrame,
                baseline_end: Any, g: Guardrails, names: tuple[str, str]
                ) -> tuple[dict[str, GuardrailKpis], GuardrailCheck | None, SequentialDecision | None]:
    th = g.thresholds or GuardrailThresholds()
    kpis: dict[str, GuardrailKpis] = {}
    for name, frame, end in ((names[0], changed, changed_end), (names[1], baseline, baseline_end)):
        try:
            q = _quality(frame, g, end)
            kpis[name] = guardrail_kpis(frame, sla_hours=g.sla_hours, **q)
        except ToolError:
            continue
    if len(kpis) < 2:
        return kpis, None, None
    check = guardrail_check(kpis[names[1]], kpis[names[0]], th)
    seq = _sequential(changed, g, changed_end, kpis[names[1]].rework, th)
    return kpis, check, seq


def _finish(base: dict[str, Any], design: DesignChoice, g: Guardrails, effect: EffectEstimate | None,
            cohorts: tuple[CohortStats | None, CohortStats | None], enough: bool,
            kpis: dict[str, GuardrailKpis], check: GuardrailCheck | None,
            seq: SequentialDecision | None) -> KpiMeasurement:
    aborted = seq is not None and seq.decision == "abort"
    slower = bool(enough and effect is not None and effect.ci_low > 0 and effect.relative_pct is not None
                  and effect.relative_pct / 100 > g.max_relative_worsening)
    rule = (f"abort if treatment is significantly > {g.max_relative_worsening:.0%} slower; "
            + (check.rule if check else "guardrail KPIs not measured (too few cases)"))
    out: dict[str, Any] = {
        **base, "design": design.design, "enough_cases": enough,
        # A before/after's estimator says how it compared; the design says why it had to.
        "why": design.why if effect is None else f"{design.why}; {effect.why}"
        if design.design == "before_after_with_counterfactual" else effect.why,
        "guardrail_breached": bool(slower or aborted or (check is not None and check.breached)),
        "guardrail": rule, "guardrail_kpis": kpis or None, "guardrail_check": check,
        "sequential": seq,
    }
    if effect is not None:
        out |= {"effect": effect, "treatment": cohorts[0], "control": cohorts[1],
                "delta": round(effect.effect, 3), "ci_low": round(effect.ci_low, 3),
                "ci_high": round(effect.ci_high, 3),
                "relative_pct": round(effect.relative_pct or 0.0, 2)}
    return KpiMeasurement(**out)


@read_tool
def measure_change(records: Sequence[dict[str, Any]], guardrails: Guardrails, design: DesignChoice,
                   rule_ids: Sequence[str], source: str, *,
                   counterfactual: ModelNumber | None = None,
                   correction: ModelNumber | None = None,
                   baseline_frame: pd.DataFrame | None = None, schedule: Schedule | None = None,
                   washout_hours: float = 0.0,
                   pairs: Sequence[tuple[int, int]] = (),
                   carry_over: CarryOver | None = None) -> KpiMeasurement:
    """The live change's effect on cycle time (hours) by ``design``, with its guardrails.

    ``records`` are the events since the change; the window ends at the last of
    them (open cases are censored there). Treatment/control designs compare the
    cohorts ``<rule id>:treatment`` / ``:control`` of ``rule_ids`` (with
    ``correction`` for ``treatment_control_corrected``) and check the
    treatment's guardrail KPIs against the control's. The before/after design
    compares the cases after the change with ``counterfactual`` and checks the
    guardrails against ``baseline_frame`` (the events before the change). The switchback
    design compares cases arriving in on-blocks with those in off-blocks of ``schedule``
    (a function of the window's end giving the blocks as (start, end, on)), leaving out
    arrivals in a block's first ``washout_hours``, paired as ``pairs`` (block indices) where
    given, plus the ``carry_over`` a model predicts for those blocks where given (a function
    of the censoring horizon, the blocks and the window's arrivals), and checks the guardrails
    the same way.
    """
    base = {"source": source, "events": len(records),
            "min_cases_per_cohort": guardrails.min_cases_per_cohort}
    empty = KpiMeasurement(**base, enough_cases=False, treatment_n=0, control_n=0,
                           design=design.design, why=design.why)
    if not records:
        return empty
    frame = frame_from_records(list(records))
    if design.design not in ("before_after_with_counterfactual", "switchback") and \
            EXPERIMENT_COLUMN not in frame:
        return empty.model_copy(update={"events": len(records)})
    end, need = frame[TIMESTAMP].max(), guardrails.min_cases_per_cohort
    cases = case_table(frame, guardrails.end_activities, end, guardrails.start_activities,
                       cohort_column=EXPERIMENT_COLUMN if EXPERIMENT_COLUMN in frame.columns else None)
    if design.design == "before_after_with_counterfactual":
        return _before_after(frame, cases, end, base, design, guardrails, counterfactual,
                             baseline_frame)
    if design.design == "switchback":
        if schedule is None:
            raise ToolError("switchback needs the block schedule the executor ran")
        return _switchback(frame, cases, end, base, design, guardrails, schedule(end), washout_hours,
                           pairs, carry_over)
    labels = {f"{rid}:{c}": c for rid in rule_ids for c in ("treatment", "control")}
    cohort = cases["cohort"].map(labels)
    treated, control = cases[cohort == "treatment"], cases[cohort == "control"]
    closed_t, closed_c = int(treated["closed"].sum()), int(control["closed"].sum())
    enough = min(closed_t, closed_c) >= need
    counts = {"treatment_n": len(treated), "control_n": len(control)}
    in_cohort = {c: frame[frame[EXPERIMENT_COLUMN].map(labels) == c] for c in ("treatment", "control")}
    kpis, check, seq = _guardrails(in_cohort["treatment"], end, in_cohort["control"], end,
                                   guardrails, ("treatment", "control"))
    effect, cohorts = None, (None, None)
    if min(closed_t, closed_c) >= 2:
        use = (_at_scale(correction, pd.concat([treated, control]), end, cases["arrival"])
               if design.design == "treatment_control_corrected" and correction is not None
               else None)
        effect = treatment_control_corrected(
            frame, labels, end_activities=guardrails.end_activities, window_end=end,
            correction=use, shares_resources=design.design != "treatment_control",
            start_activities=guardrails.start_activities)
        tau = effect.tau_hours
        cohorts = (_stats(treated, tau), _stats(control, tau))
    return _finish({**base, **counts}, design, guardrails, effect, cohorts, enough, kpis, check, seq)


def _before_after(frame: pd.DataFrame, cases: pd.DataFrame, end: Any, base: dict[str, Any],
                  design: DesignChoice, g: Guardrails, counterfactual: ModelNumber | None,
                  baseline_frame: pd.DataFrame | None) -> KpiMeasurement:
    closed = int(cases["closed"].sum())
    counts = {"treatment_n": len(cases), "control_n": 0}
    kpis: dict[str, GuardrailKpis] = {}
    check = seq = None
    if baseline_frame is not None and not baseline_frame.empty:
        kpis, check, seq = _guardrails(frame, end, baseline_frame, baseline_frame[TIMESTAMP].max(),
                                       g, ("after", "before"))
    effect, cohorts = None, (None, None)
    if closed >= 2 and counterfactual is not None:
        tau = float(cases["hours"].max()) if not cases["closed"].all() else None
        model = _at_scale(counterfactual, cases, end)
        effect = before_after_with_counterfactual(
            frame, cases["arrival"].min(), model, end_activities=g.end_activities, window_end=end,
            start_activities=g.start_activities, tau_hours=tau)
        cohorts = (_stats(cases, tau),
                   CohortStats(n=0, mean=model.mean, ci_low=model.ci_low, ci_high=model.ci_high))
    return _finish({**base, **counts}, design, g, effect, cohorts, closed >= g.min_cases_per_cohort,
                   kpis, check, seq)


def _switchback(frame: pd.DataFrame, cases: pd.DataFrame, end: Any, base: dict[str, Any],
                design: DesignChoice, g: Guardrails, blocks: list[tuple[Any, Any, bool]],
                washout_hours: float, pairs: Sequence[tuple[int, int]],
                carry_over: CarryOver | None = None) -> KpiMeasurement:
    arm = pd.Series(pd.NA, index=cases.index, dtype="object")  # cases are indexed by case id
    for start, stop, on in blocks:
        lo = utc_timestamp(start) + pd.Timedelta(hours=washout_hours)
        arm[(cases["arrival"] >= lo) & (cases["arrival"] < utc_timestamp(stop))] = on
    on_cases, off_cases = cases[arm.eq(True)], cases[arm.eq(False)]
    counts = {"treatment_n": len(on_cases), "control_n": len(off_cases)}
    in_arm = {name: _followed_up(frame, c, end) for name, c in (("on", on_cases),
                                                                ("off", off_cases))}
    kpis, check, seq = _guardrails(in_arm["on"], end, in_arm["off"], end, g, ("on", "off"))
    effect, cohorts = None, (None, None)
    try:
        effect = switchback(frame, blocks, end_activities=g.end_activities, window_end=end,
                            washout_hours=washout_hours, start_activities=g.start_activities,
                            pairs=pairs)
    except ToolError:  # fewer than two on- and two off-blocks with cases yet
        effect = None
    if effect is not None and carry_over is not None:
        try:
            effect = corrected_for_carry_over(
                effect, carry_over(effect.tau_hours, blocks, cases["arrival"].tolist()))
        except ScenarioError as exc:  # the model cannot toggle this change: say so, keep the rest
            effect = effect.model_copy(update={
                "why": f"{effect.why}; not corrected for carry-over ({exc})"})
    if effect is not None:
        cohorts = (_stats(on_cases, effect.tau_hours), _stats(off_cases, effect.tau_hours))
    enough = min(int(on_cases["closed"].sum()), int(off_cases["closed"].sum())) >= g.min_cases_per_cohort
    return _finish({**base, **counts}, design, g, effect, cohorts, enough, kpis, check, seq)


FOLLOW_UP_QUANTILE = 0.9


def _followed_up(frame: pd.DataFrame, cases: pd.DataFrame, end: Any) -> pd.DataFrame:
    """The events of ``cases`` that arrived at least a follow-up time before ``end``, each cut
    at that time after its arrival (the follow-up: the 90th percentile of closed cases' cycle
    time). A faster arm reaches late steps (and their rework) sooner: without an equal
    follow-up, rework found by the window's end would differ between arms by speed alone."""
    closed = cases.loc[cases["closed"], "hours"]
    if closed.empty:
        return frame[frame[CASE].isin(cases.index)]
    follow = pd.Timedelta(hours=float(closed.quantile(FOLLOW_UP_QUANTILE)))
    kept = cases[cases["arrival"] <= utc_timestamp(end) - follow]
    events = frame[frame[CASE].isin(kept.index)]
    cut = events[CASE].map(kept["arrival"]) + follow
    return events[events[TIMESTAMP] <= cut]
