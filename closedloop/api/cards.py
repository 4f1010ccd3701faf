"""Adaptive Cards (schema 1.5) for approvals: the request and the answer after a decision.

An approver should decide in seconds, so a card says, in words: what changes (title), why
(the planner's hypothesis, labelled as its words), the predicted effect per KPI with its 95 %
interval and the assumptions that widen it, risk, blast radius, cohort and trial length, the
guardrails that abort the change, and how it is undone. No raw JSON.

Three views: :func:`approval_card` (for approvers: comment box, Approve / Reject / Ask),
:func:`shared_card` (posted to the channel: no buttons, ``refresh.userIds`` lists the approvers
so their Teams clients fetch the approver view), :func:`decided_card` (everyone, after the
decision: by whom, when).

Everything that comes from logs, plans, approvers or the enterprise API is data: it only
appears in ``text`` properties, cut to a sane length and passed through
:func:`escape_markdown`. Verbs and action data are ours. Only characters every Teams and
browser font has are used for our own text (no glyph renders as an empty box).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any

from closedloop.store.models import Approval, LoopRun, Plan

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.5"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
VERBS = ("approve", "reject", "ask")
REFRESH_VERB = "refresh"
COMMENT_INPUT_ID = "comment"
COMMENT_MAX_CHARS = 1000
_MAX_QUESTIONS = 5

# Backslash escapes are not honoured by every renderer (microsoft/AdaptiveCards#523), so the
# characters that form Markdown links, emphasis, code or HTML are replaced. Replacements are
# ASCII or in WGL4 (every Segoe UI / DejaVu / Arial build has them): full-width look-alikes
# rendered as empty boxes in Teams. Without "](" no link can form; "(a)(b)" is plain text.
_REPLACE = str.maketrans(
    {
        "[": "(",
        "]": ")",
        "<": "\u2039",  # SINGLE LEFT-POINTING ANGLE QUOTATION MARK (WGL4)
        ">": "\u203a",  # SINGLE RIGHT-POINTING ANGLE QUOTATION MARK (WGL4)
        "*": "\u00b7",  # MIDDLE DOT
        "`": "'",
        "~": "\u2248",  # ALMOST EQUAL TO (WGL4)
        "&": "+",  # no HTML entities
        "\\": "/",
    }
)
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,30}):(?=//)")
_HOSTLIKE = re.compile(
    r"(?i)(?<![\w.\-])(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}(?![\w\-])"
)
# "_" only emphasises at a word edge; inside names like customer_tier it is left alone.
_EDGE_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
_LINE_START = re.compile(r"^(?:[-+]|\d{1,9}[.)])(?=\s|$)")
_COMPENSATION = re.compile(r"^([A-Z]+) (\S+) \(([^)]*)\)$")


def escape_markdown(text: Any, limit: int = 300) -> str:
    """``text`` as one inert line for a TextBlock: no links, emphasis, lists or HTML, at most ``limit`` chars.

    Control and format characters (bidi overrides, zero-width) are dropped, whitespace is
    collapsed, the text is cut (with "..."), Markdown characters are replaced by plain ones and
    URLs/host names are defanged (``https(:)//evil(.)example``) so nothing is auto-linked.
    """
    raw = "" if text is None else str(text)
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in raw
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    line = " ".join(kept.split())
    if len(line) > limit:
        line = line[: max(limit - 3, 0)].rstrip() + "..."
    line = _EDGE_UNDERSCORE.sub("-", line.translate(_REPLACE))
    line = _SCHEME.sub(r"\1(:)", line)
    line = _HOSTLIKE.sub(lambda m: m.group(0).replace(".", "(.)"), line)
    if _LINE_START.match(line):
        line = "'" + line  # never a list marker
    return line


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _heading(text: str) -> dict[str, Any]:
    return _text(text, weight="Bolder", spacing="Medium", separator=True)


def _facts(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """A FactSet; titles are ours, values must already be escaped."""
    return {"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in pairs]}


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _num(value: Any, fmt: str) -> str:
    if not _is_num(value):
        return escape_markdown(value, 30) if value is not None else "n/a"
    return format(value, fmt)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "n/a"


def _words(key: Any) -> str:
    return escape_markdown(str(key).replace("_", " ").strip(), 60)


def _value_words(value: Any, limit: int = 120) -> str:
    """A parameter value in words: dicts as ``key value`` pairs, lists comma-separated (no JSON)."""
    if isinstance(value, dict):
        parts = [f"{_words(k)} {_value_words(v, 60)}" for k, v in list(value.items())[:6]]
        return escape_markdown(", ".join(parts), limit)
    if isinstance(value, list):
        return escape_markdown(", ".join(_value_words(v, 40) for v in value[:6]), limit)
    if _is_num(value) and 0 < abs(value) < 1:
        return f"{value:.0%}"
    return escape_markdown(value, limit)


def change_title(plan: Plan) -> str:
    """The change in plain words, e.g. ``Set staffing: queue L1, agents 4``."""
    actions = [a for a in (plan.actions or []) if isinstance(a, dict)]
    if not actions:
        return "No change to the system"
    first = actions[0]
    name = _words(first.get("action", "change")).capitalize()
    params = first.get("params") or {}
    detail = (
        ", ".join(
            f"{_words(k)} {_value_words(v, 80)}"
            for k, v in list(params.items())[:4]
            if not isinstance(v, dict)
        )
        if isinstance(params, dict)
        else ""
    )
    more = f" (+{len(actions) - 1} more)" if len(actions) > 1 else ""
    return escape_markdown(f"{name}: {detail}{more}" if detail else f"{name}{more}", 160)


def _action_lines(plan: Plan) -> list[dict[str, Any]]:
    blocks = []
    for action in (plan.actions or [])[:3]:
        if not isinstance(action, dict):
            continue
        params = action.get("params") or {}
        pairs = (
            [(_words(k).capitalize(), _value_words(v)) for k, v in list(params.items())[:8]]
            if isinstance(params, dict)
            else [("Parameters", _value_words(params))]
        )
        blocks.append(_text(f"{_words(action.get('action', '?')).capitalize()}:", spacing="Small"))
        if pairs:
            blocks.append(_facts(pairs))
    return blocks


def _effect_lines(predicted: dict[str, Any]) -> list[dict[str, Any]]:
    if not predicted or not _is_num(predicted.get("delta_pct")):
        return [_text("Predicted effect: not available (no simulation backs this plan).")]
    kpi = _words(predicted.get("kpi", "cycle_time_hours")).replace(" hours", "")
    head = (
        f"{kpi.capitalize()}: {_num(predicted.get('delta_pct'), '+.1f')} % "
        f"({_num(predicted.get('delta_hours'), '+.2f')} h per case on "
        f"{_num(predicted.get('baseline_hours'), '.2f')} h), 95 % interval "
        f"{_num(predicted.get('ci_low_pct'), '+.1f')} % to {_num(predicted.get('ci_high_pct'), '+.1f')} %"
    )
    blocks = [_text(head)]
    if _is_num(predicted.get("p90_pct")):
        blocks.append(
            _text(
                f"Cautious estimate (9 chances in 10 of doing at least this well): "
                f"{predicted['p90_pct']:+.1f} %",
                isSubtle=True,
                spacing="None",
            )
        )
    assumptions = [a for a in predicted.get("assumptions") or [] if isinstance(a, dict)][:4]
    if assumptions:
        said = "; ".join(
            f"{_words(a.get('name', '?'))} between {_num(a.get('low'), '.3g')} and "
            f"{_num(a.get('high'), '.3g')} ({escape_markdown(a.get('source', 'declared'), 40)})"
            for a in assumptions
        )
        blocks.append(_text(f"Assumptions that widen it: {said}", isSubtle=True, spacing="None"))
    else:
        blocks.append(
            _text(
                "Assumptions that widen it: none declared (simulation noise and case "
                "resampling only).",
                isSubtle=True,
                spacing="None",
            )
        )
    return blocks


def _share(value: Any) -> str:
    return f"{value:.0%}" if _is_num(value) else "unknown"


def _reach_facts(plan: Plan) -> dict[str, Any]:
    blast, cohort, guard = plan.blast_radius or {}, plan.cohort or {}, plan.guardrails or {}
    reach = f"{_share(blast.get('share_of_cases'))} of cases"
    if "reversible" in blast:
        reach += ", reversible" if blast["reversible"] is True else ", NOT reversible"
    split = (
        f"{_share(cohort.get('treatment_share', blast.get('treatment_share')))} get the change, "
        f"{_share(cohort.get('control_share'))} stay as they are (control)"
    )
    days = cohort.get("duration_days") or (plan.predicted or {}).get("horizon_days")
    duration = (
        f"{_num(days, '.0f')} days"
        if _is_num(days)
        else f"until each cohort has {_num(guard.get('min_cases_per_cohort'), 'd')} finished cases, "
        "then the Watchdog decides"
    )
    return _facts(
        [
            ("Risk", escape_markdown(plan.risk_tier, 40)),
            ("Blast radius", reach),
            ("Cohorts", split),
            ("Trial", duration),
        ]
    )


def guardrails_in_words(guard: dict[str, Any]) -> str:
    """The abort conditions of a plan as one sentence."""
    if not guard:
        return "No guardrails recorded: the change is not watched automatically."
    limits = []
    if _is_num(guard.get("max_relative_worsening")):
        limits.append(
            f"cycle time worsens by more than {guard['max_relative_worsening']:.0%} against control"
        )
    thresholds = guard.get("thresholds") if isinstance(guard.get("thresholds"), dict) else {}
    for key, words in (
        ("max_rework_increase_points", "rework rises by more than {}"),
        ("max_reopen_increase_points", "reopened cases rise by more than {}"),
        ("max_failure_increase_points", "failures rise by more than {}"),
        ("max_sla_drop_points", "SLA attainment drops by more than {}"),
        ("max_cost_increase_pct", "cost per case rises by more than {}"),
    ):
        value = thresholds.get(key)
        if _is_num(value):
            unit = " %" if key.endswith("_pct") else (" point" if value == 1 else " points")
            limits.append(words.format(f"{value:g}{unit}"))
    text = (
        "Abort and undo automatically if " + "; or ".join(limits) + "."
        if limits
        else "Watched by the Watchdog against control."
    )
    if _is_num(guard.get("max_writes")):
        text += f" At most {guard['max_writes']} write(s) to the system."
    if _is_num(guard.get("sla_hours")):
        text += f" SLA: {guard['sla_hours']:g} h."
    extra = sorted(
        set(guard)
        - {
            "max_relative_worsening",
            "thresholds",
            "max_writes",
            "sla_hours",
            "min_cases_per_cohort",
            "start_activities",
            "end_activities",
            "reopen_activities",
            "failure_activities",
        }
    )
    if extra:
        text += (
            " Also: "
            + ", ".join(f"{_words(k)} {_value_words(guard[k], 60)}" for k in extra[:4])
            + "."
        )
    return escape_markdown(text, 600)


def compensation_in_words(plan: Plan) -> str:
    """How the change is undone, in words."""
    hows = [c.get("how") for c in plan.compensations or [] if isinstance(c, dict) and c.get("how")]
    if not hows:
        reversible = (plan.blast_radius or {}).get("reversible")
        return (
            "Undone by reversing the change through the connector."
            if reversible is True
            else "No undo recorded for this change."
        )
    out = []
    for how in hows[:3]:
        found = _COMPENSATION.match(str(how))
        if found:
            out.append(
                f"undone by the system's {_words(found.group(3))} call "
                f"({found.group(1)} {escape_markdown(found.group(2), 80)})"
            )
        elif str(how).startswith("irreversible"):
            out.append("cannot be undone automatically: the connector declares no undo")
        else:
            out.append(escape_markdown(how, 200))
    text = "; ".join(out)
    return text[0].upper() + text[1:] + "."


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
    blocks = [_heading(f"Questions asked ({len(questions)})")]
    for q in questions[-_MAX_QUESTIONS:]:
        at = q.get("at")
        when = _when(at) if isinstance(at, datetime) else ""
        blocks.append(
            _text(
                f"{escape_markdown(q.get('by'), 80)} ({when}): {escape_markdown(q.get('text'), 300)}",
                spacing="Small",
            )
        )
    return blocks


def _plan_summary(plan: Plan, run: LoopRun) -> list[dict[str, Any]]:
    return [
        _text(
            f"Why (the planner's words): {escape_markdown(plan.hypothesis, 500)}", spacing="Small"
        ),
        _heading("Predicted effect"),
        *_effect_lines(plan.predicted or {}),
        _heading("Who is affected"),
        _reach_facts(plan),
        _heading("Guardrails"),
        _text(guardrails_in_words(plan.guardrails or {})),
        _heading("Undo"),
        _text(compensation_in_words(plan)),
        _heading("What the system is told"),
        *_action_lines(plan),
        _text(
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
        _text(change_title(plan), size="Large", weight="Bolder", color=color),
        _text(
            f"{state} · approval {approval.id} · scope {escape_markdown(plan.scope, 80)} · requested "
            f"{_when(approval.requested_at)}",
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
        _text(
            f"{status.capitalize()} by {by} via {escape_markdown(approval.channel, 40)} at "
            f"{_when(approval.decided_at)}",
            weight="Bolder",
            color=color,
        ),
    ]
    if approval.comment:
        body.append(_text(f"Comment: {escape_markdown(approval.comment, 500)}"))
    body.append(_text(f"Plan status: {escape_markdown(plan.status, 40)}", isSubtle=True))
    if note:
        body.append(_text(escape_markdown(note, 200), isSubtle=True))
    body += _plan_summary(plan, run) + _questions(questions)
    return _card(body, fallback=f"Approval {approval.id} ({change_title(plan)}): {status}.")


def invoke_response(card: dict[str, Any]) -> dict[str, Any]:
    """The body Teams expects in answer to an ``adaptiveCard/action`` invoke: replace the card."""
    return {"statusCode": 200, "type": CONTENT_TYPE, "value": card}
