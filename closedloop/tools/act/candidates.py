"""Candidate changes for an opportunity: the mined process meets the catalog's change kinds.

For an opportunity at an activity, every catalog action whose change kind
applies gives a candidate (or a recorded reason why it cannot):

- **capacity** (``add_capacity`` / ``set_capacity``): each pool the twin saw
  doing the activity, mapped onto a pool of the system's state
  (:mod:`closedloop.tools.act.pool_map`), one more person;
- **automate** / **skip** (``automate_activity`` / ``skip_activity``): the
  routine segment of the activity's cases (large and quickly handled; none at
  an activity the log shows taking no handling time at all: an event such as a
  customer's reopen, not work); an
  automation's failure rate and how long a failure goes unnoticed enter as ranges
  (:func:`automation_assumptions`);
- **threshold** (``approval_threshold``): when the log shows the activity is
  done only above a numeric attribute's threshold (:func:`approval_gate`),
  raising it to the median of the gated cases;
- **route** (``route_segment``): each other pool of the system that one twin
  pool maps onto (:mod:`~closedloop.tools.act.pool_map`) may take a segment
  of the activity's cases straight away (the twin's ``RouteSegment``), for
  the segments whose cases those people already worked on in the log
  (at least ROUTE_MIN_EVIDENCE of them); with a ``screen`` (the predicted
  change of a scenario, cheap) the segment it predicts best is kept per pool,
  else the largest;
- **priority** kinds are recorded as not simulated yet.

Nothing here reads names: pools come from who does the work, segments from
case attributes, gates from attribute values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field, ValidationError

from closedloop.tools.act.evidence import (
    FailureLookup,
    approval_gate,
    automation_assumptions,
    handled_by,
)
from closedloop.tools.act.pool_map import capacity_of, map_pool, twin_pools_of
from closedloop.tools.connect import Catalog, CatalogAction
from closedloop.tools.connect.annotations import ChangeKindByParam
from closedloop.tools.errors import ScenarioError
from closedloop.tools.twin import (
    AddCapacity,
    AutoApprove,
    AutomateActivity,
    Combined,
    ProcessTwin,
    RouteSegment,
    route_plan,
)

# An automation candidate: a segment at least this large whose manual handling is this quick.
ROUTINE_MIN_SHARE = 0.15
ROUTINE_MAX_PROCESSING_HOURS = 0.25
CAPACITY_KINDS = ("set_capacity", "add_capacity")
AUTOMATION_KINDS = ("automate_activity", "skip_activity")
# Cost of a change in "people": one more person is 1, a rule or a setting a fraction of one.
PERSON_COST, RULE_COST = 1.0, 0.25
# A segment is routed only to people who already worked on at least this many of its cases.
ROUTE_MIN_EVIDENCE = 20
# The predicted change of mean cycle time (%) of a scenario: cheap, used to pick among segments.
Screen = Callable[[Any], float]


class Candidate(BaseModel):
    """A catalog action worth predicting for an opportunity, with its what-if scenario."""

    action: str
    params: dict[str, Any]
    label: str
    partial: bool = Field(False, description="applied to a treatment share (a control group remains)")
    change_kind: str = ""
    opportunity_id: int | None = None
    cost: float = Field(0.0, description="in people: 1 per person added, a fraction per rule")
    scenario: dict[str, Any] | None = Field(None, description="the twin scenario it is predicted by")
    unmeasurable: str | None = Field(None, description="why its effect could not be measured")
    explore: str | None = Field(None, description="what running it as a canary would measure "
                                                  "that its prediction can only assume")
    assumptions: dict[str, tuple[float, float]] = Field(default_factory=dict)
    evidence: list[str] = Field(default_factory=list, description="why this candidate, from the log")


class Dropped(BaseModel):
    """A change kind the catalog offers that gave no candidate for an opportunity, and why."""

    action: str
    change_kind: str
    opportunity_id: int | None = None
    reason: str


class Opportunity(BaseModel):
    """What the candidates are for: an activity of the mined process and its case segments."""

    id: int | None = None
    activity: str
    kind: str = "bottleneck"
    segments: list[dict[str, Any]] = Field(default_factory=list)


def _role(entry: CatalogAction, role: str) -> str | None:
    return entry.annotation.roles.get(role)


def _kind_value(entry: CatalogAction, kind: str) -> tuple[str, Any] | None:
    ck = entry.annotation.change_kind
    if isinstance(ck, ChangeKindByParam):
        return next(((ck.param, v) for v, k in ck.values.items() if k == kind), None)
    return None


def _props(entry: CatalogAction) -> dict[str, Any]:
    return entry.annotation.params.get("properties", {})


def _complete(entry: CatalogAction, params: dict[str, Any], kind: str, label: str) -> str | None:
    """Fill the kind selector and unnamed text parameters; the reason when a required one is left."""
    if (selector := _kind_value(entry, kind)) is not None:
        params[selector[0]] = selector[1]
    for name in entry.annotation.params.get("required", []):
        spec = _props(entry).get(name, {})
        if name in params:
            continue
        if spec.get("type") == "string" and "enum" not in spec:
            params[name] = label[: int(spec.get("maxLength", 120))]
        elif "default" not in spec:
            return f"required parameter {name!r} has no role the planner can fill"
    return None


def _segment_value(entry: CatalogAction, seg: Mapping[str, Any]) -> Any:
    """The segment parameter's value for a case-attribute segment (None: not expressible)."""
    spec = _props(entry).get(_role(entry, "segment") or "", {})
    if "field" in str(spec):
        return {"field": seg["attribute"], "op": "eq", "value": seg["value"]}
    if seg["value"] in (spec.get("enum") or []):
        return seg["value"]
    return None


