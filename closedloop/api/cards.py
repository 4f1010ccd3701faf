"""Adaptive Cards (schema 1.5) for approvals: the request and the answer after a decision.

An approver should decide in seconds, so a card says, in words: what changes (title), why
(the planner's hypothesis, labelled as its words), the predicted effect per KPI with its 95 %
interval and the assumptions that widen it, risk, blast radius, cohort and trial length, the
guardrails that abort the change, and how it is undone (:mod:`closedloop.api.card_plan`).
No raw JSON; all data text is escaped (:mod:`closedloop.api.card_text`).

Three views: :func:`approval_card` (for approvers: comment box, Approve / Reject / Ask),
:func:`shared_card` (posted to the channel: no buttons, ``refresh.userIds`` lists the approvers
so their Teams clients fetch the approver view), :func:`decided_card` (everyone, after the
decision: by whom, when).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from closedloop.api.card_plan import (
    action_lines,
    change_title,
    compensation_in_words,
    effect_lines,
    guardrails_in_words,
    reach_facts,
)
from closedloop.api.card_text import escape_markdown, heading, text_block, when
from closedloop.store.models import Approval, LoopRun, Plan

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.5"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
VERBS = ("approve", "reject", "ask")
REFRESH_VERB = "refresh"
COMMENT_INPUT_ID = "comment"
COMMENT_MAX_CHARS = 1000
_MAX_QUESTIONS = 5


def _card(
    body: list[dict[str, Any]],
    actions: list[dict[str, Any]] | None = None,
    fallback: str = "",
    refresh: dict[str, Any] | None = None,
) -> dict[str, Any]:
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "body": body,
    }
    if actions:
        card["actions"] = actions
    if refresh:
        card["refresh"] = refresh
    if fallback:
        card["fallbackText"] = fallback
    return card


def _questions(questions: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if not questions:
        return []
    blocks = [heading(f"Questions asked ({len(questions)})")]
    for q in questions[-_MAX_QUESTIONS:]:
        at = q.get("at")
        said_at = when(at) if isinstance(at, datetime) else ""
        blocks.append(
            text_block(
                f"{escape_markdown(q.get('by'), 80)} ({said_at}): {escape_markdown(q.get('text'), 300)}",
                spacing="Small",
            )
        )
    return blocks


def _plan_summary(plan: Plan, run: LoopRun) -> list[dict[str, Any]]:
    return [
        text_block(
            f"Why (the planner's words): {escape_markdown(plan.hypothesis, 500)}", spacing="Small"
        ),
        heading("Predicted effect"),
        *effect_lines(plan.predicted or {}),
        heading("Who is affected"),
        reach_facts(plan),
        heading("Guardrails"),
        text_block(guardrails_in_words(plan.guardrails or {})),
        heading("Undo"),
        text_block(compensation_in_words(plan)),
        heading("What the system is told"),
        *action_lines(plan),
        text_block(
            f"Plan {plan.id} of run {escape_markdown(run.id, 80)}, scope {escape_markdown(run.scope, 80)}",
            isSubtle=True,
            size="Small",
            spacing="Medium",
        ),
    ]


def _header(
    plan: Plan, approval: Approval, state: str, color: str = "Default"
) -> list[dict[str, Any]]:
    return [
        text_block(change_title(plan), size="Large", weight="Bolder", color=color),
        text_block(
            f"{state} · approval {approval.id} · scope {escape_markdown(plan.scope, 80)} · requested "
            f"{when(approval.requested_at)}",
            isSubtle=True,
            spacing="None",
        ),
    ]


def approval_card(
    plan: Plan, approval: Approval, run: LoopRun, questions: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The approver's card: facts, a comment box, Approve / Reject / Ask."""
    data = {"approval_id": approval.id}
    body = [
        *_header(plan, approval, "Waiting for your decision"),
        *_plan_summary(plan, run),
        *_questions(questions),
        {
            "type": "Input.Text",
            "id": COMMENT_INPUT_ID,
            "label": "Comment or question",
            "isMultiline": True,
            "maxLength": COMMENT_MAX_CHARS,
            "placeholder": "Why approve or reject, or what you need to know",
        },
    ]
    actions = [
        {
            "type": "Action.Execute",
            "title": "Approve",
            "verb": "approve",
            "data": dict(data),
            "style": "positive",
        },
        {
            "type": "Action.Execute",
            "title": "Reject",
            "verb": "reject",
            "data": dict(data),
            "style": "destructive",
        },
        {"type": "Action.Execute", "title": "Ask for more", "verb": "ask", "data": dict(data)},
    ]
    return _card(
        body,
        actions,
        fallback=f"Approval {approval.id}: {change_title(plan)} waits for a decision.",
    )


def shared_card(
    plan: Plan,
    approval: Approval,
    run: LoopRun,
    approver_ids: list[str],
    questions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The card posted to the channel: the facts without buttons; approvers' clients refresh it
    to :func:`approval_card` (``refresh.userIds``)."""
    body = [
        *_header(plan, approval, "Waiting for an approver"),
        *_plan_summary(plan, run),
        *_questions(questions),
    ]
    refresh = {
        "action": {
            "type": "Action.Execute",
            "verb": REFRESH_VERB,
            "data": {"approval_id": approval.id},
        },
        "userIds": list(approver_ids)[:60],
    }
    return _card(
        body,
        refresh=refresh,
        fallback=f"Approval {approval.id}: {change_title(plan)} waits for an approver.",
    )


def decided_card(
    plan: Plan,
    approval: Approval,
    run: LoopRun,
    note: str | None = None,
    questions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The card that replaces the request once ``approval`` is decided (no buttons)."""
    status = approval.status if approval.status in ("approved", "rejected") else "pending"
    color = {"approved": "Good", "rejected": "Attention"}.get(status, "Warning")
    by = escape_markdown(approval.decided_by or "nobody yet", 120)
    body = [
        *_header(plan, approval, status.capitalize(), color),
        text_block(
            f"{status.capitalize()} by {by} via {escape_markdown(approval.channel, 40)} at "
            f"{when(approval.decided_at)}",
            weight="Bolder",
            color=color,
        ),
    ]
    if approval.comment:
        body.append(text_block(f"Comment: {escape_markdown(approval.comment, 500)}"))
    body.append(text_block(f"Plan status: {escape_markdown(plan.status, 40)}", isSubtle=True))
    if note:
        body.append(text_block(escape_markdown(note, 200), isSubtle=True))
    body += _plan_summary(plan, run) + _questions(questions)
    return _card(body, fallback=f"Approval {approval.id} ({change_title(plan)}): {status}.")


def invoke_response(card: dict[str, Any]) -> dict[str, Any]:
    """The body Teams expects in answer to an ``adaptiveCard/action`` invoke: replace the card."""
    return {"statusCode": 200, "type": CONTENT_TYPE, "value": card}


__all__ = [
    "COMMENT_INPUT_ID",
    "COMMENT_MAX_CHARS",
    "CONTENT_TYPE",
    "REFRESH_VERB",
    "VERBS",
    "approval_card",
    "change_title",
    "compensation_in_words",
    "decided_card",
    "escape_markdown",
    "guardrails_in_words",
    "invoke_response",
    "shared_card",
]
