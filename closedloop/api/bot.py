"""The Teams bot, real protocol: ``POST /api/messages`` is a Bot Framework messaging endpoint.

Every request carries ``Authorization: Bearer <JWT>`` signed by the Bot Framework: the token is
checked for its signature against the keys of ``CLOSEDLOOP_TEAMS_OPENID_URL`` (OpenID metadata ->
JWKS), issuer ``CLOSEDLOOP_TEAMS_ISSUER``, audience = ``CLOSEDLOOP_TEAMS_APP_ID``, expiry and
not-before (5 minutes of clock skew), and its ``serviceurl`` claim must match the activity's.
A press whose activity timestamp is outside ``CLOSEDLOOP_TEAMS_PRESS_WINDOW_S`` is refused (403).

``invoke`` ``adaptiveCard/action`` (Universal Actions, ``Action.Execute``):

- ``refresh``: the card for whoever asks: approvers get Approve / Reject / Ask, everyone else the
  shared view (the shared card lists the approvers in ``refresh.userIds``);
- ``approve`` / ``reject``: approvers only; the loop resumes once (a replay gets the decided card);
  the posted card is then replaced for everyone with who decided and when;
- ``ask``: a question or comment stored with the approval for the loop's people.

When a run pauses for approval the shared card is posted to ``CLOSEDLOOP_TEAMS_CONVERSATION``
(closedloop.api.connector_client). ``message`` activities answer the text commands.
Without ``CLOSEDLOOP_TEAMS_APP_ID`` the endpoint refuses everything (503).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlmodel import select

from closedloop.api.cards import (
    COMMENT_INPUT_ID,
    REFRESH_VERB,
    VERBS,
    approval_card,
    decided_card,
    invoke_response,
    shared_card,
)
from closedloop.api.commands import run_command
from closedloop.api.connector_client import BotConnector, ConnectorError
from closedloop.api.models import Activity, CardActionValue
from closedloop.api.service import Service
from closedloop.api.teams import (
    INVOKE_NAME,
    error,
    parse_activity,
    principal_of,
    read_limited,
    within_window,
)
from closedloop.contracts import NotPaused, RunNotFound
from closedloop.identity import (
    ANALYST,
    APPROVER,
    Forbidden,
    JwksKeys,
    Principal,
    Unauthenticated,
    require,
    teams_approver_ids,
    verify_jwt,
)
from closedloop.store.db import transaction
from closedloop.store.models import AuditEvent
from closedloop.tools.errors import ToolError

log = logging.getLogger("closedloop.api.bot")
POSTED_KIND = "teams_post"


def parse_action(activity: Activity) -> tuple[str, int, str] | JSONResponse:
    """(verb, approval id, comment) of a card action, or the error response."""
    try:
        action = CardActionValue.model_validate(activity.value).action
    except ValidationError:
        return error(400, "BadRequest", "value.action with a verb is required")
    if action.verb not in (*VERBS, REFRESH_VERB):
        return error(
            400, "BadRequest", f"unknown verb; expected one of {', '.join((*VERBS, REFRESH_VERB))}"
        )
    approval_id = action.data.get("approval_id")
    if isinstance(approval_id, str) and approval_id.isdigit():
        approval_id = int(approval_id)
    if isinstance(approval_id, bool) or not isinstance(approval_id, int) or approval_id < 1:
        return error(400, "BadRequest", "value.action.data.approval_id must be a positive integer")
    comment = action.data.get(COMMENT_INPUT_ID, "")
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        return error(400, "BadRequest", "the comment must be text")
    return action.verb, approval_id, comment[:2000]


class Bot:
    """The bot's state: the issuer's keys, the Bot Connector client, and the service."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.settings = service.settings
        self.keys = JwksKeys(self.settings.teams_openid_url, openid=True)
        self.connector = BotConnector(self.settings)

    def authenticate(
        self, authorization: str | None, activity_service_url: str | None
    ) -> dict[str, Any]:
        """The verified claims of the request's Bot Framework token (Unauthenticated otherwise)."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("a Bot Framework bearer token is required")
        claims = verify_jwt(
            token.strip(), self.keys, self.settings.teams_issuer, self.settings.teams_app_id
        )
        claimed = claims.get("serviceurl")
        if (
            claimed
            and activity_service_url
            and claimed.rstrip("/") != activity_service_url.rstrip("/")
        ):
            raise Unauthenticated("the token was issued for another serviceUrl")
        return claims

    # -- cards -------------------------------------------------------------------------------

    def card_for(
        self, approval_id: int, who: Principal | None, note: str | None = None
    ) -> dict[str, Any]:
        """The card ``who`` should see now (None: the shared view)."""
        approval, plan, run = self.service.rows(approval_id)
        questions = self.service.questions(approval_id)
        if approval.status != "pending":
            return decided_card(plan, approval, run, note=note, questions=questions)
        if who is not None and who.has(APPROVER):
            return approval_card(plan, approval, run, questions=questions)
        return shared_card(
            plan, approval, run, teams_approver_ids(self.settings), questions=questions
        )

    def post_new_approval(self, approval_id: int | None) -> None:
        """Post the shared card of a new approval to the configured conversation (logged, never raised)."""
        if approval_id is None or not self.connector.configured:
            return
        approval, _, _ = self.service.rows(approval_id)
        try:
            activity_id = self.connector.post_card(self.card_for(approval_id, None))
        except ConnectorError as exc:
            log.warning("approval %s was not posted to Teams: %s", approval_id, exc)
            self.service._audit(
                approval.run_id,
                "teams-bot",
                "teams_post_failed",
                {"approval_id": approval_id, "error": str(exc)},
            )
            return
        self.service._audit(
            approval.run_id,
            "teams-bot",
            POSTED_KIND,
            {
                "approval_id": approval_id,
                "conversation": self.settings.teams_conversation,
                "activity_id": activity_id,
            },
        )

    def posted(self, approval_id: int) -> list[tuple[str, str]]:
        """(conversation, activity id) of every post of an approval's card."""
        approval, _, _ = self.service.rows(approval_id)
        with transaction(self.service.engine) as session:
            rows = session.exec(
                select(AuditEvent).where(
                    AuditEvent.run_id == approval.run_id, AuditEvent.kind == POSTED_KIND
                )
            ).all()
            return [
                (r.payload["conversation"], r.payload["activity_id"])
                for r in rows
                if r.payload.get("approval_id") == approval_id and r.payload.get("activity_id")
            ]

    def refresh_everyone(self, approval_id: int, activity: Activity) -> None:
        """Replace the posted card for everyone (only through the configured Bot Connector)."""
        if not self.connector.configured:
            return
        targets = set(self.posted(approval_id))
        if (
            activity.conversation
            and activity.reply_to_id
            and self.connector.trusts(activity.service_url)
        ):
            targets.add((activity.conversation.id, activity.reply_to_id))
        card = self.card_for(approval_id, None)
        for conversation, activity_id in sorted(targets):
            try:
                self.connector.update_card(conversation, activity_id, card)
            except ConnectorError as exc:
                log.warning("card of approval %s not refreshed for everyone: %s", approval_id, exc)

    def reply(self, activity: Activity, text: str) -> None:
        """Send a command's answer to its conversation through the configured Bot Connector."""
        if not (
            self.connector.configured
            and activity.conversation
            and activity.id
            and self.connector.trusts(activity.service_url)
        ):
            return
        try:
            self.connector.reply(activity.conversation.id, activity.id, text)
        except ConnectorError as exc:
            log.warning("reply to a Teams message failed: %s", exc)

    # -- actions -------------------------------------------------------------------------------

    def act(self, activity: Activity, verb: str, approval_id: int, comment: str) -> dict[str, Any]:
        """Carry out a card action for the presser; returns the card they see next."""
        who = principal_of(activity.from_, self.settings)
        if verb == REFRESH_VERB:
            return self.card_for(approval_id, who)
        if verb == "ask":
            if not (who.has(APPROVER) or who.has(ANALYST)):
                raise Forbidden(
                    f"{who.name} may not ask here: it needs the approver or analyst role"
                )
            if not comment.strip():
                return self.card_for(approval_id, who)
            self.service.ask(approval_id, who.name, comment, channel="teams")
            self.refresh_everyone(approval_id, activity)
            return self.card_for(approval_id, who)
        require(who, APPROVER)
        done = self.service.decide(approval_id, verb, who.name, comment, "teams")
        note = (
            "This approval had already been decided; nothing was changed."
            if done.replayed
            else None
        )
        if not done.replayed:
            self.refresh_everyone(approval_id, activity)
        return self.card_for(approval_id, who, note=note)


