"""Deterministic planning of catalog actions: candidates, their what-if scenarios, risk and guardrails.

The Planner agent only chooses among candidates and cites simulations; every
number of a plan (scenario, blast radius, risk tier, guardrails) comes from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from closedloop.contracts import Guardrails
from closedloop.tools.act import catalog
from closedloop.tools.errors import NotAllowedError, ScenarioError
from closedloop.tools.log.columns import ACTIVITY, CASE, CASE_PREFIX, RESOURCE
from closedloop.tools.twin import AddCapacity, AutomateActivity, Combined, ProcessTwin

QUEUE_OF_RESOURCE = re.compile(r"^([A-Za-z0-9]+)[-_ .]")
# Planning assumption for a bot's failure rate until the Watchdog has measured one.
ASSUMED_AUTOMATION_FAILURE = 0.15
# Defaults of the guardrails a live change is watched against.
MAX_RELATIVE_WORSENING = 0.10
MIN_CASES_PER_COHORT = 20
MAX_WRITES = 1
# An automation candidate: a segment at least this large whose manual handling is this quick.
ROUTINE_MIN_SHARE = 0.15
ROUTINE_MAX_PROCESSING_HOURS = 0.25

RiskTier = Literal["low", "medium", "high"]


class Candidate(BaseModel):
    """A catalog action worth simulating for an opportunity."""

    action: str
    params: dict[str, Any]
    label: str


class BlastRadius(BaseModel):
    """How many cases a plan's action touches."""

    share_of_cases: float = Field(ge=0, le=1)
    segment_share: float = Field(ge=0, le=1)
    treatment_share: float = Field(ge=0, le=1)
    reversible: bool = True


def queue_of_activity(frame: pd.DataFrame, activity: str) -> str | None:
    """The queue whose staff mostly perform ``activity`` (from resource names like ``L1-agent-2``)."""
    resources = frame.loc[frame[ACTIVITY] == activity, RESOURCE].astype(str)
    queues = resources.str.extract(QUEUE_OF_RESOURCE)[0].dropna()
    return None if queues.empty else str(queues.mode().iloc[0])


def segment_expression(condition: catalog.Condition) -> str:
    """The twin's segment expression (``field == 'value'``) for a rule condition."""
    values = condition.value if isinstance(condition.value, list) else [condition.value]
    if condition.op == "in":
        return f"{condition.field} in {tuple(values)!r}"
    op = "==" if condition.op == "eq" else "!="
    return f"{condition.field} {op} {values[0]!r}"


def scenario_for(action: str, params: dict[str, Any], twin: ProcessTwin, frame: pd.DataFrame,
                 config: Mapping[str, Any], activity: str) -> AddCapacity | AutomateActivity | Combined:
    """The what-if scenario of the twin that models a catalog action."""
    p = catalog.validate_params(action, params)
    if isinstance(p, catalog.SetQueueStaffing):
        current = config.get("staffing", {}).get(p.queue)
        if current is None:
            raise ScenarioError(f"unknown queue {p.queue!r}; queues: {sorted(config.get('staffing', {}))}")
        acts = [a for a in frame[ACTIVITY].unique() if queue_of_activity(frame, a) == p.queue]
        if not acts:
            raise ScenarioError(f"no activity of the log is worked by queue {p.queue!r}")
        pools = sorted({twin.pool_of(a) for a in acts if a in twin.activities})
        changes = [AddCapacity(activity_or_pool=pool, extra=p.agents - current) for pool in pools]
        return changes[0] if len(changes) == 1 else Combined(changes=changes)
    if p.rule_action != "auto_resolve":
        raise ScenarioError("only auto_resolve rules can be simulated yet")
    # The bot takes over the first-level work: every activity mostly done by the bottleneck's queue.
    queue = queue_of_activity(frame, activity)
    acts = [a for a in frame[ACTIVITY].unique() if queue and queue_of_activity(frame, a) == queue] or [activity]
    segment = segment_expression(p.condition)
    changes = [AutomateActivity(activity=a, segment=segment, share=p.treatment_share,
                                failure_rate=ASSUMED_AUTOMATION_FAILURE) for a in sorted(acts) if a in twin.activities]
    return changes[0] if len(changes) == 1 else Combined(changes=changes)


