"""Planner: every opportunity x every applicable change kind -> one reversible plan, or "no change".

Candidates come from the mined process and the connector's catalog
(:func:`closedloop.tools.act.candidates_for`; a route's segment is picked by
a cheap point run of the twin); each is predicted with the twin's
``predict`` (simulation noise, a bootstrap over cases shared by all
candidates, declared assumptions) over the horizon a change is judged on
(``prediction_days`` from the log's end, its open cases as backlog) and
judged on its conservative bound, ranked per cost and risk
(:mod:`closedloop.tools.act.ranking`). A twin that fails its own backtest
is not acted on. "No change" is a recorded decision with every candidate
considered and why it failed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, Field
from sqlmodel import select

from closedloop.agents.canary import failure_lookup
from closedloop.agents.context import LoopContext
from closedloop.agents.model_text import guard_outcome
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
    Candidate,
    PlanOpportunity,
    System,
    Weighed,
    blast_radius,
    candidate_inputs,
    candidates_for,
    cohort_split,
    compensation_description,
    contract_prediction,
    decide,
    default_guardrails,
    fetch_config,
    list_catalog,
    risk_tier,
    scenario_for,
    shortfall,
    state_members,
)
from closedloop.tools.act.evidence import FailureLookup
from closedloop.tools.base import read_tool
from closedloop.tools.optimize.staffing import optimize_staffing
from closedloop.tools.twin import (
    ProcessTwin,
    backtest_twin,
    predict,
    simulate,
    simulate_horizon,
    twin_passes_backtest,
)

# Twins refitted on resampled cases per prediction (parameter uncertainty); more narrows the
# Student-t tails of the interval, each costs one refit and one simulated replication.
PLAN_BOOTSTRAP = 8
# Replications of the cheap point run that picks among the segments a route could take.
SCREEN_REPLICATIONS = 2


class PlanProposal(BaseModel):
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    simulation_id: int | None = None
    hypothesis: str = Field(default="", max_length=2000)
    rationale: str = Field(default="", max_length=4000)


def offline_step(messages: Sequence[BaseMessage]) -> AIMessage:
    """Offline policy: predict every candidate, propose the best-ranked one that clears the bar."""
    task = first_human_json(messages)
    results = tool_results(messages)
    candidates = task.get("candidates", [])
    sims = results.get("simulate_action", [])
    if len(sims) < len(candidates):
        c = candidates[len(sims)]
        return call_tool("simulate_action", {"action": c["action"], "params": c["params"]}, messages)
    each = "; ".join(f"{c['label']}: {s.get('reason') or s.get('error')}"
                     for c, s in zip(candidates, sims))
    scored = [(s["score"], c, s) for c, s in zip(candidates, sims) if s.get("clears")]
    canaries = [(-s["p50_pct"], c, s) for c, s in zip(candidates, sims) if s.get("canary")]
    if not scored and not canaries:
        return answer({"action": "none", "params": {}, "simulation_id": None, "hypothesis": "",
                       "rationale": "no change: " + (each or "no candidate to predict")})
    (scored or canaries).sort(key=lambda x: -x[0])
    _, best, sim = (scored or canaries)[0]
    how = "as a canary to measure what it assumes, " if not scored else ""
    return answer({
        "action": best["action"], "params": best["params"], "simulation_id": sim["simulation_id"],
        "hypothesis": f"{best['label']} cuts mean cycle time by {-sim['delta_pct']:.1f}% "
                      f"({how}p10-p90 {sim['p10_pct']:+.1f}% to {sim['p90_pct']:+.1f}%, 95% "
                      f"interval {sim['ci_low_pct']:+.1f}% to {sim['ci_high_pct']:+.1f}%).",
        "rationale": each,
    })


PLANNER: AgentSpec[PlanProposal] = AgentSpec(name="planner", prompt="planner", output=PlanProposal,
                                             offline_step=offline_step)


def _calibrated_twin(ctx: LoopContext, dataset: Dataset, frame: Any) -> ProcessTwin:
    """The dataset's twin with its backtest (fitted once per dataset and seed in the process)."""
    twin = ctx.twin(dataset.sha256, dataset.artifact)
    if twin.backtest is None:
        twin.backtest = backtest_twin(frame, seed=ctx.settings.seed)
    return twin


def _horizon_hours(ctx: LoopContext) -> float | None:
    """The horizon a change is predicted over (None: the steady state)."""
    days = ctx.settings.prediction_days
    return days * 24.0 if days > 0 else None


