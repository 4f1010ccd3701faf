"""Adaptive Cards (schema 1.5) for approvals: the request and the answer after a decision.

Everything that comes from logs, plans, approvers or the enterprise API is
data. It only ever appears in ``TextBlock.text``, cut to a sane length and
passed through :func:`escape_markdown`; verbs and action data are ours
(``approve``/``reject`` and the approval id). The cards carry no URLs at all.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import datetime
from typing import Any

from closedloop.store.models import Approval, LoopRun, Plan

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.5"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
VERBS = ("approve", "reject")
COMMENT_INPUT_ID = "comment"
COMMENT_MAX_CHARS = 1000

# Backslash escapes are not honoured by every Adaptive Card renderer
# (microsoft/AdaptiveCards#523), so the characters that form Markdown links,
# autolinks, emphasis, code or HTML are replaced by look-alikes no renderer
# treats as syntax. Without ASCII brackets and angle brackets no link can form.
_LOOKALIKES = str.maketrans({
    "[": "\uff3b",  # FULLWIDTH LEFT SQUARE BRACKET
    "]": "\uff3d",  # FULLWIDTH RIGHT SQUARE BRACKET
    "<": "\u2039",  # SINGLE LEFT-POINTING ANGLE QUOTATION MARK
    ">": "\u203a",  # SINGLE RIGHT-POINTING ANGLE QUOTATION MARK
    "*": "\u2217",  # ASTERISK OPERATOR
    "`": "\u02cb",  # MODIFIER LETTER GRAVE ACCENT
    "~": "\u223c",  # TILDE OPERATOR
    "&": "\uff06",  # FULLWIDTH AMPERSAND (no HTML entities)
    "\\": "\u29f5",  # REVERSE SOLIDUS OPERATOR
})
# Hosts that renderers might auto-link: scheme://..., www..., name.tld.
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,30}):(?=//)")
_HOSTLIKE = re.compile(r"(?i)(?<![\w.\-])(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}(?![\w\-])")
# "_" only emphasises at a word edge; inside names like customer_tier it is left alone.
_EDGE_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
_LINE_START = re.compile(r"^(?:[-+#]|\d{1,9}[.)])(?=\s|$)")


def escape_markdown(text: Any, limit: int = 300) -> str:
    """``text`` as one inert line for a TextBlock: no links, emphasis, lists or HTML, at most ``limit`` chars.

    Control and format characters (bidi overrides, zero-width) are dropped,
    whitespace is collapsed, the text is cut (with an ellipsis), Markdown
    characters become look-alikes and URLs/host names are defanged
    (``https[:]//evil[.]example``) so nothing is auto-linked.
    """
    raw = "" if text is None else str(text)
    kept = "".join(" " if ch.isspace() else ch for ch in raw
                   if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    line = " ".join(kept.split())
    if len(line) > limit:
        line = line[: max(limit - 1, 0)].rstrip() + "\u2026"
    line = _EDGE_UNDERSCORE.sub("\u02cd", line.translate(_LOOKALIKES))  # MODIFIER LETTER LOW MACRON
    line = _SCHEME.sub(r"\1[:]", line)
    line = _HOSTLIKE.sub(lambda m: m.group(0).replace(".", "[.]"), line)
    if _LINE_START.match(line):
        line = "\u2060" + line  # WORD JOINER: never a list, heading or quote marker
    return line


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _field(label: str, value: str) -> dict[str, Any]:
    """A labelled line; ``label`` is ours, ``value`` must already be escaped."""
    return _text(f"**{label}:** {value}")


def _num(value: Any, fmt: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return escape_markdown(value, 30) if value is not None else "n/a"
    return format(value, fmt)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "n/a"


def _compact(value: Any, limit: int) -> str:
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "), default=str)
    return escape_markdown(value, limit)


def _actions_text(plan: Plan) -> list[dict[str, Any]]:
    actions = plan.actions or []
    if not actions:
        return [_field("Action", "none")]
    blocks = []
    for i, action in enumerate(actions[:5]):
        if isinstance(action, dict):
            name = escape_markdown(action.get("action", "?"), 60)
            params = _compact(action.get("params", {}), 400)
        else:
            name, params = _compact(action, 200), "n/a"
        label = "Action" if len(actions) == 1 else f"Action {i + 1}"
        blocks.append(_field(label, f"{name} with {params}"))
    if len(actions) > 5:
        blocks.append(_text(f"... and {len(actions) - 5} more action(s)", isSubtle=True))
    return blocks


def _predicted_text(predicted: dict[str, Any]) -> str:
    if not predicted or "delta_pct" not in predicted:
        return "not available"
    kpi = escape_markdown(predicted.get("kpi", "cycle_time_hours"), 60)
    return (f"{_num(predicted.get('delta_hours'), '+.2f')} h ({_num(predicted.get('delta_pct'), '+.1f')}%) "
            f"in {kpi}; 95% interval {_num(predicted.get('ci_low_pct'), '+.1f')}% to "
            f"{_num(predicted.get('ci_high_pct'), '+.1f')}% on a baseline of "
            f"{_num(predicted.get('baseline_hours'), '.2f')} h")


def _blast_text(blast: dict[str, Any]) -> str:
    share = blast.get("share_of_cases")
    if isinstance(share, int | float) and not isinstance(share, bool):
        text = f"{share:.0%} of cases"
    else:
        text = "unknown share of cases"
    if "reversible" in blast:
        text += ", reversible" if blast["reversible"] is True else ", NOT reversible"
    return text


def _card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None,
          fallback: str = "") -> dict[str, Any]:
    card: dict[str, Any] = {"type": "AdaptiveCard", "$schema": CARD_SCHEMA, "version": CARD_VERSION, "body": body}
    if actions:
        card["actions"] = actions
    if fallback:
        card["fallbackText"] = fallback
    return card


def _plan_summary(plan: Plan, run: LoopRun) -> list[dict[str, Any]]:
    return [
        _field("Hypothesis", escape_markdown(plan.hypothesis, 500)),
        *_actions_text(plan),
        _field("Predicted change", _predicted_text(plan.predicted or {})),
        _field("Risk tier", escape_markdown(plan.risk_tier, 40)),
        _field("Blast radius", _blast_text(plan.blast_radius or {})),
        _field("Guardrails", _compact(plan.guardrails or {}, 400)),
        _text(f"Run {escape_markdown(run.id, 80)} · scope {escape_markdown(run.scope, 80)}", isSubtle=True,
              size="Small"),
    ]


def approval_card(plan: Plan, approval: Approval, run: LoopRun) -> dict[str, Any]:
    """The card that asks for a decision on ``plan``: facts, a comment box, Approve / Reject."""
    data = {"approval_id": approval.id}
    body = [
        _text(f"Approval #{approval.id}: plan #{plan.id} for scope {escape_markdown(plan.scope, 80)}",
              size="Medium", weight="Bolder"),
        _text(f"Requested {_when(approval.requested_at)}", isSubtle=True, spacing="None"),
        *_plan_summary(plan, run),
        {"type": "Input.Text", "id": COMMENT_INPUT_ID, "label": "Comment (optional)", "isMultiline": True,
         "maxLength": COMMENT_MAX_CHARS, "placeholder": "Why approve or reject?"},
    ]
    actions = [
        {"type": "Action.Execute", "title": "Approve", "verb": "approve", "data": dict(data), "style": "positive"},
        {"type": "Action.Execute", "title": "Reject", "verb": "reject", "data": dict(data), "style": "destructive"},
    ]
    return _card(body, actions, fallback=f"Approval #{approval.id} for plan #{plan.id} waits for a decision.")


def decided_card(plan: Plan, approval: Approval, run: LoopRun, note: str | None = None) -> dict[str, Any]:
    """The card that replaces the request once ``approval`` is decided (no buttons)."""
    status = approval.status if approval.status in ("approved", "rejected") else "pending"
    color = {"approved": "Good", "rejected": "Attention"}.get(status, "Warning")
    by = escape_markdown(approval.decided_by or "nobody yet", 120)
    body = [
        _text(f"Approval #{approval.id}: plan #{plan.id} {status.upper()}", size="Medium", weight="Bolder",
              color=color),
        _text(f"by {by} via {escape_markdown(approval.channel, 40)} at {_when(approval.decided_at)}",
              isSubtle=True, spacing="None"),
    ]
    if approval.comment:
        body.append(_field("Comment", escape_markdown(approval.comment, 500)))
    body.append(_field("Plan status", escape_markdown(plan.status, 40)))
    if note:
        body.append(_text(escape_markdown(note, 200), isSubtle=True))
    body += _plan_summary(plan, run)
    return _card(body, fallback=f"Approval #{approval.id} for plan #{plan.id}: {status}.")


def invoke_response(card: dict[str, Any]) -> dict[str, Any]:
    """The body Teams expects in answer to an ``adaptiveCard/action`` invoke: replace the card."""
    return {"statusCode": 200, "type": CONTENT_TYPE, "value": card}
