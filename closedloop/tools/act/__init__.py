"""The ``act`` room: the enterprise system through its connector, planning of catalog actions,
the API write and evidence reads.

Public API (import from here; the modules behind it may move):

- connector manifests (``connector``): :class:`ConnectorManifest`, :func:`load_manifest`,
  :func:`connector_document`, :func:`connector_path`, :data:`DEFAULT_CONNECTOR`;
- the bound system (``system``): :class:`System` (events by cursor, state, action requests,
  compensation, read-back), :class:`EventPosition`, :class:`EventBatch`,
  :func:`measurement_records`;
- catalog view (``catalog``): :class:`ActionSpec`, :class:`Condition`, :func:`list_catalog`;
- candidates (``candidates``): :func:`candidates_for` (:class:`Candidate`, :class:`Dropped`,
  :class:`PlanOpportunity`) from the mined process and the catalog's change kinds;
  pools of the system matched to the twin's on evidence (``pool_map``: :func:`map_pool`,
  :func:`state_members`, :class:`PoolMatch`); what the log says before a change
  (``evidence``: :func:`failure_prior`, :func:`failure_notice`, :func:`automation_assumptions`,
  :func:`approval_gate`);
- planning (``planning``): :func:`scenario_for`, :func:`candidate_inputs`,
  :func:`change_kind`, :func:`segment_share`, :func:`blast_radius` (:class:`BlastRadius`),
  :func:`risk_tier`, :func:`boundary_activities`, :func:`default_guardrails`,
  :func:`cohort_split`, :func:`compensation_description`;
- the decision (``ranking``): :func:`contract_prediction`, :func:`shortfall`,
  :func:`conservative_pct`, :func:`decide` (:class:`Weighed`);
- the one WRITE tool (``invoke``): :func:`invoke_api` with :class:`ApiRequest` / :class:`ApiResult`;
- READ tools on the enterprise system (``collect``): :func:`fetch_events`, :func:`fetch_config`;
- model text is never evidence (``prose``): :func:`guard_prose`, :func:`computed_facts`.
"""

from __future__ import annotations

from closedloop.tools.act.actionability import Actionability, actionability
from closedloop.tools.act.candidates import Candidate, Dropped, candidates_for
from closedloop.tools.act.candidates import Opportunity as PlanOpportunity
from closedloop.tools.act.catalog import ActionSpec, Condition, list_catalog
from closedloop.tools.act.collect import fetch_config, fetch_events
from closedloop.tools.act.connector import (
    DEFAULT_CONNECTOR,
    ConnectorManifest,
    connector_document,
    connector_path,
    load_manifest,
)
from closedloop.tools.act.evidence import (
    AssumedRange,
    Gate,
    approval_gate,
    automation_assumptions,
    failure_notice,
    failure_prior,
)
from closedloop.tools.act.invoke import ApiRequest, ApiResult, invoke_api
from closedloop.tools.act.planning import (
    BlastRadius,
    blast_radius,
    boundary_activities,
    candidate_inputs,
    change_kind,
    cohort_split,
    compensation_description,
    default_guardrails,
    risk_tier,
    scenario_for,
    segment_share,
)
from closedloop.tools.act.pool_map import PoolMatch, map_pool, state_members
from closedloop.tools.act.prose import Facts, GuardedProse, computed_facts, guard_prose
from closedloop.tools.act.ranking import (
    Weighed,
    conservative_pct,
    contract_prediction,
    decide,
    shortfall,
)
from closedloop.tools.act.system import (
    COHORT_TAG,
    EventBatch,
    EventPosition,
    System,
    measurement_records,
)

__all__ = [
    "COHORT_TAG",
    "DEFAULT_CONNECTOR",
    "ActionSpec",
    "Actionability",
    "ApiRequest",
    "ApiResult",
    "AssumedRange",
    "BlastRadius",
    "Candidate",
    "Condition",
    "ConnectorManifest",
    "Dropped",
    "EventBatch",
    "EventPosition",
    "Facts",
    "Gate",
    "GuardedProse",
    "PlanOpportunity",
    "PoolMatch",
    "System",
    "Weighed",
    "actionability",
    "approval_gate",
    "automation_assumptions",
    "blast_radius",
    "boundary_activities",
    "candidate_inputs",
    "candidates_for",
    "change_kind",
    "cohort_split",
    "compensation_description",
    "computed_facts",
    "connector_document",
    "connector_path",
    "conservative_pct",
    "contract_prediction",
    "decide",
    "default_guardrails",
    "failure_notice",
    "failure_prior",
    "fetch_config",
    "fetch_events",
    "guard_prose",
    "invoke_api",
    "list_catalog",
    "load_manifest",
    "map_pool",
    "measurement_records",
    "risk_tier",
    "scenario_for",
    "segment_share",
    "shortfall",
    "state_members",
]
