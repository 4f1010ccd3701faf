"""Planner: opportunity -> one reversible plan backed by simulation (or no plan)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, Field
from sqlmodel import select

from closedloop.agents.chat_model import make_chat_model, offline_model
from closedloop.agents.context import LoopContext
from closedloop.agents.offline import answer, call_tool, first_human_json, tool_results
from closedloop.agents.runtime import AuditTrail, run_agent
from closedloop.agents.toolkit import make_tool
from closedloop.store.db import transaction
from closedloop.store.models import (
    Dataset,
    Insight,
    LoopRun,
    MiningRun,
    Opportunity,
    Plan,
    Simulation,
)
from closedloop.tools.act import catalog
from closedloop.tools.act.collect import fetch_config
from closedloop.tools.base import ToolKind
from closedloop.tools.errors import ScenarioError
from closedloop.tools.optimize.staffing import optimize_staffing
from closedloop.tools.twin.fit import fit_twin
from closedloop.tools.twin.simulate import AddCapacity, AutomateActivity, Combined, simulate

QUEUE_OF_RESOURCE = re.compile(r"^([A-Za-z0-9]+)[-_ .]")
# Planning assumption for a bot's failure rate until the Watchdog has measured one.
ASSUMED_AUTOMATION_FAILURE = 0.15


class PlanProposal(BaseModel):
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    simulation_id: int | None = None
    hypothesis: str = Field(default="", max_length=2000)
    rationale: str = Field(default="", max_length=4000)


def queue_of_activity(frame, activity: str) -> str | None:
    """The queue whose staff mostly perform ``activity`` (from resource names like ``L1-agent-2``)."""
    resources = frame.loc[frame["concept:name"] == activity, "org:resource"].astype(str)
    queues = resources.str.extract(QUEUE_OF_RESOURCE)[0].dropna()
    return None if queues.empty else str(queues.mode().iloc[0])


def _segment_expression(condition: catalog.Condition) -> str:
    values = condition.value if isinstance(condition.value, list) else [condition.value]
    if condition.op == "in":
        return f"{condition.field} in {tuple(values)!r}"
    op = "==" if condition.op == "eq" else "!="
    return f"{condition.field} {op} {values[0]!r}"


def scenario_for(action: str, params: dict[str, Any], twin, frame, config: dict[str, Any], activity: str):
    """The what-if scenario of the twin that models a catalog action."""
    p = catalog.validate_params(action, params)
    if isinstance(p, catalog.SetQueueStaffing):
        current = config.get("staffing", {}).get(p.queue)
        if current is None:
            raise ScenarioError(f"unknown queue {p.queue!r}; queues: {sorted(config.get('staffing', {}))}")
        acts = [a for a in frame["concept:name"].unique() if queue_of_activity(frame, a) == p.queue]
        if not acts:
            raise ScenarioError(f"no activity of the log is worked by queue {p.queue!r}")
        pools = sorted({twin.pool_of(a) for a in acts if a in twin.activities})
        changes = [AddCapacity(activity_or_pool=pool, extra=p.agents - current) for pool in pools]
        return changes[0] if len(changes) == 1 else Combined(changes=changes)
    if p.rule_action != "auto_resolve":
        raise ScenarioError("only auto_resolve rules can be simulated yet")
    # The bot takes over the first-level work: every activity mostly done by the bottleneck's queue.
    queue = queue_of_activity(frame, activity)
    acts = [a for a in frame["concept:name"].unique() if queue and queue_of_activity(frame, a) == queue] or [activity]
    segment = _segment_expression(p.condition)
    changes = [AutomateActivity(activity=a, segment=segment, share=p.treatment_share,
                                failure_rate=ASSUMED_AUTOMATION_FAILURE) for a in sorted(acts) if a in twin.activities]
    return changes[0] if len(changes) == 1 else Combined(changes=changes)


def offline_step(messages: Sequence[BaseMessage]) -> AIMessage:
    """Offline policy: simulate one staffing and one automation candidate, keep the best that clears the bar."""
    task = first_human_json(messages)
    results = tool_results(messages)
    candidates = task.get("candidates", [])
    sims = results.get("simulate_action", [])
    if len(sims) < len(candidates):
        c = candidates[len(sims)]
        return call_tool("simulate_action", {"action": c["action"], "params": c["params"]}, messages)
    scored = []
    for c, s in zip(candidates, sims):
        if "error" in s or s["ci_high_pct"] >= 0 or -s["delta_pct"] < task["min_improvement_pct"]:
            continue
        # Prefer a partial, reversible rollout when the predictions are within 5 points.
        bonus = 5.0 if c["action"] == "create_rule" else 0.0
        scored.append((-s["delta_pct"] + bonus, c, s))
    if not scored:
        return answer({"action": "none", "params": {}, "simulation_id": None, "hypothesis": "",
                       "rationale": f"no candidate predicts >= {task['min_improvement_pct']}% shorter cycle time "
                                    "with an interval wholly below zero"})
    scored.sort(key=lambda x: -x[0])
    _, best, sim = scored[0]
    return answer({
        "action": best["action"], "params": best["params"], "simulation_id": sim["simulation_id"],
        "hypothesis": f"{best['label']} cuts mean cycle time by {-sim['delta_pct']:.1f}% "
                      f"(95% interval {sim['ci_low_pct']:.1f}% to {sim['ci_high_pct']:.1f}%).",
        "rationale": "; ".join(f"{c['label']}: {s.get('delta_pct', 'error')}%" for c, s in zip(candidates, sims)),
    })


def candidate_actions(opportunity: Opportunity, insight: Insight, queue: str | None, config: dict[str, Any],
                      share: float) -> list[dict[str, Any]]:
    """Deterministic candidate actions for an opportunity (the model may propose others)."""
    out = []
    if queue and queue in config.get("staffing", {}):
        agents = config["staffing"][queue] + 1
        out.append({"action": "set_queue_staffing", "params": {"queue": queue, "agents": agents},
                    "label": f"one more agent on queue {queue} ({agents} in all)"})
    # Automation candidate: the sizeable segment that is quickest to handle by hand (routine work).
    routine = [seg for seg in insight.detail.get("segments", [])
               if seg["share"] >= 0.15 and seg["mean_processing_hours"] <= 0.25]
    for seg in sorted(routine, key=lambda seg: (seg["mean_processing_hours"], -seg["share"]))[:1]:
        out.append({"action": "create_rule", "params": {
                "name": f"auto-resolve {seg['attribute']}={seg['value']}",
                "condition": {"field": seg["attribute"], "op": "eq", "value": seg["value"]},
                "rule_action": "auto_resolve", "treatment_share": share},
                "label": f"auto-resolve {seg['attribute']}={seg['value']} for {share:.0%} of matching cases"})
    return out


def plan(ctx: LoopContext, run_id: str, opportunity_id: int, api_url: str, scope: str) -> dict[str, Any]:
    """Run the Planner agent for one opportunity; store simulations and the guarded plan."""
    s = ctx.settings
    audit = AuditTrail(run_id)
    with transaction(ctx.engine) as session:
        opp = session.get(Opportunity, opportunity_id)
        insight = session.get(Insight, opp.insight_id)
        mining = session.get(MiningRun, insight.mining_run_id)
        dataset = session.get(Dataset, mining.dataset_id)
    frame = ctx.frame(dataset.sha256, dataset.artifact)
    twin_key = f"twin:{dataset.sha256}:{s.seed}"
    if twin_key not in ctx.cache:
        ctx.cache[twin_key] = fit_twin(frame, seed=s.seed)
    twin = ctx.cache[twin_key]
    client = ctx.api_client(api_url)
    config = fetch_config(client)
    queue = queue_of_activity(frame, opp.activity)
    sim_ids: list[int] = []

    def list_actions() -> list[dict[str, Any]]:
        """The enterprise actions you may propose, with their parameter schemas."""
        return [a.model_dump() for a in catalog.list_catalog()]

    def current_config() -> dict[str, Any]:
        """The system's current staffing per queue and active rules."""
        return config

    def simulate_action(action: str, params: dict[str, Any]) -> dict[str, Any]:
        """Predict the effect of a catalog action on cycle time by seeded what-if simulation of the mined process."""
        scenario = scenario_for(action, params, twin, frame, config, opp.activity)
        result = simulate(twin, scenario, cases=s.simulation_cases, replications=s.simulation_replications,
                          seed=s.seed)
        r = result.model_dump(mode="json")
        with transaction(ctx.engine) as session:
            row = Simulation(opportunity_id=opportunity_id, run_id=run_id,
                             scenario={"action": action, "params": params, "scenario": scenario.model_dump()},
                             result=r, seed=s.seed, replications=s.simulation_replications)
            session.add(row)
            session.flush()
            sim_ids.append(row.id)
        return {"simulation_id": row.id, **prediction_summary(r)}

    def optimize_staff(budget: int) -> dict[str, Any]:
        """Best allocation of ``budget`` extra staff across resource pools (CP-SAT), checked by simulation."""
        return optimize_staffing(twin, budget_extra_staff=budget, seed=s.seed).model_dump(mode="json")

    tools = [make_tool(list_actions, ToolKind.READ), make_tool(current_config, ToolKind.READ),
             make_tool(simulate_action, ToolKind.READ), make_tool(optimize_staff, ToolKind.READ, "optimize_staffing")]
    task = {"opportunity": {"id": opp.id, "activity": opp.activity, "kind": opp.pattern,
                            "priority": opp.priority, "waiting_hours": insight.detail.get("waiting_hours"),
                            "segments": insight.detail.get("segments", [])},
            "queue_of_activity": queue, "min_improvement_pct": s.min_predicted_improvement_pct,
            "candidates": candidate_actions(opp, insight, queue, config, s.canary_share)}
    outcome = run_agent("planner", task, PlanProposal, tools, make_chat_model(s, "planner"),
                        lambda: offline_model("planner"), audit, max_retries=s.model_max_retries)
    proposal = outcome.output
    return _store_plan(ctx, run_id, scope, opp, proposal, sim_ids, audit, outcome, frame)