def candidate_actions(segments: Sequence[Mapping[str, Any]], queue: str | None, config: Mapping[str, Any],
                      share: float) -> list[Candidate]:
    """Deterministic candidate actions for an opportunity (a model may propose others).

    ``segments`` are the insight's case-attribute segments (``segment_profile``),
    ``queue`` the queue working the activity, ``share`` the treatment share of a rule.
    """
    out = []
    if queue and queue in config.get("staffing", {}):
        agents = config["staffing"][queue] + 1
        out.append(Candidate(action="set_queue_staffing", params={"queue": queue, "agents": agents},
                             label=f"one more agent on queue {queue} ({agents} in all)"))
    # Automation candidate: the sizeable segment that is quickest to handle by hand (routine work).
    routine = [seg for seg in segments
               if seg["share"] >= ROUTINE_MIN_SHARE and seg["mean_processing_hours"] <= ROUTINE_MAX_PROCESSING_HOURS]
    for seg in sorted(routine, key=lambda seg: (seg["mean_processing_hours"], -seg["share"]))[:1]:
        out.append(Candidate(action="create_rule", params={
            "name": f"auto-resolve {seg['attribute']}={seg['value']}",
            "condition": {"field": seg["attribute"], "op": "eq", "value": seg["value"]},
            "rule_action": "auto_resolve", "treatment_share": share},
            label=f"auto-resolve {seg['attribute']}={seg['value']} for {share:.0%} of matching cases"))
    return out


def segment_share(frame: pd.DataFrame, params: Mapping[str, Any]) -> float:
    """Share of the log's cases a rule's condition matches (1.0 without a condition or its attribute)."""
    cond = params.get("condition")
    if not cond:
        return 1.0
    col = f"{CASE_PREFIX}{cond['field']}"
    if col not in frame.columns:
        return 1.0
    per_case = frame.groupby(CASE)[col].first().astype(str)
    values = cond["value"] if isinstance(cond["value"], list) else [cond["value"]]
    hit = per_case.isin(values)
    share = float(hit.mean() if cond["op"] in ("eq", "in") else (~hit).mean())
    return round(share, 4)


def blast_radius(frame: pd.DataFrame, action: str, params: dict[str, Any]) -> BlastRadius:
    """Share of cases an action touches: the matching segment times the treated share."""
    typed = catalog.validate_params(action, params)
    treated = getattr(typed, "treatment_share", 1.0)
    segment = segment_share(frame, params)
    return BlastRadius(share_of_cases=round(segment * treated, 4), segment_share=segment,
                       treatment_share=treated, reversible=True)


def risk_tier(action: str, share_of_cases: float) -> RiskTier:
    """Low for a low-risk action touching at most a quarter of cases, high above half, else medium."""
    if action not in catalog.CATALOG:
        raise NotAllowedError(f"action {action!r} is not in the catalog; allowed: {sorted(catalog.CATALOG)}")
    spec = catalog.CATALOG[action][0]
    if spec.risk == "low" and share_of_cases <= 0.25:
        return "low"
    return "high" if share_of_cases > 0.5 else "medium"


def boundary_activities(report: Mapping[str, Any], tolerance: float = 0.05) -> dict[str, list[str]]:
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


def default_guardrails(report: Mapping[str, Any]) -> Guardrails:
    """The guardrails of a new plan, with the case boundaries of the mined log (a ``MiningReport`` dump)."""
    return Guardrails(max_relative_worsening=MAX_RELATIVE_WORSENING, min_cases_per_cohort=MIN_CASES_PER_COHORT,
                      max_writes=MAX_WRITES, **boundary_activities(report))


def cohort_split(treated_share: float) -> dict[str, Any]:
    """How the system splits cases into treatment and control for a plan."""
    return {"treatment_share": treated_share, "control_share": round(1 - treated_share, 4),
            "assignment": "by the system, per case, logged as attribute 'experiment'"}


def compensation_description(action: str) -> str:
    """How a performed action is undone (for people reading the plan)."""
    return "DELETE the rule" if action == "create_rule" else "PUT the previous staffing"