def _screen(ctx: LoopContext, twin: ProcessTwin) -> Any:
    """A cheap point prediction (% change of mean cycle time) to pick among a route's segments."""
    s, horizon = ctx.settings, _horizon_hours(ctx)
    seen: dict[str, float] = {}  # two opportunities at one pool screen the same routes

    def screen(scenario: Any) -> float:
        key = scenario.model_dump_json()
        if key not in seen:
            if horizon is not None and twin.open_cases and twin.log_end:
                r = simulate_horizon(twin, scenario, horizon, replications=SCREEN_REPLICATIONS,
                                     seed=s.seed)
            else:
                r = simulate(twin, scenario, cases=s.simulation_cases,
                             replications=SCREEN_REPLICATIONS, seed=s.seed)
            seen[key] = r.predicted_delta_pct.mean
        return seen[key]

    return screen


def _opportunities(ctx: LoopContext, opportunity_ids: list[int]) -> list[tuple[Any, ...]]:
    """Each opportunity (above the priority bar, in triage order) with its insight, data, frame."""
    found = []
    for opportunity_id in opportunity_ids:
        with transaction(ctx.engine) as session:
            opp = session.get(Opportunity, opportunity_id)
            insight = session.get(Insight, opp.insight_id)
            mining = session.get(MiningRun, insight.mining_run_id)
            dataset = session.get(Dataset, mining.dataset_id)
        found.append((opp, insight, dataset, ctx.frame(dataset.sha256, dataset.artifact)))
    return found


def plan(ctx: LoopContext, run_id: str, opportunity_ids: list[int], api_url: str, scope: str,
         catalog_version: str) -> dict[str, Any]:
    """Plan every opportunity against every applicable change kind of the connector's catalog,
    on a twin that passes its backtest; store each prediction and the plan chosen, or the
    "no change" decision with every candidate considered and why it failed."""
    system = ctx.system(catalog_version, api_url)
    config = fetch_config(system)
    found = _opportunities(ctx, opportunity_ids)
    if not found:
        return {"plan_id": None, "outcome": "no_plan", "steps": []}
    audit = AuditTrail(run_id)
    _, _, dataset, frame = found[0]
    twin = _calibrated_twin(ctx, dataset, frame)
    verdict = twin_passes_backtest(twin.backtest)
    audit.add("planner", "calibration", {"passed": verdict.passed, "reason": verdict.reason,
                                         "backtest": twin.backtest.model_dump(mode="json")
                                         if twin.backtest else None})
    if not verdict:
        return _no_change(ctx, found[0][0].id, audit, verdict.reason, [],
                          "the twin's predictions are not trusted for this log")
    members = state_members(config["pools"], config["values"])
    failures = failure_lookup(ctx.engine, system)
    candidates: list[Candidate] = []
    considered: list[Weighed] = []
    for opp, insight, _, _ in found:
        view = PlanOpportunity(id=opp.id, activity=opp.activity, kind=opp.pattern,
                               segments=insight.detail.get("segments", []))
        made, dropped = candidates_for(system.catalog, view, twin, frame, config["pools"], members,
                                       ctx.settings.canary_share, screen=_screen(ctx, twin),
                                       failures=failures)
        # The same change found for two opportunities (one pool doing both) is predicted once.
        known = {(c.action, json.dumps(c.scenario, sort_keys=True)) for c in candidates}
        candidates += [c for c in made
                       if (c.action, json.dumps(c.scenario, sort_keys=True)) not in known]
        considered += [Weighed(label=f"{d.action} ({d.change_kind}) at {opp.activity}",
                               action=d.action, change_kind=d.change_kind, opportunity_id=opp.id,
                               verdict="not_simulated", reason=d.reason) for d in dropped]
    refits = ctx.refits(found[0][2].sha256, found[0][2].artifact, PLAN_BOOTSTRAP)
    return _plan_for(ctx, run_id, scope, system, config, found, twin, frame, candidates,
                     considered, audit, refits, failures)


