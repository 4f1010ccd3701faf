"""Watchdog: live change + fresh events -> effect by a design without interference bias,
guardrail KPIs -> verdict.

The design follows the plan's change kind (``choose_design``): a staffing change is
measured before/after against the as-is twin's counterfactual; a rule split by
cohort on shared people is treatment vs control corrected by the twin's predicted
interference. The twin's numbers come from tools (``twin_counterfactual``,
``twin_interference``) run on the twin of the plan's dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, Field

from closedloop.agents.canary import AUTOMATION_FAILURE_KPI, NOTICE_KPI, canary_failures
from closedloop.agents.context import LoopContext
from closedloop.agents.model_text import guard_outcome
from closedloop.agents.offline import answer, call_tool, tool_results
from closedloop.agents.runtime import AgentSpec, AuditTrail
from closedloop.agents.switchback import begun_pairs, cycle_hours, system_time
from closedloop.agents.switchback import start as start_trial
from closedloop.agents.switchback import usable as trial_usable
from closedloop.agents.switchback import windows as trial_windows
from closedloop.agents.toolkit import make_tool
from closedloop.contracts import (
    DesignChoice,
    Guardrails,
    KpiMeasurement,
    SwitchbackSchedule,
    WatchStep,
)
from closedloop.store.db import transaction
from closedloop.store.models import (
    Dataset,
    Insight,
    KpiSnapshot,
    MiningRun,
    Opportunity,
    Plan,
    Simulation,
    Verdict,
)
from closedloop.tools.act import (
    COHORT_TAG,
    EventPosition,
    System,
    change_kind,
    fetch_events,
    measurement_records,
)
from closedloop.tools.base import read_tool
from closedloop.tools.errors import ScenarioError
from closedloop.tools.log import TIMESTAMP
from closedloop.tools.measure import (
    CarryOver,
    CarryOverPrediction,
    Interval,
    choose_design,
    interference_correction,
    measure_change,
    partial_automation,
    rollout_shares_resources,
    twin_carry_over,
    twin_counterfactual,
    twin_interference,
)
from closedloop.tools.twin import backtest_twin

Decision = Literal["keep", "rollback", "escalate", "wait"]
# Conservativeness order: a model may make a decision more cautious, never bolder.
CAUTION = {"keep": 0, "wait": 1, "escalate": 2, "rollback": 3}


class WatchdogOutput(BaseModel):
    decision: Decision
    rationale: str = Field(default="", max_length=4000)


def rule_decision(measure: KpiMeasurement) -> Decision:
    """The decision the evidence dictates (the prompt states the same rules): a breached
    guardrail or a sequential abort rolls back, even when cycle time improved."""
    breached = measure.guardrail_check is not None and measure.guardrail_check.breached
    aborted = measure.sequential is not None and measure.sequential.decision == "abort"
    if measure.guardrail_breached or breached or aborted:
        return "rollback"
    if not measure.enough_cases:
        return "wait"
    if measure.ci_high < 0:
        return "keep"
    if measure.ci_low > 0:
        return "rollback"
    return "escalate"


# A switchback measures a change against a world that returns to its steady state between
# blocks; where the twin forecasts the as-is cycle time over the window at more than this
# multiple of the log's, there is none (the helpdesk sandbox's growing first-line queue read
# 1.6-2.2, order-to-cash's busy but stable approvals 1.2; see docs/operations.md).
MAX_FORECAST_GROWTH = 1.5
COUNTERFACTUAL_REFITS = 8  # as the Planner's bootstrap, so one process fits them once


class TwinSources:
    """What the plan's twin knows: its stored simulation, the dataset frame and the fitted twin."""

    def __init__(self, ctx: LoopContext, plan: Plan) -> None:
        with transaction(ctx.engine) as session:
            sim = session.get(Simulation, plan.simulation_id) if plan.simulation_id else None
            opp = session.get(Opportunity, plan.opportunity_id)
            insight = session.get(Insight, opp.insight_id) if opp else None
            run = session.get(MiningRun, insight.mining_run_id) if insight else None
            dataset = session.get(Dataset, run.dataset_id) if run else None
        self.ctx, self.scenario = ctx, (sim.scenario.get("scenario") if sim else None)
        self.frame = ctx.frame(dataset.sha256, dataset.artifact) if dataset else None
        self.dataset = dataset

    @property
    def twin(self) -> Any:
        """The twin the Planner fitted (process cache, else fitted again from the same frame)."""
        if self.dataset is None:
            return None
        return self.ctx.twin(self.dataset.sha256, self.dataset.artifact)

    def refits(self) -> list[Any]:
        """Bootstrap refits of the twin (the Planner's, when this process made them)."""
        if self.dataset is None:
            return []
        return self.ctx.refits(self.dataset.sha256, self.dataset.artifact, COUNTERFACTUAL_REFITS)

    def backtest_error(self) -> float | None:
        """The twin's own backtest error (a share), the model error of its counterfactual; the
        backtest is run here when the Planner's is not in this process."""
        twin = self.twin
        if twin is None or self.frame is None:
            return None
        if twin.backtest is None:
            twin.backtest = backtest_twin(self.frame, seed=self.ctx.settings.seed)
        bt = twin.backtest
        return abs(bt.error_pct) / 100.0 if bt.status == "ok" and bt.error_pct is not None else None

    def sizes(self) -> dict[str, int]:
        s = self.ctx.settings
        return {"cases": s.simulation_cases, "replications": s.simulation_replications, "seed": s.seed}


