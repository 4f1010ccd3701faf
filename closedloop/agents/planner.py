"""Planner: opportunity -> one reversible plan backed by simulation (or no plan)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, Field
from sqlmodel import select

from closedloop.agents.context import LoopContext
from closedloop.agents.offline import answer, call_tool, first_human_json, tool_results
from closedloop.agents.runtime import AgentOutcome, AgentSpec, AuditTrail
from closedloop.agents.toolkit import make_tool
from closedloop.contracts import PlanStep, Prediction
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
from closedloop.tools.act import (
    System,
    blast_radius,
    candidate_actions,
    cohort_split,
    compensation_description,
    default_guardrails,
    fetch_config,
    list_catalog,
    pool_of_activity,
    risk_tier,
    scenario_for,
)
from closedloop.tools.base import read_tool
from closedloop.tools.measure import prediction_summary
from closedloop.tools.optimize.staffing import optimize_staffing
from closedloop.tools.twin import fit_twin, simulate


class PlanProposal(BaseModel):
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    simulation_id: int | None = None
    hypothesis: str = Field(default="", max_length=2000)
    rationale: str = Field(default="", max_length=4000)


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
        bonus = 5.0 if c.get("partial") else 0.0
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


PLANNER: AgentSpec[PlanProposal] = AgentSpec(name="planner", prompt="planner", output=PlanProposal,
                                             offline_step=offline_step)


def _opportunities(ctx: LoopContext, system: System, opportunity_ids: list[int],
                   pools: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Each opportunity the catalog has candidates for, in triage order (else the first one)."""
    found = []
    for opportunity_id in opportunity_ids:
        with transaction(ctx.engine) as session:
            opp = session.get(Opportunity, opportunity_id)
            insight = session.get(Insight, opp.insight_id)
            mining = session.get(MiningRun, insight.mining_run_id)
            dataset = session.get(Dataset, mining.dataset_id)
        frame = ctx.frame(dataset.sha256, dataset.artifact)
        pool = pool_of_activity(frame, opp.activity, list(pools))
        candidates = candidate_actions(system.catalog, insight.detail.get("segments", []), pool,
                                       pools, ctx.settings.canary_share)
        found.append((opp, insight, dataset, frame, pool, candidates))
    with_candidates = [f for f in found if f[-1]]
    return with_candidates or found[:1]


def plan(ctx: LoopContext, run_id: str, opportunity_ids: list[int], api_url: str, scope: str,
         catalog_version: str) -> dict[str, Any]:
    """Run the Planner agent on each opportunity the connector's catalog has candidates for,
    in triage order, until one gives a plan; store simulations and the guarded plan."""
    system = ctx.system(catalog_version, api_url)
    config = fetch_config(system)
    result: dict[str, Any] = {"plan_id": None, "outcome": "no_plan", "steps": []}
    steps: list[dict[str, Any]] = []
    for chosen in _opportunities(ctx, system, opportunity_ids, config["pools"]):
        result = _plan_for(ctx, run_id, scope, system, config, *chosen)
        steps += result["steps"]
        if result.get("plan_id"):
            break
    return {**result, "steps": steps}


def _plan_for(ctx: LoopContext, run_id: str, scope: str, system: System, config: dict[str, Any],
              opp: Opportunity, insight: Insight, dataset: Dataset, frame: Any, pool: str | None,
              candidates: list[Any]) -> dict[str, Any]:
    """The Planner agent on one opportunity and its candidates."""
    s = ctx.settings
    audit = AuditTrail(run_id)
    pools = config["pools"]
    opportunity_id = opp.id
    twin_key = f"twin:{dataset.sha256}:{s.seed}"
    if twin_key not in ctx.cache:
        ctx.cache[twin_key] = fit_twin(frame, seed=s.seed)
    twin = ctx.cache[twin_key]
    sim_ids: list[int] = []

    @read_tool
    def list_actions() -> list[dict[str, Any]]:
        """The enterprise actions you may propose, with their parameter schemas."""
        return [a.model_dump() for a in list_catalog(system.catalog)]

    @read_tool
    def current_config() -> dict[str, Any]:
        """The system's current state: its named values and the capacity of each pool."""
        return {"values": config["values"], "pools": pools}

    @read_tool
    def simulate_action(action: str, params: dict[str, Any]) -> dict[str, Any]:
        """Predict the effect of a catalog action on cycle time by seeded what-if simulation of the mined process."""
        scenario = scenario_for(system.catalog, action, params, twin, frame, pools, opp.activity)
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
        return {"simulation_id": row.id, **prediction_summary(r).model_dump()}

    @read_tool
    def optimize_staff(budget: int) -> dict[str, Any]:
        """Best allocation of ``budget`` extra staff across resource pools (CP-SAT), checked by simulation."""
        return optimize_staffing(twin, budget_extra_staff=budget, seed=s.seed).model_dump(mode="json")

    tools = [make_tool(list_actions), make_tool(current_config), make_tool(simulate_action),
             make_tool(optimize_staff, "optimize_staffing")]
    task = {"opportunity": {"id": opp.id, "activity": opp.activity, "kind": opp.pattern,
                            "priority": opp.priority, "waiting_hours": insight.detail.get("waiting_hours"),
                            "segments": insight.detail.get("segments", [])},
            "pool_of_activity": pool, "min_improvement_pct": s.min_predicted_improvement_pct,
            "candidates": [c.model_dump() for c in candidates]}
    outcome = PLANNER.run(s, task, tools, audit)
    return _store_plan(ctx, run_id, scope, opp, outcome, sim_ids, audit, frame, system)


