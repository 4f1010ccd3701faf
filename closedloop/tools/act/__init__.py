"""The ``act`` room: the action catalog, planning of catalog actions, the API write and evidence reads.

Public API (import from here; the modules behind it may move):

- catalog (``catalog``): :data:`CATALOG`, :class:`ActionSpec`, :class:`Condition`,
  :class:`SetQueueStaffing`, :class:`CreateRule`, :func:`list_catalog`,
  :func:`validate_params`, :func:`build_request`, :func:`build_compensation`;
- planning (``planning``): :func:`candidate_actions` (:class:`Candidate`),
  :func:`scenario_for`, :func:`queue_of_activity`, :func:`segment_share`,
  :func:`blast_radius` (:class:`BlastRadius`), :func:`risk_tier`,
  :func:`boundary_activities`, :func:`default_guardrails`, :func:`cohort_split`,
  :func:`compensation_description`, :data:`ASSUMED_AUTOMATION_FAILURE`;
- the one WRITE tool (``invoke``): :func:`invoke_api` with :class:`ApiRequest` / :class:`ApiResult`;
- READ tools on the enterprise API (``collect``): :func:`fetch_events`, :func:`fetch_config`.
"""

from __future__ import annotations

from closedloop.tools.act.catalog import (
    CATALOG,
    ActionSpec,
    Condition,
    CreateRule,
    SetQueueStaffing,
    build_compensation,
    build_request,
    list_catalog,
    validate_params,
)
from closedloop.tools.act.collect import fetch_config, fetch_events
from closedloop.tools.act.invoke import ApiRequest, ApiResult, invoke_api
from closedloop.tools.act.planning import (
    ASSUMED_AUTOMATION_FAILURE,
    BlastRadius,
    Candidate,
    blast_radius,
    boundary_activities,
    candidate_actions,
    cohort_split,
    compensation_description,
    default_guardrails,
    queue_of_activity,
    risk_tier,
    scenario_for,
    segment_share,
)

__all__ = [
    "ASSUMED_AUTOMATION_FAILURE",
    "CATALOG",
    "ActionSpec",
    "ApiRequest",
    "ApiResult",
    "BlastRadius",
    "Candidate",
    "Condition",
    "CreateRule",
    "SetQueueStaffing",
    "blast_radius",
    "boundary_activities",
    "build_compensation",
    "build_request",
    "candidate_actions",
    "cohort_split",
    "compensation_description",
    "default_guardrails",
    "fetch_config",
    "fetch_events",
    "invoke_api",
    "list_catalog",
    "queue_of_activity",
    "risk_tier",
    "scenario_for",
    "segment_share",
    "validate_params",
]