def plan_design(system: System, plan: Plan, sources: TwinSources) -> DesignChoice:
    """The measurement design for the plan's change kind (see ``choose_design``).

    A one-action plan whose action the connector can undo and that applies to every matching
    case (no treatment share below 1) can be toggled by time blocks: the Executor runs a
    switchback trial.
    """
    action = plan.actions[0]
    kind = change_kind(system.catalog, action["action"], action["params"])
    spec = system.catalog.action(action["action"])
    share = action["params"].get(spec.treatment_share_param) if spec.treatment_share_param else None
    split = share is not None and float(share) < 1.0
    shares = True
    if split and sources.scenario is not None and sources.twin is not None:
        shares = rollout_shares_resources(sources.twin, sources.scenario)
    toggle = len(plan.actions) == 1 and spec.reversible and not split
    choice = choose_design(kind, shares_resources=shares, can_split=split, can_toggle=toggle)
    slow = _slow_to_settle(plan, sources) if choice.design == "switchback" else None
    if slow is None:
        return choice
    return DesignChoice(design="before_after_with_counterfactual",
                        why=f"the change could be toggled by time blocks, but {slow}")


def _slow_to_settle(plan: Plan, sources: TwinSources) -> str | None:
    """Why a switchback would be biased (None when it would not): the twin forecasts the as-is
    cycle time over the window well above the log's (the queue keeps growing), so blocks
    switched on would drain the backlog that blocks switched off leave, and both would look
    alike; only a before/after against that forecast sees the whole effect."""
    history = cycle_hours(sources.frame)
    forecast = (plan.predicted or {}).get("baseline_hours")
    if history is None or history.empty or not forecast:
        return None
    ratio = float(forecast) / max(float(history.mean()), 1e-9)
    if ratio <= MAX_FORECAST_GROWTH:
        return None
    return (f"the twin forecasts the as-is mean cycle time at {forecast:.1f} h over the window, "
            f"{ratio:.1f} times the log's {history.mean():.1f} h: the queue keeps growing, so "
            "on-blocks would drain the backlog off-blocks leave and a switchback would miss "
            "most of the effect")


def plan_trial(ctx: LoopContext, plan_id: int, api_url: str, catalog_version: str,
               observed: dict[str, Any], execution_id: int) -> SwitchbackSchedule | None:
    """Right after execution: the switchback schedule when the plan's design is a switchback
    and its window and caps hold enough blocks (else None: measured as the design says)."""
    with transaction(ctx.engine) as session:
        plan = session.get(Plan, plan_id)
    system = ctx.system(plan.catalog_version or catalog_version, api_url)
    sources = TwinSources(ctx, plan)
    if plan_design(system, plan, sources).design != "switchback":
        return None
    frame = sources.frame
    history_end = (frame[TIMESTAMP].max().to_pydatetime() if frame is not None and not frame.empty
                   else datetime.now(UTC))
    began = system_time(system, observed, history_end)
    return start_trial(ctx, plan_id, execution_id, began, frame)


# A one-period prediction's t quantile needs more replications than a mean's interval does:
# with 5 its interval is 1.55 standard deviations wide per side, with 10 1.21.
CORRECTION_REPLICATIONS = 10


