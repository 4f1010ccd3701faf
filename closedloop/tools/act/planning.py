"""Deterministic planning of catalog actions: candidates, their what-if scenarios, risk and guardrails.

The Planner agent only chooses among candidates and cites simulations; every
number of a plan (scenario, blast radius, risk tier, guardrails) comes from here.
Actions are known only through the connector's catalog: their change kind
(in the twin's terms) and the roles of their parameters.

Naming conventions still used (to be replaced by planning on the mined log):
the pool doing an activity is the state's pool whose name prefixes the names
of the resources that do it (``L1-agent-2`` -> ``L1``, ``APPROVERS-2`` ->
``APPROVERS``), else the resource prefix itself (:func:`queue_of_activity`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field, ValidationError

from closedloop.contracts import Guardrails
from closedloop.tools.act.catalog import Condition
from closedloop.tools.connect import Catalog, CatalogAction
from closedloop.tools.connect.annotations import ChangeKindByParam
from closedloop.tools.errors import ScenarioError
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
CAPACITY_KINDS = ("set_capacity", "add_capacity")

RiskTier = Literal["low", "medium", "high"]


class Candidate(BaseModel):
    """A catalog action worth simulating for an opportunity."""

    action: str
    params: dict[str, Any]
    label: str
    partial: bool = Field(False, description="applied to a treatment share (a control group remains)")


class BlastRadius(BaseModel):
    """How many cases a plan's action touches."""

    share_of_cases: float = Field(ge=0, le=1)
    segment_share: float = Field(ge=0, le=1)
    treatment_share: float = Field(ge=0, le=1)
    reversible: bool = True


def queue_of_activity(frame: pd.DataFrame, activity: str) -> str | None:
    """The resource-name prefix of whoever mostly performs ``activity`` (``L1-agent-2`` -> ``L1``)."""
    resources = frame.loc[frame[ACTIVITY] == activity, RESOURCE].astype(str)
    queues = resources.str.extract(QUEUE_OF_RESOURCE)[0].dropna()
    return None if queues.empty else str(queues.mode().iloc[0])


def pool_of_activity(frame: pd.DataFrame, activity: str, pools: Sequence[str]) -> str | None:
    """The pool of the state whose name prefixes most resources doing ``activity``
    (the resource-name prefix when no pool matches)."""
    resources = frame.loc[frame[ACTIVITY] == activity, RESOURCE].dropna().astype(str)
    names = sorted((str(p) for p in pools), key=len, reverse=True)
    matched = [next((p for p in names if r == p or (r.startswith(p) and not r[len(p)].isalnum())),
                    None) for r in resources]
    found = pd.Series([m for m in matched if m is not None], dtype="object")
    if not found.empty:
        return str(found.mode().iloc[0])
    return queue_of_activity(frame, activity)


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


def activities_of_pool(frame: pd.DataFrame, pool: str, pools: Sequence[str]) -> list[str]:
    """Activities of the log mostly performed by ``pool``."""
    return sorted(a for a in frame[ACTIVITY].unique() if pool_of_activity(frame, a, pools) == pool)


def scenario_for(catalog: Catalog, action: str, params: dict[str, Any], twin: ProcessTwin,
                 frame: pd.DataFrame, pools: Mapping[str, Any],
                 activity: str) -> AddCapacity | AutomateActivity | Combined:
    """The what-if scenario of the twin that models a catalog action."""
    entry = catalog.action(action)
    typed = catalog.validate_params(action, params).model_dump(mode="json")
    kind = change_kind(catalog, action, typed)
    if kind in CAPACITY_KINDS:
        pool, amount = typed[_role(entry, "pool")], int(typed[_role(entry, "amount")])
        current = pools.get(pool)
        if current is None:
            raise ScenarioError(f"unknown pool {pool!r}; pools: {sorted(pools)}")
        acts = activities_of_pool(frame, pool, list(pools))
        if not acts:
            raise ScenarioError(f"no activity of the log is worked by pool {pool!r}")
        extra = amount - int(current) if kind == "set_capacity" else amount
        twin_pools = sorted({twin.pool_of(a) for a in acts if a in twin.activities})
        changes = [AddCapacity(activity_or_pool=p, extra=extra) for p in twin_pools]
        return changes[0] if len(changes) == 1 else Combined(changes=changes)
    condition = _condition(entry, typed)
    if kind != "automate_activity" or condition is None:
        raise ScenarioError(f"change kind {kind!r} of action {action!r} cannot be simulated yet")
    # The bot takes over the work of the bottleneck's pool: every activity that pool mostly does.
    pool = pool_of_activity(frame, activity, list(pools))
    acts = (activities_of_pool(frame, pool, list(pools)) if pool else []) or [activity]
    share = float(typed.get(entry.treatment_share_param or "", 1.0) or 1.0)
    segment = segment_expression(condition)
    changes = [AutomateActivity(activity=a, segment=segment, share=share,
                                failure_rate=ASSUMED_AUTOMATION_FAILURE)
               for a in acts if a in twin.activities]
    if not changes:
        raise ScenarioError(f"no activity of pool {pool!r} is in the twin")
    return changes[0] if len(changes) == 1 else Combined(changes=changes)


