"""Outgoing calls to the Bot Connector: post a new approval card, update it for everyone.

The bot authenticates with an app token (OAuth2 client credentials at
``CLOSEDLOOP_TEAMS_TOKEN_URL``, cached until shortly before it expires). The token is only
ever sent to the configured ``CLOSEDLOOP_TEAMS_SERVICE_URL``: a ``serviceUrl`` in an
incoming activity that differs from it gets nothing.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import quote

import httpx

from closedloop.api.cards import CONTENT_TYPE
from closedloop.api.service import normalise_url
from closedloop.settings import Settings

BOT_SCOPE = "https://api.botframework.com/.default"


class ConnectorError(RuntimeError):
    """The Bot Connector or its token endpoint refused or failed (the message says which)."""


class BotConnector:
    """Posts and updates cards in one configured Teams conversation."""

    def __init__(self, settings: Settings, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        """True when app id, password, service URL and conversation are all set."""
        s = self.settings
        return bool(
            s.teams_app_id and s.teams_app_password and s.teams_service_url and s.teams_conversation
        )

    def trusts(self, service_url: str | None) -> bool:
        """True when ``service_url`` is the configured Bot Connector (the only place tokens go)."""
        return bool(
            service_url
            and self.settings.teams_service_url
            and normalise_url(service_url) == normalise_url(self.settings.teams_service_url)
        )

    def token(self) -> str:
        """The app's access token for the Bot Connector (client credentials, cached)."""
        with self._lock:
            if self._token and self._token[1] > time.monotonic():
                return self._token[0]
            secret = self.settings.teams_app_password
            form = {
                "grant_type": "client_credentials",
                "client_id": self.settings.teams_app_id,
                "client_secret": secret.get_secret_value() if secret else "",
                "scope": BOT_SCOPE,
            }
            try:
                answer = httpx.post(
                    self.settings.teams_token_url, data=form, timeout=self.timeout_s
                )
                answer.raise_for_status()
                data = answer.json()
                token, lifetime = str(data["access_token"]), float(data.get("expires_in", 3600))
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                raise ConnectorError(
                    f"no Bot Connector token from the token endpoint: {type(exc).__name__}"
                ) from None
            self._token = (token, time.monotonic() + max(lifetime - 60, 0))
            return token

    def _call(self, method: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        url = self.settings.teams_service_url.rstrip("/") + path
        try:
            answer = httpx.request(
                method,
                url,
                json=payload,
                timeout=self.timeout_s,
                headers={"Authorization": f"Bearer {self.token()}"},
            )
            answer.raise_for_status()
            return answer.json() if answer.content else {}
        except (httpx.HTTPError, ValueError) as exc:
            raise ConnectorError(f"Bot Connector {method} failed: {type(exc).__name__}") from None

    @staticmethod
    def _message(card: dict[str, Any]) -> dict[str, Any]:
        return {"type": "message", "attachments": [{"contentType": CONTENT_TYPE, "content": card}]}

    def post_card(self, card: dict[str, Any], conversation: str | None = None) -> str:
        """Post ``card`` to the conversation; returns the new activity's id."""
        conv = quote(conversation or self.settings.teams_conversation, safe="")
        answer = self._call("POST", f"/v3/conversations/{conv}/activities", self._message(card))
        return str(answer.get("id", ""))

    def update_card(self, conversation: str, activity_id: str, card: dict[str, Any]) -> None:
        """Replace the card of a posted activity (everyone in the conversation sees the new one)."""
        conv, act = quote(conversation, safe=""), quote(activity_id, safe="")
        self._call(
            "PUT",
            f"/v3/conversations/{conv}/activities/{act}",
            {**self._message(card), "id": activity_id},
        )

    def reply(self, conversation: str, activity_id: str, text: str) -> None:
        """Answer a message in its thread (how a bot replies: not in the HTTP response)."""
        conv, act = quote(conversation, safe=""), quote(activity_id, safe="")
        self._call(
            "POST",
            f"/v3/conversations/{conv}/activities/{act}",
            {"type": "message", "text": text, "replyToId": activity_id},
        )