def prediction_summary(result: dict[str, Any]) -> dict[str, Any]:
    """Predicted change of mean cycle time (hours and %) with its 95% interval."""
    d = result["delta"]["cycle_time_mean_hours"]
    base = result["as_is"]["cycle_time_mean_hours"]["mean"]
    pct = (lambda v: round(100 * v / base, 2) if base else 0.0)
    # A partial rollout changes only the treated cases; this is the number the Watchdog's
    # treatment-vs-control delta can be compared with.
    treated = (result.get("treated_share") or {}).get("mean") or 0.0
    per_treated = d["mean"] / treated if treated > 0 else d["mean"]
    return {"baseline_hours": round(base, 3), "delta_hours": round(d["mean"], 3),
            "delta_per_treated_case_hours": round(per_treated, 3), "treated_share": round(treated, 4),
            "ci_low_hours": round(d["ci_low"], 3), "ci_high_hours": round(d["ci_high"], 3),
            "delta_pct": pct(d["mean"]), "ci_low_pct": pct(d["ci_low"]), "ci_high_pct": pct(d["ci_high"])}


def _store_plan(ctx, run_id, scope, opp, proposal, sim_ids, audit, outcome, frame) -> dict[str, Any]:
    s = ctx.settings
    step: dict[str, Any] = {"step": "plan", "agent_model": outcome.model, "fallback": outcome.used_fallback,
                            "opportunity_id": opp.id, "rationale": proposal.rationale}
    with transaction(ctx.engine) as session:
        sim = session.get(Simulation, proposal.simulation_id) if proposal.simulation_id else None
        reason = None
        if proposal.action == "none":
            reason = "the planner found no candidate that clears the bar"
        elif proposal.action not in catalog.CATALOG:
            reason = f"action {proposal.action!r} is not in the catalog"
        elif sim is None or sim.id not in sim_ids or sim.scenario.get("action") != proposal.action \
                or sim.scenario.get("params") != proposal.params:
            reason = "the plan does not cite a simulation of exactly this action made in this run"
        else:
            pred = prediction_summary(sim.result)
            if pred["ci_high_pct"] >= 0 or -pred["delta_pct"] < s.min_predicted_improvement_pct:
                reason = (f"predicted change {pred['delta_pct']}% (interval up to {pred['ci_high_pct']}%) does not "
                          f"clear {s.min_predicted_improvement_pct}%")
        if reason:
            audit.add("planner", "guard", {"dropped": True, "reason": reason})
            audit.save(session)
            step.update(dropped=reason)
            return {"plan_id": None, "outcome": "no_plan", "steps": [step]}
        params = catalog.validate_params(proposal.action, proposal.params)
        treated_share = getattr(params, "treatment_share", 1.0)
        segment_share = _segment_share(frame, proposal.params)
        blast = {"share_of_cases": round(segment_share * treated_share, 4), "segment_share": segment_share,
                 "treatment_share": treated_share, "reversible": True}
        spec = catalog.CATALOG[proposal.action][0]
        tier = "low" if spec.risk == "low" and blast["share_of_cases"] <= 0.25 else (
            "high" if blast["share_of_cases"] > 0.5 else "medium")
        run = session.get(LoopRun, run_id)
        report = session.exec(select(MiningRun).where(MiningRun.dataset_id == run.dataset_id)).first().report
        row = Plan(
            run_id=run_id, opportunity_id=opp.id, simulation_id=sim.id, scope=scope, hypothesis=proposal.hypothesis,
            rules=[proposal.params] if proposal.action == "create_rule" else [],
            actions=[{"action": proposal.action, "params": proposal.params}],
            predicted={**pred, "kpi": "cycle_time_hours", "simulation_id": sim.id}, blast_radius=blast,
            risk_tier=tier,
            cohort={"treatment_share": treated_share, "control_share": round(1 - treated_share, 4),
                    "assignment": "by the system, per case, logged as attribute 'experiment'"},
            guardrails={"max_relative_worsening": 0.10, "min_cases_per_cohort": 20, "max_writes": 1,
                        **boundary_activities(report)},
            compensations=[{"for_action": 0, "how": "DELETE the rule" if proposal.action == "create_rule"
                            else "PUT the previous staffing"}],
        )
        session.add(row)
        opp_row = session.get(Opportunity, opp.id)
        opp_row.status = "planned"
        session.flush()
        plan_id = row.id
        audit.save(session)
    step.update(plan_id=plan_id, action=proposal.action, params=proposal.params, hypothesis=proposal.hypothesis,
                predicted=pred, risk_tier=tier, blast_radius=blast, simulation_id=sim.id)
    return {"plan_id": plan_id, "steps": [step]}


