"""Measure a live change: cycle time of treatment vs control cases from the system's own events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from closedloop.contracts import Guardrails, KpiMeasurement
from closedloop.tools.base import read_tool
from closedloop.tools.log import ACTIVITY, CASE, TIMESTAMP, frame_from_records
from closedloop.tools.measure.kpi import cycle_times_by_cohort, kpi_delta

EXPERIMENT_COLUMN = "case:experiment"


@read_tool
def measure_cohorts(records: Sequence[dict[str, Any]], guardrails: Guardrails, rule_ids: Sequence[str],
                    source: str) -> KpiMeasurement:
    """Cycle time (hours) of the treatment vs the control cohort of the rules ``rule_ids``.

    ``records`` are the events the system logged since the change (as the
    event API gives them), ``source`` says where they came from. Only cases
    that started after the change (with a start activity) and finished (with
    an end activity of ``guardrails``) count. The guardrail is breached when
    treatment is significantly slower than control by more than
    ``max_relative_worsening``, with enough cases in both cohorts.
    """
    base = {"source": source, "events": len(records), "min_cases_per_cohort": guardrails.min_cases_per_cohort}
    if not records:
        return KpiMeasurement(**base, enough_cases=False, treatment_n=0, control_n=0)
    frame = frame_from_records(list(records))
    last = frame.sort_values(TIMESTAMP).groupby(CASE)[ACTIVITY].last()
    finished = set(last[last.isin(set(guardrails.end_activities))].index)
    # Only cases that started after the change count: older ones were never exposed to it.
    first = frame.groupby(CASE)[ACTIVITY].first()
    started_here = set(first[first.isin(set(guardrails.start_activities))].index)
    frame = frame[frame[CASE].isin(finished & started_here)]
    labels = ({f"{rid}:treatment": "treatment" for rid in rule_ids}
              | {f"{rid}:control": "control" for rid in rule_ids})
    if frame.empty or EXPERIMENT_COLUMN not in frame.columns:
        return KpiMeasurement(**base, enough_cases=False, treatment_n=0, control_n=0)
    cohorts = cycle_times_by_cohort(frame, EXPERIMENT_COLUMN, labels)
    nt, nc = len(cohorts.get("treatment", [])), len(cohorts.get("control", []))
    enough = min(nt, nc) >= guardrails.min_cases_per_cohort
    if min(nt, nc) < 2:
        return KpiMeasurement(**base, enough_cases=False, treatment_n=nt, control_n=nc)
    delta = kpi_delta(cohorts["treatment"], cohorts["control"])
    worsening = delta.relative_pct / 100.0
    breached = bool(enough and delta.ci_low > 0 and worsening > guardrails.max_relative_worsening)
    return KpiMeasurement(
        **base, enough_cases=enough, treatment_n=nt, control_n=nc, treatment=delta.treatment,
        control=delta.control, delta=round(delta.delta, 3), ci_low=round(delta.ci_low, 3),
        ci_high=round(delta.ci_high, 3), relative_pct=round(delta.relative_pct, 2), guardrail_breached=breached,
        guardrail=f"abort if treatment is significantly > {guardrails.max_relative_worsening:.0%} slower",
    )
