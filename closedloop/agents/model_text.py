"""Apply the model-text guard to an agent's output before anything of it is stored.

Every prose field of a model's answer (``rationale``, ``hypothesis``, ``summary``, at any depth)
is labelled as model text and loses the numbers the tools did not compute
(:func:`closedloop.tools.act.guard_prose`): the computed ones are those in the task and in the
tool results the agent got, plus any ``extra`` facts the caller names (a plan's prediction).
The offline policy's text is made of computed numbers only and is left as it is. Every removal
is recorded in the audit trail (kind ``guard``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from closedloop.agents.runtime import AgentOutcome, AuditTrail
from closedloop.tools.act import Facts, computed_facts, guard_prose

OutputT = TypeVar("OutputT", bound=BaseModel)

#: Output fields holding a model's prose.
PROSE_FIELDS = frozenset({"rationale", "hypothesis", "summary"})
OFFLINE_MODEL = "closedloop-offline-rule-policy"


def is_model_text(outcome: AgentOutcome[Any]) -> bool:
    """True when a model (not the offline rule policy) wrote the outcome."""
    return not outcome.used_fallback and outcome.model != OFFLINE_MODEL


def tool_results(audit: AuditTrail, agent: str) -> list[Any]:
    """The results of the tools ``agent`` called, as the audit trail holds them."""
    return [
        e["payload"].get("result")
        for e in audit.events
        if e["actor"] == agent and e["kind"] == "tool_result"
    ]


def _guard(model: BaseModel, facts: Facts, path: str, found: list[dict[str, Any]]) -> BaseModel:
    updates: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        where = f"{path}.{name}" if path else name
        if name in PROSE_FIELDS and isinstance(value, str):
            guarded = guard_prose(value, facts)
            if guarded.text != value:
                updates[name] = guarded.text
            if guarded.removed:
                found.append({"field": where, "removed": guarded.removed})
        elif isinstance(value, BaseModel):
            updates[name] = _guard(value, facts, where, found)
        elif isinstance(value, list) and any(isinstance(v, BaseModel) for v in value):
            updates[name] = [
                _guard(v, facts, f"{where}[{i}]", found) if isinstance(v, BaseModel) else v
                for i, v in enumerate(value)
            ]
    return model.model_copy(update=updates) if updates else model


def guard_outcome(
    agent: str,
    outcome: AgentOutcome[OutputT],
    task: dict[str, Any],
    audit: AuditTrail,
    *extra: Any,
) -> OutputT:
    """``outcome.output`` with its prose guarded (see the module doc); records a ``guard`` audit
    event naming each field and the numbers removed from it."""
    if not is_model_text(outcome):
        return outcome.output
    facts = computed_facts(task, *tool_results(audit, agent), *extra)
    found: list[dict[str, Any]] = []
    output = _guard(outcome.output, facts, "", found)
    if found:
        audit.add(
            agent,
            "guard",
            {"model_text": found, "reason": "numbers the tools did not compute were removed"},
        )
    return output  # type: ignore[return-value]


__all__ = ["PROSE_FIELDS", "guard_outcome", "is_model_text", "tool_results"]
