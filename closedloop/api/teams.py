"""The Teams-style approval bot: ``POST /teams/messages`` answers Adaptive Card button presses.

Authentication is the Teams outgoing-webhook scheme: the request carries
``Authorization: HMAC <base64(HMAC-SHA256(key=base64decode(secret), msg=raw body))>``,
checked in constant time before the body is even parsed. Without a configured
secret (``CLOSEDLOOP_TEAMS_SECRET``) the endpoint refuses every request (503)
rather than accept unsigned ones. A forged or missing signature gets 401 and
changes nothing. A press on an already decided approval gets the decided card
back; the loop is never resumed twice.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from closedloop.api.cards import COMMENT_INPUT_ID, VERBS, decided_card, invoke_response
from closedloop.api.models import Activity, CardActionValue, ChannelAccount
from closedloop.api.service import Service
from closedloop.contracts import NotPaused, RunNotFound
from closedloop.tools.errors import ToolError

INVOKE_NAME = "adaptiveCard/action"
MAX_BODY_BYTES = 256 * 1024
ERROR_TYPE = "application/vnd.microsoft.error"


class SecretNotConfigured(RuntimeError):
    """CLOSEDLOOP_TEAMS_SECRET is missing or not base64."""


def secret_key(secret_b64: str | None) -> bytes:
    """The HMAC key: the base64-decoded shared secret (as Teams shows it when the webhook is created)."""
    if not secret_b64:
        raise SecretNotConfigured("the Teams bot is disabled: set CLOSEDLOOP_TEAMS_SECRET to the base64 "
                                  "secret of the outgoing webhook; unsigned requests are refused")
    try:
        key = base64.b64decode(secret_b64.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SecretNotConfigured("CLOSEDLOOP_TEAMS_SECRET is not valid base64") from exc
    if not key:
        raise SecretNotConfigured("CLOSEDLOOP_TEAMS_SECRET decodes to an empty key")
    return key


def sign(body: bytes, secret_b64: str) -> str:
    """The ``Authorization`` header value for ``body``: ``HMAC <base64 digest>``."""
    digest = hmac.new(secret_key(secret_b64), body, hashlib.sha256).digest()
    return "HMAC " + base64.b64encode(digest).decode("ascii")


def verify(body: bytes, authorization: str | None, secret_b64: str | None) -> bool:
    """True when ``authorization`` is a valid HMAC signature of ``body`` (constant-time comparison)."""
    expected = hmac.new(secret_key(secret_b64), body, hashlib.sha256).digest()
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "hmac":
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, expected)


def approver(account: ChannelAccount) -> str:
    """Who pressed the button, as recorded in the approval: ``name (aad object id)``."""
    name = " ".join((account.name or "").split())
    aad = (account.aad_object_id or "").strip()
    if name and aad:
        who = f"{name} ({aad})"
    else:
        who = name or aad or (f"teams-id {account.id}" if account.id else "unknown teams user")
    return who[:200]


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # The Universal Action error shape Teams understands, with the same HTTP status.
    body = {"statusCode": status, "type": ERROR_TYPE, "value": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _parse_action(activity: Activity) -> tuple[str, int, str] | JSONResponse:
    """(verb, approval id, comment) of a card action, or the error response."""
    try:
        action = CardActionValue.model_validate(activity.value).action
    except ValidationError:
        return _error(400, "BadRequest", "value.action with a verb is required")
    if action.verb not in VERBS:
        return _error(400, "BadRequest", f"unknown verb; expected one of {', '.join(VERBS)}")
    approval_id = action.data.get("approval_id")
    if isinstance(approval_id, str) and approval_id.isdigit():
        approval_id = int(approval_id)
    if isinstance(approval_id, bool) or not isinstance(approval_id, int) or approval_id < 1:
        return _error(400, "BadRequest", "value.action.data.approval_id must be a positive integer")
    comment = action.data.get(COMMENT_INPUT_ID, "")
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        return _error(400, "BadRequest", "the comment must be text")
    return action.verb, approval_id, comment[:2000]


def build_router(service: Service) -> APIRouter:
    router = APIRouter(tags=["teams"])

    @router.post("/teams/messages", summary="Teams bot endpoint: Adaptive Card approve/reject (HMAC-signed)",
                 responses={200: {"description": "invoke response with the decided card"},
                            400: {"description": "not an approve/reject action"},
                            401: {"description": "missing or forged signature"},
                            404: {"description": "unknown approval"},
                            409: {"description": "the run is not waiting for this approval"},
                            503: {"description": "no secret configured: the bot refuses everything"}})
    async def messages(request: Request) -> JSONResponse:
        secret = service.settings.teams_webhook_secret
        secret_b64 = secret.get_secret_value() if secret is not None else None
        try:
            secret_key(secret_b64)
        except SecretNotConfigured as exc:
            return _error(503, "ServiceUnavailable", str(exc))
        declared = request.headers.get("content-length", "0")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return _error(413, "PayloadTooLarge", f"activities are limited to {MAX_BODY_BYTES} bytes")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "PayloadTooLarge", f"activities are limited to {MAX_BODY_BYTES} bytes")
        if not verify(body, request.headers.get("authorization"), secret_b64):
            return _error(401, "Unauthorized", "missing or invalid HMAC signature",
                          headers={"WWW-Authenticate": "HMAC"})
        try:
            activity = Activity.model_validate(json.loads(body))
        except (ValueError, ValidationError):
            return _error(422, "BadRequest", "the body is not a Bot Framework activity with type and from")
        if activity.type != "invoke":
            return JSONResponse({"status": "ignored", "detail": f"activity type {activity.type[:40]!r}"})
        if activity.name != INVOKE_NAME:
            return _error(400, "BadRequest", f"only {INVOKE_NAME} invokes are handled")
        parsed = _parse_action(activity)
        if isinstance(parsed, JSONResponse):
            return parsed
        verb, approval_id, comment = parsed
        try:
            done = await run_in_threadpool(service.decide, approval_id, verb, approver(activity.from_),
                                           comment, "teams")
        except RunNotFound:
            return _error(404, "NotFound", f"no approval {approval_id}")
        except NotPaused as exc:
            return _error(409, "Conflict", str(exc))
        except ToolError as exc:
            return _error(502, "BadGateway", f"the loop stopped on a tool error: {type(exc).__name__}")
        note = "This approval had already been decided; nothing was changed." if done.replayed else None
        return JSONResponse(invoke_response(decided_card(done.plan, done.approval, done.run, note=note)))

    return router

