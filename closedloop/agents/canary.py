"""Canary evidence of an automation: the Watchdog measures its bot's failures, the Planner uses them.

A new bot's failure rate on a segment is not in the log before the bot runs,
so the Planner first predicts with a declared prior range. When an automation
plan runs as a canary (a share of the segment treated), the Watchdog counts
the treated cases people had to do after all (:func:`canary_failures`) and
stores the rate as a KPI snapshot of the plan. The next Planner run looks the
snapshots up (:func:`failure_lookup`) for the same action on the same segment
and predicts with the measured interval instead of the prior, and with how long
the canary's failures went unnoticed instead of the log's rework gaps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import select

from closedloop.contracts import AutomationFailures, Guardrails
from closedloop.store.db import transaction
from closedloop.store.models import KpiSnapshot, Plan
from closedloop.tools.act import COHORT_TAG, System, change_kind, failure_notice
from closedloop.tools.act.evidence import FailureLookup
from closedloop.tools.log import ACTIVITY, CASE, RESOURCE, frame_from_records
from closedloop.tools.measure import FailureCounts, automation_failures
from closedloop.tools.measure.canary import DEFAULT_SETTLE_HOURS
from closedloop.tools.measure.cohorts import EXPERIMENT_COLUMN

__all__ = ["AUTOMATION_FAILURE_KPI", "NOTICE_KPI", "canary_failures", "failure_lookup"]

AUTOMATION_FAILURE_KPI = "automation_failure_rate"
NOTICE_KPI = "automation_failure_notice_hours"


def canary_failures(system: System, plan: Plan, scenario: Mapping[str, Any] | None,
                    baseline: pd.DataFrame | None,
                    records: list[dict[str, Any]]) -> AutomationFailures | None:
    """How often an automation plan's bot failed its treated cases in ``records`` (the events
    since the change, with cohorts), or None for other changes or without treated cases.

    ``scenario`` is the plan's twin scenario (the activities the bot took over),
    ``baseline`` the events before the change (who did that work, and how long a
    failure took to show there, which sets how long a treated case settles).
    """
    action = plan.actions[0]
    if change_kind(system.catalog, action["action"], action["params"]) != "automate_activity":
        return None
    scenario = scenario or {}
    taken_over = [c["activity"] for c in scenario.get("changes", [scenario])
                  if c.get("kind") == "automate_activity"]
    if not taken_over or not records:
        return None
    frame = frame_from_records(records)
    if EXPERIMENT_COLUMN not in frame:
        return None
    treated = frame.loc[frame[EXPERIMENT_COLUMN] == f"{COHORT_TAG}:treatment", CASE].unique()
    if len(treated) == 0:
        return None
    people, settle = None, DEFAULT_SETTLE_HOURS
    if baseline is not None and RESOURCE in baseline:
        people = baseline.loc[baseline[ACTIVITY].isin(taken_over), RESOURCE].dropna().unique()
        settle = max(settle, failure_notice(baseline, taken_over).high)
    ends = Guardrails.model_validate(plan.guardrails).end_activities
    return automation_failures(frame, treated, taken_over, ends, people, settle)


def _same_change(plan: Plan, action: str, params: Mapping[str, Any], share_param: str | None) -> bool:
    if not plan.actions or plan.actions[0].get("action") != action:
        return False
    theirs = {k: v for k, v in plan.actions[0].get("params", {}).items() if k != share_param}
    return theirs == {k: v for k, v in params.items() if k != share_param}


def failure_lookup(engine: Engine, system: System) -> FailureLookup:
    """The canary evidence stored so far, as the Planner asks for it: the failures measured by
    every plan of the same action on the same segment (any treated share), each plan's last."""
    with transaction(engine) as session:
        rows = session.exec(select(KpiSnapshot, Plan)
                            .where(KpiSnapshot.kpi.in_([AUTOMATION_FAILURE_KPI, NOTICE_KPI]))
                            .where(KpiSnapshot.plan_id == Plan.id)
                            .order_by(KpiSnapshot.id)).all()
        measured = [(snap.model_copy(), plan.model_copy()) for snap, plan in rows]

    def lookup(action: str, params: Mapping[str, Any]) -> FailureCounts | None:
        if action not in system.catalog.actions:
            return None
        share_param = system.catalog.action(action).treatment_share_param
        rates: dict[int, KpiSnapshot] = {}
        notices: dict[int, KpiSnapshot] = {}
        for snap, plan in measured:
            if _same_change(plan, action, params, share_param):
                (rates if snap.kpi == AUTOMATION_FAILURE_KPI else notices)[snap.plan_id] = snap
        if not rates:
            return None
        noticed = max(notices.values(), key=lambda n: n.n, default=None)
        return FailureCounts(failed=sum(round(r.mean * r.n) for r in rates.values()),
                             cases=sum(r.n for r in rates.values()), plans=sorted(rates),
                             notice_hours=(noticed.ci_low, noticed.ci_high) if noticed else None,
                             notice_n=noticed.n if noticed else 0)

    return lookup
