"""Store rows the governance, executor and recovery tests build on: a run, an opportunity, a plan
and its approval, with neutral values wherever the test is not about them."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from closedloop.store.models import Approval, LoopRun, Opportunity, Plan

# Scores that rank nothing: the tests using them are not about prioritising.
NEUTRAL_OPPORTUNITY: dict[str, Any] = {
    "process": "p",
    "pattern": "x",
    "activity": "a",
    "impact": 1,
    "feasibility": 1,
    "risk": 0,
    "priority": 1,
}


def add_run(s: Session, run_id: str, scope: str = "helpdesk", **fields: Any) -> LoopRun:
    """A loop run row (``fields`` as ``LoopRun`` takes them), flushed."""
    run = LoopRun(id=run_id, scope=scope, **fields)
    s.add(run)
    s.flush()
    return run


def opportunity(s: Session, fingerprint: str = "f", **fields: Any) -> Opportunity:
    """The opportunity with ``fingerprint`` (fingerprints are unique); a new one with neutral
    scores, overridden by ``fields``, when there is none yet."""
    found = s.exec(select(Opportunity).where(Opportunity.fingerprint == fingerprint)).first()
    if found is not None:
        return found
    opp = Opportunity(**{**NEUTRAL_OPPORTUNITY, "fingerprint": fingerprint, **fields})
    s.add(opp)
    s.flush()
    return opp


def add_plan(s: Session, run: LoopRun, opp: Opportunity, **fields: Any) -> Plan:
    """A plan of ``run`` for ``opp`` in the run's scope and catalog: hypothesis "h", low risk,
    unless ``fields`` say otherwise; flushed, so it has an id."""
    values = {
        "scope": run.scope,
        "catalog_version": run.catalog_version,
        "hypothesis": "h",
        "risk_tier": "low",
        **fields,
    }
    plan = Plan(run_id=run.id, opportunity_id=opp.id, **values)
    s.add(plan)
    s.flush()
    return plan


def add_approval(s: Session, plan: Plan, **fields: Any) -> Approval:
    """The approval row of ``plan`` (pending unless ``fields`` say otherwise), flushed."""
    approval = Approval(plan_id=plan.id, run_id=plan.run_id, **fields)
    s.add(approval)
    s.flush()
    return approval
