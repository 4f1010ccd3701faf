"""Watchdog: live change + fresh events -> KPI delta (treatment vs control) -> verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, Field
from sqlmodel import select

from closedloop.agents.chat_model import make_chat_model, offline_model
from closedloop.agents.context import LoopContext
from closedloop.agents.offline import answer, call_tool, tool_results
from closedloop.agents.runtime import AuditTrail, run_agent
from closedloop.agents.toolkit import make_tool
from closedloop.store.db import transaction
from closedloop.store.models import Execution, KpiSnapshot, Plan, Verdict
from closedloop.tools.act.collect import fetch_events
from closedloop.tools.base import ToolKind
from closedloop.tools.log.ingest import frame_from_records
from closedloop.tools.measure.kpi import cycle_times_by_cohort, kpi_delta

Decision = Literal["keep", "rollback", "escalate", "wait"]
# Conservativeness order: a model may make a decision more cautious, never bolder.
CAUTION = {"keep": 0, "wait": 1, "escalate": 2, "rollback": 3}


class WatchdogOutput(BaseModel):
    decision: Decision
    rationale: str = Field(default="", max_length=4000)


def rule_decision(measure: dict[str, Any]) -> Decision:
    """The decision the evidence dictates (the prompt states the same rules)."""
    if measure.get("guardrail_breached"):
        return "rollback"
    if not measure.get("enough_cases"):
        return "wait"
    if measure["ci_high"] < 0:
        return "keep"
    if measure["ci_low"] > 0:
        return "rollback"
    return "escalate"


def measure_plan_kpi(ctx: LoopContext, plan: Plan, executions: list[Execution], api_url: str,
                     after_seq: int) -> dict[str, Any]:
    """Cycle time of treatment vs control cases from the system's own events since the change."""
    records = fetch_events(ctx.api_client(api_url), after_seq=after_seq)
    guard = plan.guardrails
    base = {"kpi": "cycle_time_hours", "source": f"{api_url}/events?after_seq={after_seq}",
            "events": len(records), "min_cases_per_cohort": guard["min_cases_per_cohort"]}
    if not records:
        return {**base, "enough_cases": False, "treatment_n": 0, "control_n": 0}
    frame = frame_from_records(records)
    end_activities = set(guard["end_activities"])
    last = frame.sort_values("time:timestamp").groupby("case:concept:name")["concept:name"].last()
    finished = set(last[last.isin(end_activities)].index)
    # Only cases that started after the change count: older ones were never exposed to it.
    first = frame.groupby("case:concept:name")["concept:name"].first()
    started_here = set(first[first.isin(set(guard["start_activities"]))].index)
    frame = frame[frame["case:concept:name"].isin(finished & started_here)]
    rule_ids = [e.response.get("rule_id") for e in executions if e.action == "create_rule"]
    labels = {f"{rid}:treatment": "treatment" for rid in rule_ids} | {f"{rid}:control": "control" for rid in rule_ids}
    column = "case:experiment"
    if frame.empty or column not in frame.columns:
        return {**base, "enough_cases": False, "treatment_n": 0, "control_n": 0}
    cohorts = cycle_times_by_cohort(frame, column, labels)
    nt, nc = len(cohorts.get("treatment", [])), len(cohorts.get("control", []))
    enough = min(nt, nc) >= guard["min_cases_per_cohort"]
    if min(nt, nc) < 2:
        return {**base, "enough_cases": False, "treatment_n": nt, "control_n": nc}
    delta = kpi_delta(cohorts["treatment"], cohorts["control"])
    worsening = delta.relative_pct / 100.0
    breached = bool(enough and delta.ci_low > 0 and worsening > guard["max_relative_worsening"])
    return {**base, "enough_cases": enough, "treatment_n": nt, "control_n": nc,
            "treatment": delta.treatment.model_dump(), "control": delta.control.model_dump(),
            "delta": round(delta.delta, 3), "ci_low": round(delta.ci_low, 3), "ci_high": round(delta.ci_high, 3),
            "relative_pct": round(delta.relative_pct, 2), "guardrail_breached": breached,
            "guardrail": f"abort if treatment is significantly > {guard['max_relative_worsening']:.0%} slower"}