def routine_segments(segments: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Segments large enough and handled quickly enough to hand to a bot, quickest first."""
    return sorted((s for s in segments if s["share"] >= ROUTINE_MIN_SHARE
                   and s["mean_processing_hours"] <= ROUTINE_MAX_PROCESSING_HOURS),
                  key=lambda s: (s["mean_processing_hours"], -s["share"]))


def candidates_for(catalog: Catalog, opp: Opportunity, twin: ProcessTwin, frame: pd.DataFrame,
                   pools: Mapping[str, Any], members: Mapping[str, list[str]], share: float,
                   name_hint: bool = True, screen: Screen | None = None,
                   failures: FailureLookup | None = None,
                   ) -> tuple[list[Candidate], list[Dropped]]:
    """Every candidate for ``opp`` the catalog's change kinds allow, and the kinds that gave none
    (``screen`` picks among a route's segments, see the module docstring; ``failures`` gives the
    bot failures a canary of an automation measured, which replace the declared prior)."""
    made: list[Candidate] = []
    dropped: list[Dropped] = []
    for entry in catalog.actions.values():
        for kind in entry.change_kinds:
            if kind in CAPACITY_KINDS:
                got = _capacity(entry, kind, opp, twin, pools, members, name_hint)
            elif kind in AUTOMATION_KINDS:
                got = _automation(entry, kind, opp, twin, frame, share, failures)
            elif kind == "approval_threshold":
                got = _threshold(entry, opp, frame)
            elif kind == "route_segment":
                got = _route(entry, opp, twin, frame, pools, members, share, name_hint, screen)
            else:
                got = [f"the twin cannot simulate a {kind} change for this opportunity yet"]
            for item in got:
                if isinstance(item, str):
                    dropped.append(Dropped(action=entry.name, change_kind=kind,
                                           opportunity_id=opp.id, reason=item))
                    continue
                try:
                    catalog.validate_params(item.action, item.params)
                except ValidationError as exc:
                    dropped.append(Dropped(action=entry.name, change_kind=kind, opportunity_id=opp.id,
                                           reason=f"parameters do not fit the catalog: {exc.errors()[0]['msg']}"))
                    continue
                made.append(item.model_copy(update={"change_kind": kind, "opportunity_id": opp.id}))
    return made, dropped


def _capacity(entry: CatalogAction, kind: str, opp: Opportunity, twin: ProcessTwin,
              pools: Mapping[str, Any], members: Mapping[str, list[str]],
              name_hint: bool) -> list[Candidate | str]:
    if opp.activity not in twin.activities:
        return [f"activity {opp.activity!r} is not in the twin"]
    out: list[Candidate | str] = []
    by_state: dict[str, list[str]] = {}
    notes: dict[str, str] = {}
    for twin_pool in twin.pools_of(opp.activity):
        match = map_pool(twin, twin_pool, pools, members, name_hint)
        if match.state_pool is None:
            out.append(f"pool {twin_pool!r} (doing {opp.activity}): no honest mapping to the "
                       f"system's pools: {match.detail}")
            continue
        by_state.setdefault(match.state_pool, []).append(twin_pool)
        notes[match.state_pool] = f"{twin_pool!r} -> {match.state_pool!r} by {match.evidence}: {match.detail}"
    for state_pool, twin_pools in by_state.items():
        current = capacity_of(pools[state_pool])
        if current is None:
            out.append(f"the state shows no capacity for pool {state_pool!r}")
            continue
        amount = current + 1 if kind == "set_capacity" else 1
        params: dict[str, Any] = {_role(entry, "pool"): state_pool, _role(entry, "amount"): amount}
        label = f"one more in pool {state_pool} ({current + 1} in all)"
        if (why := _complete(entry, params, kind, label)) is not None:
            out.append(why)
            continue
        changes = [AddCapacity(activity_or_pool=p, extra=1) for p in twin_pools]
        scenario = changes[0] if len(changes) == 1 else Combined(changes=changes)
        out.append(Candidate(action=entry.name, params=params, label=label, cost=PERSON_COST,
                             scenario=scenario.model_dump(), evidence=[notes[state_pool]]))
    return out


def _automation(entry: CatalogAction, kind: str, opp: Opportunity, twin: ProcessTwin,
                frame: pd.DataFrame, share: float,
                failures: FailureLookup | None) -> list[Candidate | str]:
    if _role(entry, "segment") is None:
        return ["the action names no segment parameter"]
    if twin.has_start_times and opp.segments and \
            max(s["mean_processing_hours"] for s in opp.segments) <= 0:
        # Zero handling every time, where the log times work: something that happens to a case
        # (a customer's reopen), not work a bot could take over.
        return [(f"{opp.activity} takes no handling time in the log (it starts as it ends every "
                 "time): an event, not work a bot could take over")]
    routine = routine_segments(opp.segments)
    if not routine:
        return [(f"no routine segment at {opp.activity} (>= {ROUTINE_MIN_SHARE:.0%} of its cases, "
                 f"<= {ROUTINE_MAX_PROCESSING_HOURS} h of handling)")]
    seg = next((s for s in routine if _segment_value(entry, s) is not None), None)
    if seg is None:
        shown = ", ".join(f"{s['attribute']}={s['value']}" for s in routine[:3])
        return [f"the action's segment parameter cannot express the routine segments ({shown})"]
    params: dict[str, Any] = {_role(entry, "segment"): _segment_value(entry, seg)}
    activity_param = _role(entry, "activity")
    if activity_param is not None:
        allowed = _props(entry).get(activity_param, {}).get("enum")
        if allowed is not None and opp.activity not in allowed:
            return [f"the action can only {kind.split('_')[0]} {allowed}, not {opp.activity!r}"]
        params[activity_param] = opp.activity
    partial = entry.treatment_share_param is not None
    if partial:
        params[entry.treatment_share_param] = share
    verb = "automate" if kind == "automate_activity" else "skip"
    name = f"{verb} {opp.activity} for {seg['attribute']}={seg['value']}"
    if (why := _complete(entry, params, kind, name)) is not None:
        return [why]
    segment = f"{seg['attribute']} == {seg['value']!r}"
    treated = share if partial else 1.0
    assumptions: dict[str, tuple[float, float]] = {}
    explore: str | None = None
    evidence = [(f"{seg['attribute']}={seg['value']}: {seg['share']:.0%} of {opp.activity}'s "
                 f"cases, {seg['mean_processing_hours']:.2f} h of handling")]
    if kind == "skip_activity" or opp.activity not in twin.activities:
        acts = [opp.activity]
        changes = [AutomateActivity(activity=opp.activity, segment=segment, share=treated,
                                    automated_duration_hours=0.0)]
    else:  # the bot takes over the work of the activity's main pool on this segment
        acts = [a for a in twin.pools[twin.pool_of(opp.activity)].activities if a in twin.activities]
        measured = failures(entry.name, params) if failures is not None else None
        assumptions, (prior, notice) = automation_assumptions(frame, seg["attribute"],
                                                              [seg["value"]], acts, measured)
        if partial and entry.reversible and (measured is None or not measured.enough):
            explore = (f"the bot's failure rate on {seg['attribute']}={seg['value']} is a declared "
                       f"prior that this canary on {share:.0%} of the segment measures")
        changes = [AutomateActivity(activity=a, segment=segment, share=treated) for a in acts]
        evidence.append(f"bot failure rate {prior.low:.0%}-{prior.high:.0%}: {prior.source}")
        evidence.append(f"a failure noticed after {notice.low:.1f}-{notice.high:.1f} h: "
                        f"{notice.source}")
    scenario = changes[0] if len(changes) == 1 else Combined(changes=changes)
    label = name + (f" for {share:.0%} of matching cases" if partial else "")
    return [Candidate(action=entry.name, params=params, label=label, partial=partial,
                      cost=RULE_COST, scenario=scenario.model_dump(), assumptions=assumptions,
                      explore=explore,
                      evidence=evidence + [f"work taken over: {', '.join(acts)}"])]


def _route(entry: CatalogAction, opp: Opportunity, twin: ProcessTwin, frame: pd.DataFrame,
           pools: Mapping[str, Any], members: Mapping[str, list[str]], share: float,
           name_hint: bool, screen: Screen | None) -> list[Candidate | str]:
    target_param = _role(entry, "target")
    if _role(entry, "segment") is None or target_param is None:
        return ["the action names no segment or target parameter"]
    if opp.activity not in twin.activities:
        return [f"activity {opp.activity!r} is not in the twin"]
    source = twin.pool_of(opp.activity)
    own = map_pool(twin, source, pools, members, name_hint).state_pool
    allowed = _props(entry).get(target_param, {}).get("enum")
    out: list[Candidate | str] = []
    for queue in [str(q) for q in pools if q != own and (allowed is None or q in allowed)]:
        mapped = twin_pools_of(twin, queue, pools, members, name_hint)
        if len(mapped) != 1 or mapped[0] == source:
            out.append(f"queue {queue!r}: {len(mapped)} pools of the twin map onto it" if
                       len(mapped) != 1 else f"queue {queue!r} is the pool doing {opp.activity}")
            continue
        made = _route_to(entry, opp, twin, frame, share, source, queue, mapped[0], screen)
        out.append(made)
    return out or ["the system has no other queue to route to"]


def _route_to(entry: CatalogAction, opp: Opportunity, twin: ProcessTwin, frame: pd.DataFrame,
              share: float, source: str, queue: str, target: str,
              screen: Screen | None) -> Candidate | str:
    """The route of the best segment of ``opp``'s cases from twin pool ``source`` to ``target``
    (the system's ``queue``), or why there is none."""
    try:
        plan = route_plan(twin, source, target)
    except ScenarioError as exc:
        return f"queue {queue!r}: the twin cannot route there: {exc}"
    people = twin.pools[target].resource_names
    partial = entry.treatment_share_param is not None
    treated = share if partial else 1.0
    options: list[tuple[Mapping[str, Any], RouteSegment, str]] = []
    for seg in opp.segments:
        if _segment_value(entry, seg) is None:
            continue
        done = handled_by(frame, people, seg["attribute"], plan.enter)
        worked, total = done.get(str(seg["value"]), (0, 0))
        if worked < ROUTE_MIN_EVIDENCE:
            continue
        scenario = RouteSegment(segment=f"{seg['attribute']} == {seg['value']!r}",
                                from_pool=source, to_pool=target, share=treated)
        why = (f"{seg['attribute']}={seg['value']}: {queue}'s people did {plan.enter} in "
               f"{worked} of its {total} cases; routed, its cases skip {plan.leave} and go "
               f"straight to {plan.enter}")
        options.append((seg, scenario, why))
    if not options:
        return (f"queue {queue!r}: no segment of {opp.activity}'s cases the action can express "
                f"in which its people already did {plan.enter} (>= {ROUTE_MIN_EVIDENCE} cases)")
    try:
        ranked = sorted(options, key=lambda o: screen(o[1])) if screen else options
    except ScenarioError as exc:
        return f"queue {queue!r}: the twin cannot simulate the route: {exc}"
    seg, scenario, evidence = ranked[0]
    params: dict[str, Any] = {_role(entry, "segment"): _segment_value(entry, seg),
                              _role(entry, "target"): queue}
    if partial:
        params[entry.treatment_share_param] = share
    name = f"route {seg['attribute']}={seg['value']} to {queue}"
    if (why := _complete(entry, params, "route_segment", name)) is not None:
        return why
    if len(options) == 1:
        how = "the only segment with such evidence"
    elif screen:
        how = f"the best of {len(options)} such segments as the twin screened them"
    else:
        how = "the largest of the segments with such evidence (not screened)"
    # Routed cases free the source pool for every case there: control cases speed up too, so
    # treatment vs control cannot see the route's total effect (a switchback could).
    unmeasurable = (f"not measurable as split: the control cases share {source!r}, which the "
                    "route relieves, so treatment vs control would miss its effect"
                    if partial else None)
    return Candidate(action=entry.name, params=params, partial=partial, cost=RULE_COST,
                     label=name + (f" for {share:.0%} of matching cases" if partial else ""),
                     scenario=scenario.model_dump(), unmeasurable=unmeasurable,
                     evidence=[evidence, f"twin pool {target!r} -> queue {queue!r}; {how}"])


def _threshold(entry: CatalogAction, opp: Opportunity, frame: pd.DataFrame) -> list[Candidate | str]:
    gate = approval_gate(frame, opp.activity)
    if gate is None:
        return [f"the log shows no numeric threshold deciding who goes through {opp.activity}"]
    amounts = pd.Series(gate.amounts)
    raised = float(amounts.quantile(0.5))
    if raised <= gate.threshold:
        return ["the gated cases' median is not above the current threshold"]
    params: dict[str, Any] = {_role(entry, "threshold"): round(raised, 2)}
    label = f"{opp.activity} only from {gate.attribute} {raised:,.0f} (now from {gate.threshold:,.0f})"
    if (why := _complete(entry, params, "approval_threshold", label)) is not None:
        return [why]
    scenario = AutoApprove(activity=opp.activity, attribute=gate.attribute, below=raised)
    skipped = float((amounts < raised).mean())
    return [Candidate(action=entry.name, params=params, label=label, cost=RULE_COST,
                      scenario=scenario.model_dump(),
                      evidence=[(f"{opp.activity} runs for {gate.attribute} >= "
                                 f"{gate.threshold:,.0f} in {gate.accuracy:.0%} of cases "
                                 f"({gate.gated_cases} gated); raising it skips {skipped:.0%} of them")])]


__all__ = ["CAPACITY_KINDS", "ROUTE_MIN_EVIDENCE", "Candidate", "Dropped", "Opportunity",
           "Screen", "candidates_for", "routine_segments"]