def build_router(service: Service) -> APIRouter:
    """``POST /api/messages`` (Bot Framework); also hooks new approvals to be posted to Teams."""
    router = APIRouter(tags=["teams"])
    bot = Bot(service)
    service.notify = bot.post_new_approval

    @router.post(
        "/api/messages",
        summary="Teams bot (Bot Framework JWT): card actions and text commands",
        responses={
            200: {"description": "invoke response with the card for the presser"},
            400: {"description": "not a card action this bot knows"},
            401: {"description": "missing, forged, expired or misaddressed token"},
            403: {"description": "outside the time window, or the presser lacks the role"},
            404: {"description": "unknown approval"},
            409: {"description": "the run is not waiting for this approval"},
            503: {"description": "no app id configured: the bot refuses everything"},
        },
    )
    async def messages(request: Request) -> JSONResponse:
        if not service.settings.teams_app_id:
            return error(
                503, "ServiceUnavailable", "the Teams bot is disabled: set CLOSEDLOOP_TEAMS_APP_ID"
            )
        body = await read_limited(request)
        if isinstance(body, JSONResponse):
            return body
        activity = parse_activity(body)
        try:
            service_url = activity.service_url if isinstance(activity, Activity) else None
            await run_in_threadpool(
                bot.authenticate, request.headers.get("authorization"), service_url
            )
        except Unauthenticated as exc:
            return error(401, "Unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"})
        if isinstance(activity, JSONResponse):
            return activity
        if not within_window(activity, service.settings.teams_press_window_s):
            return error(
                403, "Expired", "the activity's timestamp is missing or outside the accepted window"
            )
        if activity.type == "message":
            try:
                text = await run_in_threadpool(
                    run_command,
                    service,
                    principal_of(activity.from_, service.settings),
                    activity.text,
                )
            except Forbidden as exc:
                text = f"Refused: {exc}"
            await run_in_threadpool(bot.reply, activity, text)
            # The answer goes through the Bot Connector; the body repeats it for callers and tests.
            return JSONResponse({"type": "message", "text": text})
        if activity.type != "invoke":
            return JSONResponse(
                {"status": "ignored", "detail": f"activity type {activity.type[:40]!r}"}
            )
        if activity.name != INVOKE_NAME:
            return error(400, "BadRequest", f"only {INVOKE_NAME} invokes are handled")
        parsed = parse_action(activity)
        if isinstance(parsed, JSONResponse):
            return parsed
        try:
            card = await run_in_threadpool(bot.act, activity, *parsed)
        except Forbidden as exc:
            return error(403, "Forbidden", str(exc))
        except RunNotFound:
            return error(404, "NotFound", f"no approval {parsed[1]}")
        except NotPaused as exc:
            return error(409, "Conflict", str(exc))
        except ToolError as exc:
            return error(
                502, "BadGateway", f"the loop stopped on a tool error: {type(exc).__name__}"
            )
        return JSONResponse(invoke_response(card))

    return router
