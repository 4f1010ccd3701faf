"""The ``act`` room: the enterprise system through its connector, planning of catalog actions,
the API write and evidence reads.

Public API (import from here; the modules behind it may move):

- connector manifests (``connector``): :class:`ConnectorManifest`, :func:`load_manifest`,
  :func:`connector_document`, :func:`connector_path`, :data:`DEFAULT_CONNECTOR`;
- the bound system (``system``): :class:`System` (events by cursor, state, action requests,
  compensation, read-back), :class:`EventPosition`, :class:`EventBatch`,
  :func:`measurement_records`;
- catalog view (``catalog``): :class:`ActionSpec`, :class:`Condition`, :func:`list_catalog`;
- planning (``planning``): :func:`candidate_actions` (:class:`Candidate`),
  :func:`scenario_for`, :func:`pool_of_activity`, :func:`queue_of_activity`,
  :func:`change_kind`, :func:`segment_share`, :func:`blast_radius` (:class:`BlastRadius`),
  :func:`risk_tier`, :func:`boundary_activities`, :func:`default_guardrails`,
  :func:`cohort_split`, :func:`compensation_description`, :data:`ASSUMED_AUTOMATION_FAILURE`;
- the one WRITE tool (``invoke``): :func:`invoke_api` with :class:`ApiRequest` / :class:`ApiResult`;
- READ tools on the enterprise system (``collect``): :func:`fetch_events`, :func:`fetch_config`.
"""

from __future__ import annotations

from closedloop.tools.act.catalog import ActionSpec, Condition, list_catalog
from closedloop.tools.act.collect import fetch_config, fetch_events
from closedloop.tools.act.connector import (
    DEFAULT_CONNECTOR,
    ConnectorManifest,
    connector_document,
    connector_path,
    load_manifest,
)
from closedloop.tools.act.invoke import ApiRequest, ApiResult, invoke_api
from closedloop.tools.act.planning import (
    ASSUMED_AUTOMATION_FAILURE,
    BlastRadius,
    Candidate,
    blast_radius,
    boundary_activities,
    candidate_actions,
    change_kind,
    cohort_split,
    compensation_description,
    default_guardrails,
    pool_of_activity,
    queue_of_activity,
    risk_tier,
    scenario_for,
    segment_share,
)
from closedloop.tools.act.system import (
    COHORT_TAG,
    EventBatch,
    EventPosition,
    System,
    measurement_records,
)

__all__ = [
    "ASSUMED_AUTOMATION_FAILURE",
    "COHORT_TAG",
    "DEFAULT_CONNECTOR",
    "ActionSpec",
    "ApiRequest",
    "ApiResult",
    "BlastRadius",
    "Candidate",
    "Condition",
    "ConnectorManifest",
    "EventBatch",
    "EventPosition",
    "System",
    "blast_radius",
    "boundary_activities",
    "candidate_actions",
    "change_kind",
    "cohort_split",
    "compensation_description",
    "connector_document",
    "connector_path",
    "default_guardrails",
    "fetch_config",
    "fetch_events",
    "invoke_api",
    "list_catalog",
    "load_manifest",
    "measurement_records",
    "pool_of_activity",
    "queue_of_activity",
    "risk_tier",
    "scenario_for",
    "segment_share",
]
