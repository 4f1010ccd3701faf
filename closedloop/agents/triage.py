"""Triage: mining insights -> deduplicated, scored opportunities (or a request for data).

An insight's feasibility is what the run's connected system can do about it:
tools check which of its catalog's change kinds apply to the activity
(:func:`closedloop.tools.act.actionability.actionability`) and rescore it
(:func:`closedloop.tools.mining.opportunities.rescore_insight`); the agent
only chooses among the scored insights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, Field
from sqlmodel import select, update

from closedloop.agents.context import LoopContext
from closedloop.agents.model_text import guard_outcome
from closedloop.agents.offline import answer, call_tool, first_human_json, tool_results
from closedloop.agents.runtime import AgentSpec, AuditTrail
from closedloop.agents.toolkit import make_tool
from closedloop.contracts import OpportunityRef, TriageStep
from closedloop.store.db import transaction
from closedloop.store.models import Dataset, Insight, LoopRun, MiningRun, Opportunity
from closedloop.tools.act import Actionability, actionability, fetch_config, state_members
from closedloop.tools.base import read_tool
from closedloop.tools.mining.opportunities import InsightScore, fingerprint, rescore_insight

MIN_PRIORITY = 0.05
MAX_SELECTED = 3


class Selection(BaseModel):
    insight_id: int
    rationale: str = Field(max_length=2000)


class TriageOutput(BaseModel):
    """What the Triage agent decides."""

    selected: list[Selection] = Field(default_factory=list, max_length=MAX_SELECTED)
    missing_data: list[str] = Field(default_factory=list)
    summary: str = Field(default="", max_length=2000)


def data_contract_problems(report: dict[str, Any]) -> list[str]:
    """What the mined data lacks for the loop to act on it (empty list: contract holds)."""
    problems = []
    if report.get("cases", 0) < 20:
        problems.append(f"at least 20 cases are needed, the log has {report.get('cases', 0)}")
    if len(report.get("activities", [])) < 2:
        problems.append("at least 2 distinct activities are needed")
    if not any(a.get("mean_processing_hours", 0) > 0 for a in report.get("activities", [])):
        problems.append("start timestamps (lifecycle start events) are needed to separate waiting from processing")
    return problems


def _insight_view(insight: Insight, score: InsightScore, act: Actionability | None) -> dict[str, Any]:
    view = {"insight_id": insight.id, "kind": insight.kind, "activity": insight.activity,
            "metric": insight.metric, "value": round(insight.value, 3), **score.model_dump(),
            "waiting_hours": insight.detail.get("waiting_hours"),
            "cases_affected": insight.detail.get("cases_affected")}
    if act is not None:
        view |= {"actionable": act.actionable, "change_kinds": act.kinds, "catalog": act.rationale()}
    return view


def system_actionability(ctx: LoopContext, run_id: str, mining: MiningRun,
                         insights: Sequence[Insight]) -> dict[int, Actionability]:
    """What the run's connected system can do about each insight, by insight id (empty when the
    run has no system: its scores then stay those of the log alone)."""
    with transaction(ctx.engine) as session:
        run = session.get(LoopRun, run_id)
        dataset = session.get(Dataset, mining.dataset_id)
    if run is None or not run.api_url or not run.catalog_version or dataset is None:
        return {}
    system = ctx.system(run.catalog_version, run.api_url)
    config = fetch_config(system)
    frame = ctx.frame(dataset.sha256, dataset.artifact)
    twin = ctx.twin(dataset.sha256, dataset.artifact)
    members = state_members(config["pools"], config["values"])
    return {i.id: actionability(system.catalog, i.activity, i.kind, i.detail.get("segments", []),
                                twin, frame, config["pools"], members,
                                ctx.settings.canary_share)
            for i in insights}


def _score(insight: Insight, act: Actionability | None) -> InsightScore:
    score = InsightScore.model_validate(insight.detail["score"])
    if act is None:
        return score
    return rescore_insight(score, insight.kind, insight.activity,
                           insight.detail.get("waiting_share", 1.0), act.lever)


def offline_step(messages: Sequence[BaseMessage]) -> AIMessage:
    """Offline policy: list the insights, then select the top ones by priority."""
    task = first_human_json(messages)
    if task.get("data_contract_problems"):
        return answer({"selected": [], "missing_data": task["data_contract_problems"],
                       "summary": "The data contract failed; a human must supply the missing data."})
    results = tool_results(messages)
    if "list_insights" not in results:
        return call_tool("list_insights", {}, messages)
    insights = [i for i in results["list_insights"][-1] if i.get("priority", 0) >= MIN_PRIORITY]
    insights.sort(key=lambda i: (-i["priority"], i["insight_id"]))
    chosen = insights[:MAX_SELECTED]
    listed = results["list_insights"][-1]
    blocked = [i for i in listed if i.get("actionable") is False]
    return answer({
        "selected": [{"insight_id": i["insight_id"], "rationale": _rationale(i)} for i in chosen],
        "missing_data": [],
        "summary": f"{len(chosen)} of {len(listed)} insights clear priority {MIN_PRIORITY}"
                   + (f"; the connected system's catalog cannot act on {len(blocked)} "
                      f"({', '.join(sorted({i['activity'] for i in blocked}))})." if blocked else "."),
    })


def _rationale(i: dict[str, Any]) -> str:
    text = (f"{i['kind']} at {i['activity']!r}: {i['metric']} {i['value']}, priority {i['priority']} "
            f"(impact {i['impact']}, feasibility {i['feasibility']}, risk {i['risk']})")
    if i.get("feasibility_reason"):
        text += f"; feasibility: {i['feasibility_reason']}"
    if i.get("catalog"):
        text += f"; {i['catalog']}"
    return text[:2000]


TRIAGE: AgentSpec[TriageOutput] = AgentSpec(name="triage", prompt="triage", output=TriageOutput,
                                             offline_step=offline_step)


def triage(ctx: LoopContext, run_id: str, mining_run_id: int, scope: str) -> dict[str, Any]:
    """Run the Triage agent and upsert its opportunities (one transaction)."""
    audit = AuditTrail(run_id)
    with transaction(ctx.engine) as session:
        mining = session.get(MiningRun, mining_run_id)
        insights = session.exec(select(Insight).where(Insight.mining_run_id == mining_run_id)).all()
    problems = data_contract_problems(mining.report)
    # A log that fails the data contract fits no twin to check the catalog against.
    acts = {} if problems else system_actionability(ctx, run_id, mining, insights)
    if acts:
        audit.add("triage", "tool_call", {"tool": "actionability", "levers": {
            i.activity if i.kind == "bottleneck" else f"{i.kind}:{i.activity}": acts[i.id].lever
            for i in insights}})
    scores = {i.id: _score(i, acts.get(i.id)) for i in insights}
    views = [_insight_view(i, scores[i.id], acts.get(i.id)) for i in insights]

    @read_tool
    def list_insights() -> list[dict[str, Any]]:
        """Every insight of this mining run with impact, feasibility, risk and priority (computed
        by tools; feasibility from what the connected system's catalog can do about it)."""
        return views

    task = {"scope": scope, "cases": mining.report.get("cases"), "events": mining.report.get("events"),
            "data_contract_problems": problems}
    outcome = TRIAGE.run(ctx.settings, task, [make_tool(list_insights)], audit)
    outcome.output = guard_outcome("triage", outcome, task, audit)
    by_id = {i.id: i for i in insights}
    # Guard: only real insights of this run, ordered by the tool's priority, never the model's.
    # ... and none the connected system's catalog cannot act on.
    chosen = [by_id[s.insight_id] for s in outcome.output.selected if s.insight_id in by_id
              and (s.insight_id not in acts or acts[s.insight_id].actionable)]
    rationale = {s.insight_id: s.rationale for s in outcome.output.selected}
    chosen.sort(key=lambda i: -scores[i.id].priority)
    opportunity_ids: list[int] = []
    with transaction(ctx.engine) as session:
        for insight in insights:
            if insight.id in acts:  # the score the opportunities carry, and why
                detail = {**insight.detail, "score": scores[insight.id].model_dump(),
                          "actionability": acts[insight.id].model_dump()}
                session.exec(update(Insight).where(Insight.id == insight.id).values(detail=detail))
        for insight in chosen:
            score = scores[insight.id].model_dump()
            fp = fingerprint(scope, insight.kind, insight.activity)
            existing = session.exec(select(Opportunity).where(Opportunity.fingerprint == fp)).first()
            if existing:
                # One UPDATE increments in the database: two runs seeing it at once must both count.
                changes = {"seen_count": Opportunity.seen_count + 1, "insight_id": insight.id,
                           "impact": score["impact"], "feasibility": score["feasibility"],
                           "risk": score["risk"], "priority": score["priority"],
                           "rationale": rationale.get(insight.id, existing.rationale)}
                if existing.status in ("dismissed", "acted"):
                    changes["status"] = "open"
                session.exec(update(Opportunity).where(Opportunity.id == existing.id).values(**changes))
                session.refresh(existing)
                opp = existing
            else:
                opp = Opportunity(
                    insight_id=insight.id, fingerprint=fp, process=scope, pattern=insight.kind,
                    activity=insight.activity, impact=score["impact"], feasibility=score["feasibility"],
                    risk=score["risk"], priority=score["priority"], rationale=rationale.get(insight.id, ""),
                )
            session.add(opp)
            session.flush()
            opportunity_ids.append(opp.id)
        audit.save(session)
    step = TriageStep(
        agent_model=outcome.model, fallback=outcome.used_fallback,
        opportunities=[OpportunityRef(id=oid, activity=i.activity, kind=i.kind,
                                      priority=scores[i.id].priority)
                       for oid, i in zip(opportunity_ids, chosen)],
        missing_data=outcome.output.missing_data or problems, summary=outcome.output.summary)
    return {"opportunity_ids": opportunity_ids, "steps": [step.model_dump()],
            **({} if opportunity_ids else {"outcome": "needs_data" if problems else "nothing_to_do"})}

