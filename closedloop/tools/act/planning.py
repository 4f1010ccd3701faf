"""Deterministic planning of catalog actions: their what-if scenarios, risk and guardrails.

The Planner agent only chooses among candidates (:mod:`closedloop.tools.act.candidates`)
and cites predictions; every number of a plan (scenario, blast radius, risk tier,
guardrails) comes from here. Actions are known only through the connector's
catalog: their change kind (in the twin's terms) and the roles of their
parameters. Pools of the system are matched to the twin's pools on evidence
(:mod:`closedloop.tools.act.pool_map`), never by a naming convention alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from closedloop.contracts import Guardrails
from closedloop.tools.act.candidates import CAPACITY_KINDS, Candidate
from closedloop.tools.act.catalog import Condition
from closedloop.tools.act.evidence import FailureLookup, approval_gate, automation_assumptions
from closedloop.tools.act.pool_map import capacity_of, twin_pools_of
from closedloop.tools.connect import Catalog, CatalogAction
from closedloop.tools.connect.annotations import ChangeKindByParam
from closedloop.tools.errors import ScenarioError
from closedloop.tools.log.columns import CASE, CASE_PREFIX
from closedloop.tools.twin import (
    AddCapacity,
    AutoApprove,
    AutomateActivity,
    Combined,
    ProcessTwin,
    RouteSegment,
)

# Defaults of the guardrails a live change is watched against.
MAX_RELATIVE_WORSENING = 0.10
MIN_CASES_PER_COHORT = 20
MAX_WRITES = 1

RiskTier = Literal["low", "medium", "high"]


class BlastRadius(BaseModel):
    """How many cases a plan's action touches."""

    share_of_cases: float = Field(ge=0, le=1)
    segment_share: float = Field(ge=0, le=1)
    treatment_share: float = Field(ge=0, le=1)
    reversible: bool = True


def change_kind(catalog: Catalog, action: str, params: Mapping[str, Any]) -> str:
    """The change kind (twin terms) of ``action`` with ``params``."""
    kind = catalog.action(action).annotation.change_kind
    if isinstance(kind, ChangeKindByParam):
        value = params.get(kind.param, _default(catalog.action(action), kind.param))
        if value not in kind.values:
            raise ScenarioError(f"action {action!r}: {kind.param}={value!r} has no change kind")
        return kind.values[value]
    return str(kind)


def _default(entry: CatalogAction, param: str) -> Any:
    return entry.annotation.params.get("properties", {}).get(param, {}).get("default")


def _role(entry: CatalogAction, role: str) -> str | None:
    return entry.annotation.roles.get(role)


def segment_expression(condition: Condition) -> str:
    """The twin's segment expression (``field == 'value'``) for a rule condition."""
    values = condition.value if isinstance(condition.value, list) else [condition.value]
    if condition.op == "in":
        return f"{condition.field} in {tuple(values)!r}"
    op = "==" if condition.op == "eq" else "!="
    return f"{condition.field} {op} {values[0]!r}"


def _condition(entry: CatalogAction, params: Mapping[str, Any]) -> Condition | None:
    """The segment of an action as a condition, when its segment parameter is condition-shaped."""
    name = _role(entry, "segment")
    value = params.get(name) if name else None
    return Condition.model_validate(value) if isinstance(value, dict) else None


def scenario_for(catalog: Catalog, action: str, params: dict[str, Any], twin: ProcessTwin,
                 frame: pd.DataFrame, pools: Mapping[str, Any], activity: str,
                 members: Mapping[str, list[str]] | None = None, name_hint: bool = True,
                 failures: FailureLookup | None = None,
                 ) -> tuple[AddCapacity | AutomateActivity | AutoApprove | RouteSegment
                            | Combined, dict[str, tuple[float, float]]]:
    """The twin's what-if scenario of a catalog action with ``params`` (e.g. one a model
    proposed) for an opportunity at ``activity``, and the assumption ranges it needs
    (an automation's failure rate as a canary of it measured, where ``failures`` has one).

    ScenarioError when the action's pool has no honest mapping onto the twin, or
    its change kind cannot be simulated.
    """
    entry = catalog.action(action)
    typed = catalog.validate_params(action, params).model_dump(mode="json")
    kind = change_kind(catalog, action, typed)
    if kind in CAPACITY_KINDS:
        pool, amount = typed[_role(entry, "pool")], int(typed[_role(entry, "amount")])
        if pool not in pools or capacity_of(pools[pool]) is None:
            raise ScenarioError(f"unknown pool {pool!r}; pools: {sorted(pools)}")
        twin_pools = twin_pools_of(twin, pool, pools, members, name_hint)
        if not twin_pools:
            raise ScenarioError(f"no pool of the twin maps onto the system's pool {pool!r}")
        extra = amount - int(capacity_of(pools[pool]) or 0) if kind == "set_capacity" else amount
        changes = [AddCapacity(activity_or_pool=p, extra=extra) for p in twin_pools]
        return (changes[0] if len(changes) == 1 else Combined(changes=changes)), {}
    if kind == "approval_threshold":
        gate = approval_gate(frame, activity)
        if gate is None:
            raise ScenarioError(f"the log shows no threshold deciding who goes through {activity}")
        below = float(typed[_role(entry, "threshold")])
        return AutoApprove(activity=activity, attribute=gate.attribute, below=below), {}
    condition = _condition(entry, typed)
    share = float(typed.get(entry.treatment_share_param or "", 1.0) or 1.0)
    if kind == "route_segment" and condition is not None:
        return _route(entry, typed, condition, share, twin, pools, activity, members, name_hint), {}
    if kind not in ("automate_activity", "skip_activity") or condition is None:
        raise ScenarioError(f"change kind {kind!r} of action {action!r} cannot be simulated yet")
    segment = segment_expression(condition)
    if kind == "skip_activity" or activity not in twin.activities:
        return AutomateActivity(activity=activity, segment=segment, share=share,
                                automated_duration_hours=0.0), {}
    # The bot takes over the work of the activity's main pool on the segment.
    acts = [a for a in twin.pools[twin.pool_of(activity)].activities if a in twin.activities]
    values = condition.value if isinstance(condition.value, list) else [condition.value]
    measured = failures(action, typed) if failures is not None else None
    ranges, _ = automation_assumptions(frame, condition.field,
                                       values if condition.op != "neq" else None, acts, measured)
    changes = [AutomateActivity(activity=a, segment=segment, share=share) for a in acts]
    return (changes[0] if len(changes) == 1 else Combined(changes=changes)), ranges