def boundary_activities(report: dict[str, Any], tolerance: float = 0.05) -> dict[str, list[str]]:
    """Activities that really start and end a case.

    A case cut off by the end of the log also "ends" at whatever it did last,
    so an end activity counts only if it is rarely followed by anything
    (and a start activity only if it rarely follows anything).
    """
    count = {a["name"]: a["count"] for a in report["activities"]}
    out_edges: dict[str, int] = {}
    in_edges: dict[str, int] = {}
    for e in report["dfg"]:
        out_edges[e["source"]] = out_edges.get(e["source"], 0) + e["count"]
        in_edges[e["target"]] = in_edges.get(e["target"], 0) + e["count"]
    ends = [a for a in report["end_activities"] if out_edges.get(a, 0) <= tolerance * count.get(a, 1)]
    starts = [a for a in report["start_activities"] if in_edges.get(a, 0) <= tolerance * count.get(a, 1)]
    return {"end_activities": ends or list(report["end_activities"]),
            "start_activities": starts or list(report["start_activities"])}


def _segment_share(frame, params: dict[str, Any]) -> float:
    cond = params.get("condition")
    if not cond:
        return 1.0
    col = f"case:{cond['field']}"
    if col not in frame.columns:
        return 1.0
    per_case = frame.groupby("case:concept:name")[col].first().astype(str)
    values = cond["value"] if isinstance(cond["value"], list) else [cond["value"]]
    hit = per_case.isin(values)
    share = float(hit.mean() if cond["op"] in ("eq", "in") else (~hit).mean())
    return round(share, 4)