def _correction(sources: TwinSources) -> Callable[[float | None, float, list], Interval] | None:
    """The twin's interference correction for the plan's partial rollout, as a function of the
    measurement's censoring horizon, window and arrivals (None without a twin or a partial
    automation)."""
    twin, scenario = sources.twin, sources.scenario
    if scenario is None or twin is None or not partial_automation(twin, scenario):
        return None

    sizes = sources.sizes()
    forward = sizes | {"replications": max(sizes["replications"], CORRECTION_REPLICATIONS)}

    def at_scale(tau: float | None, window_hours: float, arrivals: list) -> Interval:
        try:  # the window the live cases arrived in, from the log's end with its backlog
            total, direct = twin_interference(twin, scenario, window_hours=window_hours,
                                              tau_hours=tau, arrivals=arrivals, **forward)
        except ScenarioError:  # too few cohort cases arrive in a short window: the steady state
            total, direct = twin_interference(twin, scenario, **sizes)
        return interference_correction(total, direct)

    return at_scale


def _carry_over(sources: TwinSources, washout_hours: float) -> CarryOver | None:
    """The twin's carry-over of the plan's switchback, as a function of the measurement's
    censoring horizon, blocks and arrivals (None without a twin or a scenario)."""
    twin, scenario = sources.twin, sources.scenario
    if scenario is None or twin is None:
        return None
    sizes = sources.sizes()

    def predicted(tau: float | None, blocks: list, arrivals: list) -> CarryOverPrediction:
        return twin_carry_over(twin, scenario, blocks, washout_hours, tau_hours=tau,
                               arrivals=arrivals, seed=sizes["seed"],
                               replications=max(sizes["replications"], CORRECTION_REPLICATIONS))

    return predicted


def measure_plan_kpi(ctx: LoopContext, plan: Plan, api_url: str, catalog_version: str,
                     after: dict[str, Any], trial: SwitchbackSchedule | None = None) -> KpiMeasurement:
    """Read the system's events since the change through the connector (from the feed position
    stored at execution) and measure the plan's change by the design its change kind needs
    (``trial``: the blocks of the switchback the Executor ran); an automation canary's
    failures on its segment come with it."""
    system = ctx.system(plan.catalog_version or catalog_version, api_url)
    batch = fetch_events(system, EventPosition.model_validate(after))
    sources = TwinSources(ctx, plan)
    records = measurement_records(batch.rows)
    measured = _measure(system, plan, sources, records, f"{batch.source} after {after}", trial)
    failures = canary_failures(system, plan, sources.scenario, sources.frame, records)
    return measured.model_copy(update={"automation_failures": failures}) if failures else measured


def _measure(system: System, plan: Plan, sources: TwinSources, records: list[dict[str, Any]],
             source: str, trial: SwitchbackSchedule | None) -> KpiMeasurement:
    design = plan_design(system, plan, sources)
    guardrails = Guardrails.model_validate(plan.guardrails)
    if design.design == "switchback":
        if trial is not None and trial_usable(trial):
            design = DesignChoice(design="switchback", why=f"{design.why}; {trial.why}"
                                  + (f"; stopped early at {trial.stopped}" if trial.stopped else ""))
            return measure_change(records, guardrails, design, [COHORT_TAG], source,
                                  schedule=lambda end: trial_windows(trial, end),
                                  washout_hours=trial.washout_hours,
                                  pairs=begun_pairs(trial),
                                  baseline_frame=sources.frame,
                                  carry_over=_carry_over(sources, trial.washout_hours))
        reason = ("the trial stopped early: " + trial.stopped if trial is not None and trial.stopped
                  else "too few blocks fit the window and the write cap")
        design = DesignChoice(design="before_after_with_counterfactual",
                              why=f"a switchback was possible but not run ({reason})")
    if design.design == "before_after_with_counterfactual":
        twin = sources.twin

        refits, error = sources.refits(), sources.backtest_error()

        def counterfactual(tau: float | None, window_hours: float, _arrivals: list) -> Interval:
            # Forecasts its own arrivals too: this design was measured so (docs/benchmarks.md).
            return twin_counterfactual(twin, tau, window_hours=window_hours, refits=refits,
                                       model_error=error, **sources.sizes())

        return measure_change(records, guardrails, design, [COHORT_TAG], source,
                              counterfactual=counterfactual if twin is not None else None,
                              baseline_frame=sources.frame)
    correction = _correction(sources) if design.design == "treatment_control_corrected" else None
    if design.design == "treatment_control_corrected" and correction is None:
        design = DesignChoice(design="treatment_control", why=design.why + "; but the twin gave no "
                              "correction, so the plain difference (the direct effect) is reported")
    return measure_change(records, guardrails, design, [COHORT_TAG], source, correction=correction)