def offline_step(messages: Sequence[BaseMessage]) -> AIMessage:
    """Offline policy: measure, then apply the decision rules of the prompt."""
    results = tool_results(messages)
    if "measure_kpi" not in results:
        return call_tool("measure_kpi", {}, messages)
    m = results["measure_kpi"][-1]
    if "error" in m:
        return answer({"decision": "escalate", "rationale": f"measurement failed: {m['error']}"})
    decision = rule_decision(m)
    if "delta" in m:
        why = (f"cycle time treatment {m['treatment']['mean']:.2f} h (n={m['treatment_n']}) vs control "
               f"{m['control']['mean']:.2f} h (n={m['control_n']}): delta {m['delta']:+.2f} h "
               f"[{m['ci_low']:+.2f}, {m['ci_high']:+.2f}] ({m['relative_pct']:+.1f}%)")
    else:
        why = f"only {m['treatment_n']} treatment and {m['control_n']} control cases completed"
    return answer({"decision": decision, "rationale": why})


def watch(ctx: LoopContext, run_id: str, plan_id: int, api_url: str, after_seq: int,
          checks_so_far: int, max_checks: int = 3) -> dict[str, Any]:
    """Run the Watchdog agent; store KPI snapshots and, unless waiting, the verdict."""
    audit = AuditTrail(run_id)
    with transaction(ctx.engine) as session:
        plan = session.get(Plan, plan_id)
        executions = session.exec(select(Execution).where(Execution.plan_id == plan_id)).all()
    measured: dict[str, Any] = {}

    def measure_kpi() -> dict[str, Any]:
        """Treatment vs control cycle time (hours) from the system's events since the change, with guardrail checks."""
        measured.update(measure_plan_kpi(ctx, plan, executions, api_url, after_seq))
        return measured

    outcome = run_agent("watchdog", {"plan_id": plan_id, "hypothesis": plan.hypothesis, "guardrails": plan.guardrails},
                        WatchdogOutput, [make_tool(measure_kpi, ToolKind.READ)],
                        make_chat_model(ctx.settings, "watchdog"), lambda: offline_model("watchdog"), audit,
                        max_retries=ctx.settings.model_max_retries)
    if not measured:  # a model that never measured gets no say: measure now
        measure_kpi()
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
        if "delta" in measured:
            for cohort in ("treatment", "control"):
                c = measured[cohort]
                session.add(KpiSnapshot(plan_id=plan_id, kpi="cycle_time_hours", cohort=cohort, n=c["n"],
                                        mean=c["mean"], ci_low=c["ci_low"], ci_high=c["ci_high"],
                                        source=measured["source"]))
        if decision != "wait":
            verdict = Verdict(plan_id=plan_id, decision=decision, kpi="cycle_time_hours",
                              delta=measured.get("delta", 0.0), ci_low=measured.get("ci_low", 0.0),
                              ci_high=measured.get("ci_high", 0.0), predicted_delta=predicted,
                              rationale=outcome.output.rationale)
            session.add(verdict)
            session.flush()
            verdict_id = verdict.id
            fresh = session.get(Plan, plan_id)
            fresh.status = {"keep": "kept", "rollback": "rolled_back", "escalate": "escalated"}[decision]
        audit.save(session)
    step = {"step": "watch", "agent_model": outcome.model, "fallback": outcome.used_fallback,
            "decision": decision, "measured": measured, "predicted_delta_hours": predicted,
            "rationale": outcome.output.rationale, "verdict_id": verdict_id}
    return {"decision": decision, "verdict_id": verdict_id, "evidence_checks": checks_so_far + 1, "steps": [step]}
