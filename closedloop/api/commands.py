"""Text commands typed to the bot in Teams: ``status`` and ``kill SCOPE``.

Both Teams paths use them: the outgoing webhook (HMAC) and the Bot Framework endpoint (JWT).
``kill`` sets the scope's kill switch and needs the admin role
(``CLOSEDLOOP_TEAMS_ADMINS``); ``status`` needs any role.
"""

from __future__ import annotations

import re

from closedloop.api.cards import escape_markdown
from closedloop.api.models import SCOPE_PATTERN
from closedloop.api.service import Service
from closedloop.identity import ADMIN, Forbidden, Principal, require

HELP = "Commands: 'status' (pending approvals, policies), 'kill SCOPE' (stop every write of a scope, admins)."
_MENTION = re.compile(r"<at>.*?</at>", re.IGNORECASE | re.DOTALL)


def command_words(text: str | None) -> list[str]:
    """The words of a message without the bot's @mention (Teams puts ``<at>name</at>`` in the text)."""
    return _MENTION.sub(" ", text or "").split()


def run_command(service: Service, who: Principal, text: str | None) -> str:
    """The answer to a text command (one message of plain text); Forbidden for a missing role."""
    words = command_words(text)
    if not words:
        return HELP
    verb = words[0].lower()
    if verb == "status":
        if not who.roles:
            raise Forbidden(f"{who.name} holds no closedloop role")
        pending = service.approvals(status="pending", limit=20)
        lines = [f"{len(pending)} approval(s) pending" + (":" if pending else ".")]
        lines += [
            f"- approval {a.id}, scope {escape_markdown(a.scope, 60)}: {escape_markdown(a.hypothesis, 120)}"
            for a in pending[:10]
        ]
        policies = service.policies()
        lines += [
            f"scope {escape_markdown(p.scope, 60)}: {p.mode}, kill switch {'ON' if p.kill_switch else 'off'}"
            for p in policies[:20]
        ]
        return "\n".join(lines)
    if verb == "kill":
        if len(words) != 2 or not re.fullmatch(SCOPE_PATTERN, words[1]):
            return "Usage: kill SCOPE (e.g. kill helpdesk)"
        require(who, ADMIN)
        policy = service.policy(words[1], kill_switch=True, by=who.name, channel="teams")
        return f"Kill switch ON for scope {escape_markdown(policy.scope, 60)}: no more writes until an admin turns it off."
    return f"Unknown command {escape_markdown(verb, 30)!r}. {HELP}"