def describe(m: KpiMeasurement) -> str:
    """The evidence in words: design and why, effect with interval, guardrails."""
    head = f"design {m.design}: {m.why}" if m.design else "design: treatment vs control"
    if m.delta is not None and m.treatment is not None and m.control is not None:
        e = m.effect
        censored = f"; {e.open_cases} open cases censored ({e.estimator})" if e and e.open_cases else ""
        # A corrected effect includes the spill-over onto other cases: no share of one cohort's mean.
        rel = "" if m.design == "treatment_control_corrected" else f" ({m.relative_pct:+.1f}%)"
        body = (f"cycle time {m.treatment.mean:.2f} h (n={m.treatment_n}) vs {m.control.mean:.2f} h "
                f"(n={m.control_n}): effect {m.delta:+.2f} h [{m.ci_low:+.2f}, {m.ci_high:+.2f}]"
                f"{rel}{censored}")
    else:
        body = f"only {m.treatment_n} treatment and {m.control_n} control cases so far"
    if m.guardrail_check is not None:
        worst = ", ".join(f"{r.kpi} {r.worsening:+.2f} {r.unit}" for r in m.guardrail_check.results)
        guard = ("guardrails breached: " + "; ".join(m.guardrail_check.breaches)
                 if m.guardrail_check.breached else f"guardrails held ({worst})")
    else:
        guard = "guardrails not measured yet"
    if m.sequential is not None and m.sequential.decision == "abort":
        guard += f"; sequential rework test aborts after {m.sequential.stopped_at} cases"
    f = m.automation_failures
    bot = (f". The bot failed {f.failed} of {f.cases} treated cases ({f.low95:.0%}-{f.high95:.0%}, "
           "95 %), which the next plan of this rule predicts with"
           if f is not None and f.rate is not None else "")
    return f"{head}. {body}. {guard}{bot}"


def offline_step(messages: Sequence[BaseMessage]) -> AIMessage:
    """Offline policy: measure, then apply the decision rules of the prompt."""
    results = tool_results(messages)
    if "measure_kpi" not in results:
        return call_tool("measure_kpi", {}, messages)
    m = results["measure_kpi"][-1]
    if "error" in m:
        return answer({"decision": "escalate", "rationale": f"measurement failed: {m['error']}"})
    measured = KpiMeasurement.model_validate(m)
    return answer({"decision": rule_decision(measured), "rationale": describe(measured)[:4000]})


WATCHDOG: AgentSpec[WatchdogOutput] = AgentSpec(name="watchdog", prompt="watchdog", output=WatchdogOutput,
                                                 offline_step=offline_step)


