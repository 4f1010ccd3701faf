"""Header login for the chat: trusted only when configured, refused otherwise.

The rules are pinned without a server; then a real ``chainlit run`` on loopback is started
with ``CLOSEDLOOP_CHAT_TRUSTED_HEADER`` and a role mapping (its ``/auth/header`` signs in the
person the header names, with the mapped roles; a browser behind that "proxy" lands in the chat
signed in), and one without it (the header gets nobody in).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.datastructures import Headers

from closedloop.chat.auth import ChatAuthError
from closedloop.chat.header_auth import (
    HeaderAuthSettings,
    HeaderLogin,
    authenticate_header,
    configured_header_login,
)
from tests.helpers_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_chat_flow import ChatServer

HEADER = "X-Forwarded-User"
ROLES = "olga:analyst+approver;ana:analyst"


def login(header: str = HEADER, roles: str = ROLES) -> HeaderLogin | None:
    return configured_header_login(
        HeaderAuthSettings(
            CLOSEDLOOP_CHAT_TRUSTED_HEADER=header, CLOSEDLOOP_CHAT_HEADER_ROLES=roles
        )
    )


def test_header_login_is_off_unless_configured() -> None:
    assert login("", "") is None
    assert authenticate_header({HEADER: "olga"}, None) is None


@pytest.mark.parametrize(
    ("header", "roles", "says"),
    [
        ("", ROLES, "CLOSEDLOOP_CHAT_TRUSTED_HEADER is not"),
        (HEADER, "", "names nobody"),
        ("Cookie", ROLES, "is not a header a proxy sets"),
        ("X Forwarded", ROLES, "is not a header a proxy sets"),
        (HEADER, "olga:root", "roles must be some of"),
        (HEADER, "olga", r"expected name:role\+role"),
    ],
)
def test_half_or_bad_configuration_is_refused(header: str, roles: str, says: str) -> None:
    with pytest.raises(ChatAuthError, match=says):
        login(header, roles)


def test_the_header_names_a_mapped_person() -> None:
    config = login()
    olga = authenticate_header(Headers({"x-forwarded-user": " olga "}), config)
    assert olga is not None and olga.name == "olga"
    assert olga.roles == {"analyst", "approver"} and olga.via == "chat"
    for refused in (
        {},
        {HEADER: ""},
        {HEADER: "mallory"},  # not in the mapping, and no "*"
        {HEADER: "mallory, olga"},  # a proxy that appended to what the browser sent
        {HEADER: "olga\u202e"},
        {"X-Other-User": "olga"},
    ):
        assert authenticate_header(refused, config) is None, refused
    twice = Headers(raw=[(b"x-forwarded-user", b"olga"), (b"x-forwarded-user", b"ana")])
    assert authenticate_header(twice, config) is None
    anyone = login(roles="olga:approver;*:analyst")
    who = authenticate_header({HEADER: "mallory"}, anyone)
    assert who is not None and who.roles == {"analyst"}
    assert authenticate_header({HEADER: "*"}, anyone) is None


@pytest.fixture(scope="module")
def header_chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    chat = ChatServer(tmp_path_factory.mktemp("headerchat"))
    del chat.env["CLOSEDLOOP_CHAT_USERS"]
    chat.env.update(CLOSEDLOOP_CHAT_TRUSTED_HEADER=HEADER, CLOSEDLOOP_CHAT_HEADER_ROLES=ROLES)
    chat.start()
    try:
        yield chat
    finally:
        chat.stop()


def test_a_configured_chat_signs_in_whom_the_header_names(header_chat: ChatServer) -> None:
    with httpx.Client(base_url=header_chat.url, timeout=30) as client:
        assert client.get("/auth/config").json()["headerAuth"] is True
        assert client.post("/auth/header").status_code == 401
        assert client.post("/auth/header", headers={HEADER: "mallory"}).status_code == 401
        assert client.post("/auth/header", headers={HEADER: "olga, ana"}).status_code == 401
        assert client.get("/user").status_code == 401
        signed = client.post("/auth/header", headers={HEADER: "olga"})
        assert signed.status_code == 200, signed.text
        user = client.get("/user").json()  # with the session cookie it set
        assert user["identifier"] == "olga"
        assert user["metadata"] == {"roles": ["analyst", "approver"], "provider": "header"}


@pytest.mark.browser
def test_a_browser_behind_the_proxy_lands_in_the_chat_signed_in(header_chat: ChatServer) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            # The "proxy": every request of this browser carries the header.
            context = browser.new_context(extra_http_headers={HEADER: "ana"})
            page = context.new_page()
            page.goto(header_chat.url)
            hello = page.locator(".message-content", has_text="Signed in as ana")
            hello.wait_for(timeout=60_000)
            assert "(analyst)" in hello.inner_text()
            assert page.get_by_role("button", name="Kill switch").count() == 0  # not an admin
            page.screenshot(path=str(Path(header_chat.home) / "header-login.png"))
        finally:
            browser.close()


@pytest.fixture(scope="module")
def password_chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    chat = ChatServer(tmp_path_factory.mktemp("passwordchat"))  # users, no trusted header
    chat.start()
    try:
        yield chat
    finally:
        chat.stop()


def test_without_configuration_a_header_gets_nobody_in(password_chat: ChatServer) -> Any:
    with httpx.Client(base_url=password_chat.url, timeout=30) as client:
        assert client.get("/auth/config").json()["headerAuth"] is False
        refused = client.post("/auth/header", headers={HEADER: "olga", "X-Forwarded-User": "olga"})
        assert refused.status_code == 400 and "No header_auth_callback" in refused.text
        assert client.get("/user", headers={HEADER: "olga"}).status_code == 401
