"""Watchdog: live change + fresh events -> KPI delta (treatment vs control) -> verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, Field

from closedloop.agents.context import LoopContext
from closedloop.agents.offline import answer, call_tool, tool_results
from closedloop.agents.runtime import AgentSpec, AuditTrail
from closedloop.agents.toolkit import make_tool
from closedloop.contracts import Guardrails, KpiMeasurement, WatchStep
from closedloop.store.db import transaction
from closedloop.store.models import KpiSnapshot, Plan, Verdict
from closedloop.tools.act import COHORT_TAG, EventPosition, fetch_events, measurement_records
from closedloop.tools.base import read_tool
from closedloop.tools.measure import measure_cohorts

Decision = Literal["keep", "rollback", "escalate", "wait"]
# Conservativeness order: a model may make a decision more cautious, never bolder.
CAUTION = {"keep": 0, "wait": 1, "escalate": 2, "rollback": 3}


class WatchdogOutput(BaseModel):
    decision: Decision
    rationale: str = Field(default="", max_length=4000)


def rule_decision(measure: KpiMeasurement) -> Decision:
    """The decision the evidence dictates (the prompt states the same rules)."""
    if measure.guardrail_breached:
        return "rollback"
    if not measure.enough_cases:
        return "wait"
    if measure.ci_high < 0:
        return "keep"
    if measure.ci_low > 0:
        return "rollback"
    return "escalate"


def measure_plan_kpi(ctx: LoopContext, plan: Plan, api_url: str, catalog_version: str,
                     after: dict[str, Any]) -> KpiMeasurement:
    """Read the system's events since the change through the connector (from the feed position
    stored at execution) and measure the plan's cohorts as the connector maps them."""
    system = ctx.system(plan.catalog_version or catalog_version, api_url)
    batch = fetch_events(system, EventPosition.model_validate(after))
    return measure_cohorts(measurement_records(batch.rows), Guardrails.model_validate(plan.guardrails),
                           [COHORT_TAG], source=f"{batch.source} after {after}")


def offline_step(messages: Sequence[BaseMessage]) -> AIMessage:
    """Offline policy: measure, then apply the decision rules of the prompt."""
    results = tool_results(messages)
    if "measure_kpi" not in results:
        return call_tool("measure_kpi", {}, messages)
    m = results["measure_kpi"][-1]
    if "error" in m:
        return answer({"decision": "escalate", "rationale": f"measurement failed: {m['error']}"})
    decision = rule_decision(KpiMeasurement.model_validate(m))
    if "delta" in m:
        why = (f"cycle time treatment {m['treatment']['mean']:.2f} h (n={m['treatment_n']}) vs control "
               f"{m['control']['mean']:.2f} h (n={m['control_n']}): delta {m['delta']:+.2f} h "
               f"[{m['ci_low']:+.2f}, {m['ci_high']:+.2f}] ({m['relative_pct']:+.1f}%)")
    else:
        why = f"only {m['treatment_n']} treatment and {m['control_n']} control cases completed"
    return answer({"decision": decision, "rationale": why})


WATCHDOG: AgentSpec[WatchdogOutput] = AgentSpec(name="watchdog", prompt="watchdog", output=WatchdogOutput,
                                                 offline_step=offline_step)


def watch(ctx: LoopContext, run_id: str, plan_id: int, api_url: str, catalog_version: str,
          after: dict[str, Any], checks_so_far: int, max_checks: int = 3) -> dict[str, Any]:
    """Run the Watchdog agent; store KPI snapshots and, unless waiting, the verdict."""
    audit = AuditTrail(run_id)
    with transaction(ctx.engine) as session:
        plan = session.get(Plan, plan_id)
    measurements: list[KpiMeasurement] = []

    @read_tool
    def measure_kpi() -> KpiMeasurement:
        """Treatment vs control cycle time (hours) from the system's events since the change, with guardrail checks."""
        measurements.append(measure_plan_kpi(ctx, plan, api_url, catalog_version, after))
        return measurements[-1]

    task = {"plan_id": plan_id, "hypothesis": plan.hypothesis, "guardrails": plan.guardrails}
    outcome = WATCHDOG.run(ctx.settings, task, [make_tool(measure_kpi)], audit)
    if not measurements:  # a model that never measured gets no say: measure now
        measure_kpi()
    measured = measurements[-1]
    dictated = rule_decision(measured)
    decision = outcome.output.decision
    if CAUTION[decision] < CAUTION[dictated]:
        audit.add("watchdog", "guard", {"model_decision": decision, "enforced": dictated})
        decision = dictated
    if decision == "wait" and checks_so_far + 1 >= max_checks:
        decision = "escalate"
    predicted = plan.predicted.get("delta_per_treated_case_hours", plan.predicted.get("delta_hours"))
    with transaction(ctx.engine) as session:
        verdict_id = None
        if measured.delta is not None:
            for cohort, c in (("treatment", measured.treatment), ("control", measured.control)):
                session.add(KpiSnapshot(plan_id=plan_id, kpi="cycle_time_hours", cohort=cohort, n=c.n,
                                        mean=c.mean, ci_low=c.ci_low, ci_high=c.ci_high,
                                        source=measured.source))
        if decision != "wait":
            verdict = Verdict(plan_id=plan_id, decision=decision, kpi="cycle_time_hours",
                              delta=_or_zero(measured.delta), ci_low=_or_zero(measured.ci_low),
                              ci_high=_or_zero(measured.ci_high), predicted_delta=predicted,
                              rationale=outcome.output.rationale)
            session.add(verdict)
            session.flush()
            verdict_id = verdict.id
            fresh = session.get(Plan, plan_id)
            fresh.status = {"keep": "kept", "rollback": "rolled_back", "escalate": "escalated"}[decision]
        audit.save(session)
    step = WatchStep(agent_model=outcome.model, fallback=outcome.used_fallback, decision=decision,
                     measured=measured, predicted_delta_hours=predicted, rationale=outcome.output.rationale,
                     verdict_id=verdict_id)
    return {"decision": decision, "verdict_id": verdict_id, "evidence_checks": checks_so_far + 1,
            "steps": [step.model_dump()]}


def _or_zero(value: float | None) -> float:
    return 0.0 if value is None else value