def watch(ctx: LoopContext, run_id: str, plan_id: int, api_url: str, catalog_version: str,
          after: dict[str, Any], checks_so_far: int, max_checks: int = 3,
          trial: SwitchbackSchedule | None = None) -> dict[str, Any]:
    """Run the Watchdog agent; store KPI snapshots and, unless waiting, the verdict."""
    audit = AuditTrail(run_id)
    with transaction(ctx.engine) as session:
        plan = session.get(Plan, plan_id)
    measurements: list[KpiMeasurement] = []

    @read_tool
    def measure_kpi() -> KpiMeasurement:
        """The change's effect on cycle time (hours) from the system's events since it, by the
        design its change kind needs, with the guardrail KPIs and their checks."""
        measurements.append(measure_plan_kpi(ctx, plan, api_url, catalog_version, after, trial))
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
    if decision == "rollback" and dictated != "rollback":
        # Model text is not evidence: it may escalate to a person, never delete a change itself.
        audit.add("watchdog", "guard", {"model_decision": decision, "enforced": "escalate"})
        decision = "escalate"
    if decision == "wait" and checks_so_far + 1 >= max_checks:
        decision = "escalate"
    # The prediction on the measurement's scale: per treated case for a split, else all cases.
    predicted = plan.predicted.get("delta_per_treated_case_hours" if measured.per_treated_case
                                   else "delta_hours", plan.predicted.get("delta_hours"))
    # The model's words are labelled and keep only computed numbers (the measurement, the plan's).
    rationale = guard_outcome("watchdog", outcome, task, audit, measured, plan.predicted).rationale
    if measured.design and measured.design not in rationale:
        rationale = f"[design {measured.design}: {measured.why}] {rationale}"[:4000]
    with transaction(ctx.engine) as session:
        verdict_id = None
        for row in snapshots(plan_id, measured):
            session.add(row)
        if decision != "wait":
            verdict = Verdict(plan_id=plan_id, decision=decision, kpi="cycle_time_hours",
                              delta=_or_zero(measured.delta), ci_low=_or_zero(measured.ci_low),
                              ci_high=_or_zero(measured.ci_high), predicted_delta=predicted,
                              rationale=rationale)
            session.add(verdict)
            session.flush()
            verdict_id = verdict.id
            fresh = session.get(Plan, plan_id)
            fresh.status = {"keep": "kept", "rollback": "rolled_back", "escalate": "escalated"}[decision]
        audit.save(session)
    step = WatchStep(agent_model=outcome.model, fallback=outcome.used_fallback, decision=decision,
                     measured=measured, predicted_delta_hours=predicted, rationale=rationale,
                     verdict_id=verdict_id)
    return {"decision": decision, "verdict_id": verdict_id, "evidence_checks": checks_so_far + 1,
            "steps": [step.model_dump()]}


def snapshots(plan_id: int, m: KpiMeasurement) -> list[KpiSnapshot]:
    """KPI rows of a measurement: cycle time per cohort/period (once there is an effect) and
    each guardrail KPI per cohort/period (rates as shares, 95 % normal interval)."""
    rows = []
    if m.delta is not None:
        names = {"before_after_with_counterfactual": ("after", "counterfactual"),
                 "switchback": ("on", "off")}.get(m.design or "", ("treatment", "control"))
        for cohort, c in zip(names, (m.treatment, m.control), strict=True):
            if c is not None:
                rows.append(KpiSnapshot(plan_id=plan_id, kpi="cycle_time_hours", cohort=cohort, n=c.n,
                                        mean=c.mean, ci_low=c.ci_low, ci_high=c.ci_high,
                                        source=m.source))
    for cohort, k in (m.guardrail_kpis or {}).items():
        rates = {"rework_rate": k.rework, "reopen_rate": k.reopen, "failure_rate": k.failure,
                 "sla_attainment": k.sla_attainment}
        for kpi, r in rates.items():
            if r is not None:
                rows.append(KpiSnapshot(plan_id=plan_id, kpi=kpi, cohort=cohort, n=r.n, mean=r.rate,
                                        ci_low=max(r.rate - 1.96 * r.se, 0.0),
                                        ci_high=min(r.rate + 1.96 * r.se, 1.0), source=m.source))
        rows.append(KpiSnapshot(plan_id=plan_id, kpi="cost_per_case", cohort=cohort, n=k.cases,
                                mean=k.cost_per_case, ci_low=k.cost_per_case,
                                ci_high=k.cost_per_case, source=m.source))
    f = m.automation_failures
    if f is not None and f.rate is not None:
        rows.append(KpiSnapshot(plan_id=plan_id, kpi=AUTOMATION_FAILURE_KPI, cohort="treatment",
                                n=f.cases, mean=f.rate, ci_low=f.low95, ci_high=f.high95,
                                source=f"{m.source}; {f.failed} of {f.cases} judged treated cases "
                                       f"needed people for {', '.join(f.taken_over)} "
                                       f"({f.pending} still open)"))
    if f is not None and f.notice_q1 is not None and f.notice_q3 is not None:
        rows.append(KpiSnapshot(plan_id=plan_id, kpi=NOTICE_KPI, cohort="treatment", n=f.notice_n,
                                mean=(f.notice_q1 + f.notice_q3) / 2, ci_low=f.notice_q1,
                                ci_high=f.notice_q3,
                                source=f"{m.source}; hours until {f.notice_n} bot failures came back "
                                       "to people (interquartile range)"))
    return rows


def _or_zero(value: float | None) -> float:
    return 0.0 if value is None else value