def _plan_for(ctx: LoopContext, run_id: str, scope: str, system: System, config: dict[str, Any],
              found: list[tuple[Any, ...]], twin: ProcessTwin, frame: Any,
              candidates: list[Candidate], considered: list[Weighed],
              audit: AuditTrail, refits: list[ProcessTwin],
              failures: FailureLookup | None = None) -> dict[str, Any]:
    """The Planner agent over every candidate; each prediction stored as a simulation."""
    s = ctx.settings
    pools = config["pools"]
    members = state_members(pools, config["values"])
    by_id = {opp.id: opp for opp, *_ in found}
    weighed: dict[int, Weighed] = {}

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
        """Predict a catalog action's effect on cycle time: seeded what-if simulation of the mined
        process with refitted parameters and declared assumptions (p10/p50/p90, 95% interval)."""
        known = candidate_inputs(candidates, action, params)
        opp = by_id.get(known.opportunity_id if known else None) or found[0][0]
        if known is not None and known.scenario is not None:
            scenario, ranges = known.scenario, known.assumptions
        else:
            scenario, ranges = scenario_for(system.catalog, action, params, twin, frame, pools,
                                            opp.activity, members, failures=failures)
        pred = predict(twin, scenario, frame=frame, assumptions=ranges, refits=refits,
                       cases=s.simulation_cases, replications=s.simulation_replications, seed=s.seed,
                       horizon_hours=_horizon_hours(ctx))
        source = next((e for e in (known.evidence if known else []) if "failure rate" in e), None)
        summary = contract_prediction(pred, source)
        blast = blast_radius(system.catalog, frame, action, params)
        tier = risk_tier(system.catalog, action, blast.share_of_cases)
        cost = known.cost if known else 0.0
        judged = decide([Weighed(label=known.label if known else action, action=action,
                                 params=params, predicted=summary, cost=cost, risk_tier=tier,
                                 verdict="", change_kind=known.change_kind if known else "",
                                 opportunity_id=opp.id,
                                 evidence=known.evidence if known else [],
                                 unmeasurable=known.unmeasurable if known else None,
                                 explore=known.explore if known else None)],
                        s.min_predicted_improvement_pct)[0]
        # A canary is chosen below the bar only for what running it measures (ranking.decide).
        canary = judged.reason if judged.verdict == "chosen" and \
            shortfall(summary, s.min_predicted_improvement_pct) else None
        result = {**pred.result.model_dump(mode="json"), "prediction": summary.model_dump(),
                  "canary": canary}
        with transaction(ctx.engine) as session:
            row = Simulation(opportunity_id=opp.id, run_id=run_id,
                             scenario={"action": action, "params": params,
                                       "scenario": pred.scenario.model_dump(),
                                       "assumptions": [a.model_dump() for a in pred.assumptions]},
                             result=result, seed=s.seed, replications=s.simulation_replications)
            session.add(row)
            session.flush()
            weighed[row.id] = judged.model_copy(update={"simulation_id": row.id})
        return {"simulation_id": row.id, **summary.model_dump(), "score": judged.score,
                "clears": judged.verdict == "chosen" and canary is None, "canary": canary is not None,
                "reason": judged.reason, "risk_tier": tier}

    @read_tool
    def optimize_staff(budget: int) -> dict[str, Any]:
        """Best allocation of ``budget`` extra staff across resource pools (CP-SAT), checked by simulation."""
        return optimize_staffing(twin, budget_extra_staff=budget, seed=s.seed).model_dump(mode="json")

    tools = [make_tool(list_actions), make_tool(current_config), make_tool(simulate_action),
             make_tool(optimize_staff, "optimize_staffing")]
    task = {"opportunities": [{"id": o.id, "activity": o.activity, "kind": o.pattern,
                               "priority": o.priority} for o, *_ in found],
            "min_improvement_pct": s.min_predicted_improvement_pct,
            "candidates": [c.model_dump(include={"action", "params", "label", "partial",
                                                 "change_kind", "cost", "evidence"})
                           for c in candidates]}
    outcome = PLANNER.run(s, task, tools, audit)
    # The hypothesis and rationale reach the plan, its card and report only guarded.
    outcome.output = guard_outcome("planner", outcome, task, audit)
    ranked = decide([w.model_copy(update={"verdict": ""}) for w in weighed.values()],
                    s.min_predicted_improvement_pct)
    return _store_plan(ctx, run_id, scope, found, outcome, ranked + considered, audit, frame,
                       system)


def _no_change(ctx: LoopContext, opportunity_id: int, audit: AuditTrail, reason: str,
               considered: list[Weighed], rationale: str, head: dict[str, Any] | None = None,
               ) -> dict[str, Any]:
    """Record "no change" as the decision: why, and every candidate considered."""
    listed = [w.model_dump(mode="json") for w in considered]
    audit.add("planner", "decision", {"decision": "no_change", "reason": reason,
                                      "considered": listed})
    with transaction(ctx.engine) as session:
        audit.save(session)
    head = head or {"agent_model": "none", "fallback": False, "opportunity_id": opportunity_id,
                    "rationale": rationale}
    step = PlanStep(**head, dropped=reason, considered=listed)
    return {"plan_id": None, "outcome": "no_plan", "steps": [step.model_dump()]}