def _route(entry: CatalogAction, typed: Mapping[str, Any], condition: Condition, share: float,
           twin: ProcessTwin, pools: Mapping[str, Any], activity: str,
           members: Mapping[str, list[str]] | None, name_hint: bool) -> RouteSegment:
    """The twin's route of a segment from the pool doing ``activity`` to the action's queue."""
    queue = typed.get(_role(entry, "target") or "")
    if queue not in pools:
        raise ScenarioError(f"route to unknown queue {queue!r}; queues: {sorted(pools)}")
    if activity not in twin.activities:
        raise ScenarioError(f"activity {activity!r} is not in the twin")
    mapped = twin_pools_of(twin, str(queue), pools, members, name_hint)
    if len(mapped) != 1:
        raise ScenarioError(f"{len(mapped)} pools of the twin map onto queue {queue!r}: "
                            "no honest route")
    return RouteSegment(segment=segment_expression(condition), from_pool=twin.pool_of(activity),
                        to_pool=mapped[0], share=share)


def candidate_inputs(candidates: list[Candidate], action: str, params: dict[str, Any]
                     ) -> Candidate | None:
    """The candidate with exactly this action and these parameters (None if none)."""
    return next((c for c in candidates if c.action == action and c.params == params), None)


def segment_share(frame: pd.DataFrame, condition: Condition | None) -> float:
    """Share of the log's cases a condition matches (1.0 without a condition or its attribute)."""
    if condition is None:
        return 1.0
    col = f"{CASE_PREFIX}{condition.field}"
    if col not in frame.columns:
        return 1.0
    per_case = frame.groupby(CASE)[col].first().astype(str)
    values = condition.value if isinstance(condition.value, list) else [condition.value]
    hit = per_case.isin(values)
    share = float(hit.mean() if condition.op in ("eq", "in") else (~hit).mean())
    return round(share, 4)


def blast_radius(catalog: Catalog, frame: pd.DataFrame, action: str,
                 params: dict[str, Any]) -> BlastRadius:
    """Share of cases an action touches: the matching segment times the treated share."""
    entry = catalog.action(action)
    typed = catalog.validate_params(action, params).model_dump(mode="json")
    treated = float(typed.get(entry.treatment_share_param, 1.0)) \
        if entry.treatment_share_param else 1.0
    segment = segment_share(frame, _condition(entry, typed))
    return BlastRadius(share_of_cases=round(segment * treated, 4), segment_share=segment,
                       treatment_share=treated, reversible=entry.reversible)


def risk_tier(catalog: Catalog, action: str, share_of_cases: float) -> RiskTier:
    """Low for a low-risk action touching at most a quarter of cases, high above half, else medium."""
    if catalog.action(action).risk == "low" and share_of_cases <= 0.25:
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


def default_guardrails(report: Mapping[str, Any], watch_days: float | None = None) -> Guardrails:
    """The guardrails of a new plan, with the case boundaries of the mined log (a ``MiningReport`` dump)
    and, when given, how many days the change is watched before the verdict."""
    watch = {"watch_days": watch_days} if watch_days else {}  # unset stays out of the dump
    return Guardrails(max_relative_worsening=MAX_RELATIVE_WORSENING, min_cases_per_cohort=MIN_CASES_PER_COHORT,
                      max_writes=MAX_WRITES, **boundary_activities(report), **watch)


def cohort_split(treated_share: float) -> dict[str, Any]:
    """How the system splits cases into treatment and control for a plan."""
    return {"treatment_share": treated_share, "control_share": round(1 - treated_share, 4),
            "assignment": "by the system, per case, read through the connector's cohort mapping"}


def compensation_description(catalog: Catalog, action: str) -> str:
    """How a performed action is undone (for people reading the plan)."""
    compensation = catalog.action(action).annotation.compensation
    if compensation is None:
        return "irreversible: the connector declares no compensation"
    op = catalog.operation(compensation.operation)
    return f"{op.method} {op.path} ({op.operation_id})"