def _store_plan(ctx: LoopContext, run_id: str, scope: str, opp: Opportunity,
                outcome: AgentOutcome[PlanProposal], sim_ids: list[int], audit: AuditTrail, frame,
                system: System) -> dict[str, Any]:
    """Guard the proposal (catalog, cited simulation, predicted gain) and store the plan it allows."""
    s = ctx.settings
    proposal = outcome.output
    head = {"agent_model": outcome.model, "fallback": outcome.used_fallback, "opportunity_id": opp.id,
            "rationale": proposal.rationale}
    with transaction(ctx.engine) as session:
        sim = session.get(Simulation, proposal.simulation_id) if proposal.simulation_id else None
        reason, pred = _refusal(proposal, sim, sim_ids, s.min_predicted_improvement_pct,
                                set(system.catalog.actions))
        if reason:
            audit.add("planner", "guard", {"dropped": True, "reason": reason})
            audit.save(session)
            return {"plan_id": None, "outcome": "no_plan", "steps": [PlanStep(**head, dropped=reason).model_dump()]}
        catalog = system.catalog
        blast = blast_radius(catalog, frame, proposal.action, proposal.params)
        tier = risk_tier(catalog, proposal.action, blast.share_of_cases)
        run = session.get(LoopRun, run_id)
        report = session.exec(select(MiningRun).where(MiningRun.dataset_id == run.dataset_id)).first().report
        row = Plan(
            run_id=run_id, opportunity_id=opp.id, simulation_id=sim.id, scope=scope, hypothesis=proposal.hypothesis,
            rules=[proposal.params] if catalog.action(proposal.action).treatment_share_param else [],
            actions=[{"action": proposal.action, "params": proposal.params}],
            predicted={**pred.model_dump(), "kpi": "cycle_time_hours", "simulation_id": sim.id},
            blast_radius=blast.model_dump(), risk_tier=tier, cohort=cohort_split(blast.treatment_share),
            guardrails=default_guardrails(report).model_dump(),
            compensations=[{"for_action": 0,
                            "how": compensation_description(catalog, proposal.action)}],
            catalog_version=catalog.version,
        )
        session.add(row)
        opp_row = session.get(Opportunity, opp.id)
        opp_row.status = "planned"
        session.flush()
        plan_id = row.id
        audit.save(session)
    step = PlanStep(**head, plan_id=plan_id, action=proposal.action, params=proposal.params,
                    hypothesis=proposal.hypothesis, predicted=pred, risk_tier=tier,
                    blast_radius=blast.model_dump(), simulation_id=sim.id)
    return {"plan_id": plan_id, "steps": [step.model_dump()]}


def _refusal(proposal: PlanProposal, sim: Simulation | None, sim_ids: list[int],
             min_improvement_pct: float,
             allowed: set[str]) -> tuple[str | None, Prediction | None]:
    """Why the proposal cannot become a plan (None when it can), with the cited simulation's prediction."""
    if proposal.action == "none":
        return "the planner found no candidate that clears the bar", None
    if proposal.action not in allowed:
        return f"action {proposal.action!r} is not in the catalog", None
    if sim is None or sim.id not in sim_ids or sim.scenario.get("action") != proposal.action \
            or sim.scenario.get("params") != proposal.params:
        return "the plan does not cite a simulation of exactly this action made in this run", None
    pred = prediction_summary(sim.result)
    if pred.ci_high_pct >= 0 or -pred.delta_pct < min_improvement_pct:
        return (f"predicted change {pred.delta_pct}% (interval up to {pred.ci_high_pct}%) does not "
                f"clear {min_improvement_pct}%"), pred
    return None, pred
