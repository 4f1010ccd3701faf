"""The ``measure`` room: predictions of plans and measured effects of live changes.

Public API (import from here; the modules behind it may move):

- :func:`kpi_delta` (:class:`KpiDelta`) and :func:`cycle_times_by_cohort` (``kpi``);
- :func:`prediction_summary` -> :class:`closedloop.contracts.Prediction` (``prediction``);
- :func:`measure_cohorts` -> :class:`closedloop.contracts.KpiMeasurement` (``cohorts``).
"""

from __future__ import annotations

from closedloop.tools.measure.cohorts import measure_cohorts
from closedloop.tools.measure.kpi import KpiDelta, cycle_times_by_cohort, kpi_delta
from closedloop.tools.measure.prediction import prediction_summary

__all__ = ["KpiDelta", "cycle_times_by_cohort", "kpi_delta", "measure_cohorts", "prediction_summary"]
