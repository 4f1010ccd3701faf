"""Typed seams between the loop's layers: predictions, measurements, step records, approvals.

A leaf package (imports nothing of closedloop outside itself): tools return these models,
agents and graph nodes build them, surfaces (CLI, API, chat) read their JSON.

Step records keep the JSON shape the loop has always written: an optional
field that was never given is left out of ``model_dump()`` (as a key that was
never put in the dict), while a field explicitly set to ``None`` stays.
"""

from __future__ import annotations

from closedloop.contracts.base import (
    Record,
    RunStatus,
)
from closedloop.contracts.measurement import (
    AutomationFailures,
    CohortStats,
    DesignChoice,
    DesignName,
    EffectEstimate,
    GuardrailCheck,
    GuardrailKpis,
    GuardrailResult,
    Guardrails,
    GuardrailThresholds,
    KpiMeasurement,
    RateStat,
    SequentialDecision,
    SwitchbackSchedule,
    SwitchBlock,
)
from closedloop.contracts.prediction import (
    Prediction,
)
from closedloop.contracts.runs import (
    ApprovalAnswer,
    InvalidApproval,
    NotPaused,
    RunNotFound,
    parse_approval,
)
from closedloop.contracts.steps import (
    AgentStep,
    ApprovalStep,
    Bottleneck,
    ExecuteStep,
    ExecutionRecord,
    GateStep,
    LearnStep,
    ObserveStep,
    OpportunityRef,
    PlanStep,
    RollbackStep,
    Step,
    SwitchStep,
    TriageStep,
    WatchStep,
    parse_steps,
)

__all__ = [
    "AgentStep",
    "ApprovalAnswer",
    "ApprovalStep",
    "AutomationFailures",
    "Bottleneck",
    "CohortStats",
    "DesignChoice",
    "DesignName",
    "EffectEstimate",
    "ExecuteStep",
    "ExecutionRecord",
    "GateStep",
    "GuardrailCheck",
    "GuardrailKpis",
    "GuardrailResult",
    "GuardrailThresholds",
    "Guardrails",
    "InvalidApproval",
    "KpiMeasurement",
    "LearnStep",
    "NotPaused",
    "ObserveStep",
    "OpportunityRef",
    "PlanStep",
    "Prediction",
    "RateStat",
    "Record",
    "RollbackStep",
    "RunNotFound",
    "RunStatus",
    "SequentialDecision",
    "Step",
    "SwitchBlock",
    "SwitchStep",
    "SwitchbackSchedule",
    "TriageStep",
    "WatchStep",
    "parse_approval",
    "parse_steps",
]
