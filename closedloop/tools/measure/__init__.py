"""The ``measure`` room: predictions of plans and measured effects of live changes.

Public API (import from here; the modules behind it may move):

- :func:`kpi_delta` (:class:`KpiDelta`) and :func:`cycle_times_by_cohort` (``kpi``);
- :func:`prediction_summary` -> :class:`closedloop.contracts.Prediction` (``prediction``);
- :func:`measure_cohorts` -> :class:`closedloop.contracts.KpiMeasurement` (``cohorts``);
- the Watchdog's measurement of a live change by its design, censored, with guardrails:
  :func:`measure_change` -> :class:`closedloop.contracts.KpiMeasurement` (``live``);
- the twin's side of it (``twin_effects``): :func:`twin_counterfactual`,
  :func:`twin_interference`, :func:`twin_carry_over`, :func:`rollout_shares_resources`,
  :func:`partial_automation`;
- designs for the total effect without interference bias, each ->
  :class:`closedloop.contracts.EffectEstimate` (``designs``): :func:`switchback`
  (:func:`corrected_for_carry_over`), :func:`before_after_with_counterfactual`, :func:`treatment_control_corrected`
  (with :class:`Block`; :class:`Interval` and :func:`interference_correction` from ``effect``), and
  :func:`choose_design` -> :class:`closedloop.contracts.DesignChoice` (``chooser``);
- an automation canary's bot failures (``canary``): :func:`automation_failures`,
  :class:`FailureCounts` (pooled over plans);
- censoring (``survival``): :func:`case_table`, :func:`kaplan_meier`, :func:`restricted_mean`;
- guardrail KPIs (``guardrails``): :func:`guardrail_kpis`, :func:`guardrail_check`,
  :func:`case_quality`, :func:`difference_interval`; early abort (``sequential``):
  :func:`sequential_rework_check`.
"""

from __future__ import annotations

from closedloop.tools.measure.canary import FailureCounts, automation_failures
from closedloop.tools.measure.chooser import STAFFING_KINDS, choose_design
from closedloop.tools.measure.cohorts import measure_cohorts
from closedloop.tools.measure.designs import (
    Block,
    before_after_with_counterfactual,
    corrected_for_carry_over,
    switchback,
    treatment_control_corrected,
)
from closedloop.tools.measure.effect import CarryOverPrediction, Interval, interference_correction
from closedloop.tools.measure.guardrails import (
    case_quality,
    difference_interval,
    guardrail_check,
    guardrail_kpis,
)
from closedloop.tools.measure.kpi import KpiDelta, cycle_times_by_cohort, kpi_delta
from closedloop.tools.measure.live import CarryOver, measure_change
from closedloop.tools.measure.prediction import prediction_summary
from closedloop.tools.measure.sequential import sequential_rework_check
from closedloop.tools.measure.survival import (
    RestrictedMean,
    SurvivalCurve,
    case_table,
    kaplan_meier,
    restricted_mean,
)
from closedloop.tools.measure.twin_effects import (
    partial_automation,
    rollout_shares_resources,
    twin_carry_over,
    twin_counterfactual,
    twin_interference,
)

__all__ = [
    "STAFFING_KINDS", "Block", "CarryOver", "CarryOverPrediction", "FailureCounts", "Interval", "KpiDelta", "RestrictedMean", "SurvivalCurve",
    "automation_failures", "before_after_with_counterfactual", "case_quality", "case_table", "choose_design", "corrected_for_carry_over",
    "cycle_times_by_cohort",
    "difference_interval", "guardrail_check", "guardrail_kpis", "interference_correction", "kaplan_meier",
    "kpi_delta", "measure_change", "measure_cohorts", "partial_automation", "prediction_summary", "restricted_mean",
    "rollout_shares_resources", "sequential_rework_check", "switchback", "treatment_control_corrected",
    "twin_carry_over", "twin_counterfactual", "twin_interference",
]