def _fill_required_names(entry: CatalogAction, params: dict[str, Any], label: str) -> None:
    """Required free-text parameters without a role (a rule's name) get the candidate's label."""
    schema = entry.annotation.params
    for name in schema.get("required", []):
        spec = schema.get("properties", {}).get(name, {})
        if name not in params and spec.get("type") == "string" and "enum" not in spec:
            params[name] = label[: int(spec.get("maxLength", 120))]


def _kind_value(entry: CatalogAction, kind: str) -> tuple[str, Any] | None:
    """The parameter and value that select change kind ``kind`` (None if it is fixed)."""
    ck = entry.annotation.change_kind
    if isinstance(ck, ChangeKindByParam):
        return next(((ck.param, v) for v, k in ck.values.items() if k == kind), None)
    return None


def candidate_actions(catalog: Catalog, segments: Sequence[Mapping[str, Any]], pool: str | None,
                      pools: Mapping[str, Any], share: float) -> list[Candidate]:
    """Deterministic candidate actions for an opportunity (a model may propose others).

    ``segments`` are the insight's case-attribute segments (``segment_profile``),
    ``pool`` the pool working the activity, ``pools`` the capacity per pool from the
    state read, ``share`` the treatment share of a partial change.
    """
    out: list[Candidate] = []
    routine = sorted((seg for seg in segments if seg["share"] >= ROUTINE_MIN_SHARE
                      and seg["mean_processing_hours"] <= ROUTINE_MAX_PROCESSING_HOURS),
                     key=lambda seg: (seg["mean_processing_hours"], -seg["share"]))[:1]
    for kind_order in (CAPACITY_KINDS, ("automate_activity",)):
        for entry in catalog.actions.values():
            kind = next((k for k in entry.change_kinds if k in kind_order), None)
            if kind is None:
                continue
            made = (_capacity(entry, kind, pool, pools) if kind in CAPACITY_KINDS
                    else _automation(entry, routine, share))
            if made is not None:
                try:
                    catalog.validate_params(made.action, made.params)
                except ValidationError:
                    continue
                out.append(made)
    return out


def _capacity(entry: CatalogAction, kind: str, pool: str | None,
              pools: Mapping[str, Any]) -> Candidate | None:
    if not pool or pool not in pools or not isinstance(pools[pool], int | float):
        return None
    amount = int(pools[pool]) + 1 if kind == "set_capacity" else 1
    params: dict[str, Any] = {_role(entry, "pool"): pool, _role(entry, "amount"): amount}
    if (selector := _kind_value(entry, kind)) is not None:
        params[selector[0]] = selector[1]
    label = f"one more in pool {pool} ({int(pools[pool]) + 1} in all)"
    _fill_required_names(entry, params, label)
    return Candidate(action=entry.name, params=params, label=label)


def _automation(entry: CatalogAction, routine: Sequence[Mapping[str, Any]],
                share: float) -> Candidate | None:
    segment_param = _role(entry, "segment")
    props = entry.annotation.params.get("properties", {})
    if not routine or segment_param is None or "field" not in str(props.get(segment_param)):
        return None  # only condition-shaped segments can be expressed yet
    seg = routine[0]
    params: dict[str, Any] = {
        segment_param: {"field": seg["attribute"], "op": "eq", "value": seg["value"]}}
    if (selector := _kind_value(entry, "automate_activity")) is not None:
        params[selector[0]] = selector[1]
    partial = entry.treatment_share_param is not None
    if partial:
        params[entry.treatment_share_param] = share
    label = (f"automate {seg['attribute']}={seg['value']}"
             + (f" for {share:.0%} of matching cases" if partial else ""))
    _fill_required_names(entry, params, f"automate {seg['attribute']}={seg['value']}")
    return Candidate(action=entry.name, params=params, label=label, partial=partial)


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


def default_guardrails(report: Mapping[str, Any]) -> Guardrails:
    """The guardrails of a new plan, with the case boundaries of the mined log (a ``MiningReport`` dump)."""
    return Guardrails(max_relative_worsening=MAX_RELATIVE_WORSENING, min_cases_per_cohort=MIN_CASES_PER_COHORT,
                      max_writes=MAX_WRITES, **boundary_activities(report))


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
