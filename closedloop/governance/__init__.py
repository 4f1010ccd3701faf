"""Governance: how much a scope may do on its own, and every change to that.

One package owns the rules over the store's ``Policy`` rows, one module per job:

- ``rules``: the modes, risk tiers, default caps, who counts as a person, and the errors;
- ``policy``: a scope's policy (created on first use), changing it (always audited, naming
  who and through which channel, every version kept), promotions on recorded evidence
  (:mod:`closedloop.autonomy`) confirmed by a named human, the kill switches (per scope and
  global);
- ``caps``: the caps enforced at execution;
- ``reviews``: people's shadow reviews, the evidence for shadow -> assisted;
- ``routing``: the gate's routing of a plan (a pure function) and how a verdict moves a
  scope's autonomy.

The gate and learn nodes, the executor, the REST API and the CLI all go through here
(``from closedloop.governance import ...``). It imports only the store, the settings and
the autonomy evidence: no graph, agent, tool or surface.
"""

from __future__ import annotations

from closedloop.governance.caps import check_execution_caps, within_caps
from closedloop.governance.policy import (
    check_kill_switch,
    check_promotion,
    find_policy,
    is_person,
    kill_switch_on,
    policy_audit_id,
    policy_for,
    policy_versions,
    set_caps,
    set_policy,
)
from closedloop.governance.reviews import (
    ReviewPlanMissing,
    ReviewRefused,
    ShadowReview,
    review_shadow_plan,
    review_view,
)
from closedloop.governance.routing import (
    GateDecision,
    apply_verdict,
    autonomy_change,
    route_plan,
)
from closedloop.governance.rules import (
    COUNTED_STATUSES,
    DEFAULT_CAPS,
    DEMOTION,
    GLOBAL_SCOPE,
    MODES,
    NOT_A_PERSON,
    RISK_TIERS,
    CapExceeded,
    GovernanceError,
    KillSwitchOn,
    Mode,
    PolicyError,
    PromotionRefused,
    Route,
)

__all__ = [
    "COUNTED_STATUSES",
    "DEFAULT_CAPS",
    "DEMOTION",
    "GLOBAL_SCOPE",
    "MODES",
    "NOT_A_PERSON",
    "RISK_TIERS",
    "CapExceeded",
    "GateDecision",
    "GovernanceError",
    "KillSwitchOn",
    "Mode",
    "PolicyError",
    "PromotionRefused",
    "ReviewPlanMissing",
    "ReviewRefused",
    "Route",
    "ShadowReview",
    "apply_verdict",
    "autonomy_change",
    "check_execution_caps",
    "check_kill_switch",
    "check_promotion",
    "find_policy",
    "is_person",
    "kill_switch_on",
    "policy_audit_id",
    "policy_for",
    "policy_versions",
    "review_shadow_plan",
    "review_view",
    "route_plan",
    "set_caps",
    "set_policy",
    "within_caps",
]
