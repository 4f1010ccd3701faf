"""The Teams outgoing webhook: ``POST /teams/messages`` answers text commands (``status``, ``kill SCOPE``).

Authentication is the Teams outgoing-webhook scheme: the request carries
``Authorization: HMAC <base64(HMAC-SHA256(key=base64decode(secret), msg=raw body))>``,
checked in constant time before the body is even parsed. Without a configured
secret (``CLOSEDLOOP_TEAMS_SECRET``) the endpoint refuses every request (503)
rather than accept unsigned ones. A forged or missing signature gets 401 and
changes nothing; a message older or newer than ``CLOSEDLOOP_TEAMS_PRESS_WINDOW_S`` is 403
(a replayed signed request). Outgoing webhooks cannot carry card actions: Approve / Reject
presses come through the Bot Framework endpoint ``/api/messages`` (closedloop.api.bot); an
``invoke`` sent here is refused with 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from closedloop.api.commands import run_command
from closedloop.api.models import Activity, ChannelAccount
from closedloop.api.service import Service
from closedloop.identity import Forbidden, Principal, teams_principal
from closedloop.settings import Settings

INVOKE_NAME = "adaptiveCard/action"
MAX_BODY_BYTES = 256 * 1024
ERROR_TYPE = "application/vnd.microsoft.error"


class SecretNotConfigured(RuntimeError):
    """CLOSEDLOOP_TEAMS_SECRET is missing or not base64."""


def secret_key(secret_b64: str | None) -> bytes:
    """The HMAC key: the base64-decoded shared secret (as Teams shows it when the webhook is created)."""
    if not secret_b64:
        raise SecretNotConfigured(
            "the Teams bot is disabled: set CLOSEDLOOP_TEAMS_SECRET to the base64 "
            "secret of the outgoing webhook; unsigned requests are refused"
        )
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
    """Who pressed or typed, as recorded: ``name (aad object id)``."""
    name = " ".join((account.name or "").split())
    aad = (account.aad_object_id or "").strip()
    if name and aad:
        who = f"{name} ({aad})"
    else:
        who = name or aad or (f"teams-id {account.id}" if account.id else "unknown teams user")
    return who[:200]


def principal_of(account: ChannelAccount, settings: Settings) -> Principal:
    """The Teams user's principal (roles from CLOSEDLOOP_TEAMS_APPROVERS / ADMINS / ANALYSTS)."""
    return teams_principal(account.id, account.aad_object_id, approver(account), settings)


def within_window(activity: Activity, window_s: float, now: datetime | None = None) -> bool:
    """True when the activity carries a timestamp within ``window_s`` of now (either way)."""
    if activity.timestamp is None:
        return False
    now = now or datetime.now(UTC)
    stamp = (
        activity.timestamp if activity.timestamp.tzinfo else activity.timestamp.replace(tzinfo=UTC)
    )
    return abs((now - stamp).total_seconds()) <= window_s


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The Universal Action error shape Teams understands, with the same HTTP status."""
    body = {"statusCode": status, "type": ERROR_TYPE, "value": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


async def read_limited(request: Request) -> bytes | JSONResponse:
    """The raw body, or a 413 answer when it is over MAX_BODY_BYTES."""
    declared = request.headers.get("content-length", "0")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return error(413, "PayloadTooLarge", f"activities are limited to {MAX_BODY_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return error(413, "PayloadTooLarge", f"activities are limited to {MAX_BODY_BYTES} bytes")
    return body


def parse_activity(body: bytes) -> Activity | JSONResponse:
    """The activity in ``body``, or a 422 answer."""
    try:
        return Activity.model_validate(json.loads(body))
    except (ValueError, ValidationError):
        return error(
            422, "BadRequest", "the body is not a Bot Framework activity with type and from"
        )


def message_reply(text: str) -> JSONResponse:
    """A plain-text reply message (what an outgoing webhook answers)."""
    return JSONResponse({"type": "message", "text": text})


def build_router(service: Service) -> APIRouter:
    """``POST /teams/messages``: the outgoing webhook's text commands."""
    router = APIRouter(tags=["teams"])

    @router.post(
        "/teams/messages",
        summary="Teams outgoing webhook: text commands (HMAC-signed)",
        responses={
            200: {"description": "a message answering the command"},
            400: {"description": "a card action: those go to /api/messages"},
            401: {"description": "missing or forged signature"},
            403: {"description": "outside the time window, or the sender lacks the role"},
            503: {"description": "no secret configured: the webhook refuses everything"},
        },
    )
    async def messages(request: Request) -> JSONResponse:
        secret = service.settings.teams_webhook_secret
        secret_b64 = secret.get_secret_value() if secret is not None else None
        try:
            secret_key(secret_b64)
        except SecretNotConfigured as exc:
            return error(503, "ServiceUnavailable", str(exc))
        body = await read_limited(request)
        if isinstance(body, JSONResponse):
            return body
        if not verify(body, request.headers.get("authorization"), secret_b64):
            return error(
                401,
                "Unauthorized",
                "missing or invalid HMAC signature",
                headers={"WWW-Authenticate": "HMAC"},
            )
        activity = parse_activity(body)
        if isinstance(activity, JSONResponse):
            return activity
        if activity.type == "invoke":
            return error(
                400,
                "BadRequest",
                "outgoing webhooks cannot carry card actions; the Bot Framework "
                "endpoint /api/messages handles Approve / Reject / Ask",
            )
        if activity.type != "message":
            return JSONResponse(
                {"status": "ignored", "detail": f"activity type {activity.type[:40]!r}"}
            )
        if not within_window(activity, service.settings.teams_press_window_s):
            return error(
                403, "Expired", "the message's timestamp is missing or outside the accepted window"
            )
        who = principal_of(activity.from_, service.settings)
        try:
            text = await run_in_threadpool(run_command, service, who, activity.text)
        except Forbidden as exc:
            return message_reply(f"Refused: {exc}")
        return message_reply(text)

    return router