def _store_plan(ctx: LoopContext, run_id: str, scope: str, found: list[tuple[Any, ...]],
                outcome: AgentOutcome[PlanProposal], considered: list[Weighed], audit: AuditTrail,
                frame: Any, system: System) -> dict[str, Any]:
    """Guard the proposal (catalog, cited prediction, conservative gain) and store the plan it
    allows, or the "no change" decision."""
    s = ctx.settings
    proposal = outcome.output
    with transaction(ctx.engine) as session:
        sim = session.get(Simulation, proposal.simulation_id) if proposal.simulation_id else None
        cited = {w.simulation_id for w in considered if w.simulation_id is not None}
        clears = any(w.predicted is not None and not w.unmeasurable
                     and shortfall(w.predicted, s.min_predicted_improvement_pct) is None
                     for w in considered)
        reason, pred = _refusal(proposal, sim, cited, s.min_predicted_improvement_pct,
                                set(system.catalog.actions), canary_allowed=not clears)
    opp_id = sim.opportunity_id if sim is not None and not reason else found[0][0].id
    head = {"agent_model": outcome.model, "fallback": outcome.used_fallback,
            "opportunity_id": opp_id, "rationale": proposal.rationale}
    if reason:
        audit.add("planner", "guard", {"dropped": True, "reason": reason})
        listed = [w.model_copy(update={"verdict": "below_bar" if w.verdict == "chosen" else
                                       w.verdict}) for w in considered]
        return _no_change(ctx, opp_id, audit, reason, listed, proposal.rationale, head)
    considered = [w.model_copy(update={"verdict": "chosen" if w.simulation_id == sim.id else
                                       ("cleared" if w.verdict == "chosen" else w.verdict)})
                  for w in considered]
    listed = [w.model_dump(mode="json") for w in considered]
    audit.add("planner", "decision", {"decision": "change", "simulation_id": sim.id,
                                      "considered": listed})
    catalog = system.catalog
    blast = blast_radius(catalog, frame, proposal.action, proposal.params)
    tier = risk_tier(catalog, proposal.action, blast.share_of_cases)
    with transaction(ctx.engine) as session:
        run = session.get(LoopRun, run_id)
        report = session.exec(select(MiningRun).where(MiningRun.dataset_id == run.dataset_id)).first().report
        row = Plan(
            run_id=run_id, opportunity_id=opp_id, simulation_id=sim.id, scope=scope,
            hypothesis=proposal.hypothesis,
            rules=[proposal.params] if catalog.action(proposal.action).treatment_share_param else [],
            actions=[{"action": proposal.action, "params": proposal.params}],
            predicted={**pred.model_dump(), "kpi": "cycle_time_hours", "simulation_id": sim.id},
            blast_radius=blast.model_dump(), risk_tier=tier, cohort=cohort_split(blast.treatment_share),
            guardrails=default_guardrails(report, ctx.settings.prediction_days or None).model_dump(),
            compensations=[{"for_action": 0,
                            "how": compensation_description(catalog, proposal.action)}],
            catalog_version=catalog.version,
        )
        session.add(row)
        session.get(Opportunity, opp_id).status = "planned"
        session.flush()
        plan_id = row.id
        audit.save(session)
    step = PlanStep(**head, plan_id=plan_id, action=proposal.action, params=proposal.params,
                    hypothesis=proposal.hypothesis, predicted=pred, risk_tier=tier,
                    blast_radius=blast.model_dump(), simulation_id=sim.id, considered=listed)
    return {"plan_id": plan_id, "steps": [step.model_dump()]}


def _refusal(proposal: PlanProposal, sim: Simulation | None, sim_ids: set[int],
             min_improvement_pct: float, allowed: set[str],
             canary_allowed: bool = True) -> tuple[str | None, Prediction | None]:
    """Why the proposal cannot become a plan (None when it can), with the cited prediction; a
    canary below the bar only when no candidate clears it (``canary_allowed``)."""
    if proposal.action == "none":
        return "no change: no candidate clears the bar", None
    if proposal.action not in allowed:
        return f"action {proposal.action!r} is not in the catalog", None
    if sim is None or sim.id not in sim_ids or sim.scenario.get("action") != proposal.action \
            or sim.scenario.get("params") != proposal.params:
        return "the plan does not cite a prediction of exactly this action made in this run", None
    pred = Prediction.model_validate(sim.result["prediction"])
    why = shortfall(pred, min_improvement_pct)
    if why and sim.result.get("canary") and canary_allowed:  # the tool's flag, not a model's
        return None, pred
    return (f"no change: {why}" if why else None), pred
