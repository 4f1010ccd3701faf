"""The chat's Done-when flow in a real browser (headless Debian chromium driven by playwright).

An operator logs in, uploads a log whose headers detection cannot read, maps its
columns, sees the process map and the bottleneck, asks a what-if question and gets
the predicted effect with its interval, approves the loop's plan and sees the loop
go on to its verdict. An analyst without the approver role sees no Approve button,
and the conversation is still there after the server restarts.

The browser records every request: none may leave the machine (fonts, stylesheets
and scripts all come from loopback). A step whose content does not come into view
by itself (the view must follow new messages) fails. Screenshots of every step are
kept in ``$CLOSEDLOOP_SCREENSHOTS`` (default ``.closedloop/screenshots``, git-ignored)
under ``chat-flow/``.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from closedloop.chat.auth import hash_password
from tests.test_chat_answers import unusual_log
from tests.test_chat_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    LOOP_TIMEOUT_MS,
    LOOPBACK,
    MINING_TIMEOUT_MS,
    NO_CALL_OUT,
    free_port,
    stop,
    wait_until_serving,
)

pytestmark = pytest.mark.browser

REPO_ROOT = Path(__file__).resolve().parents[1]
APP = REPO_ROOT / "app.py"
SHOTS = (
    Path(os.environ.get("CLOSEDLOOP_SCREENSHOTS") or REPO_ROOT / ".closedloop" / "screenshots")
    / "chat-flow"
)
PASSWORDS = {"olga": "olga-approves", "ana": "ana-analyses"}
ROLES = {"olga": "analyst+approver+admin", "ana": "analyst"}
VIEWPORT = {"width": 1280, "height": 800}  # a laptop screen: below the fold is a real place here
ASK_TIMEOUT_MS = 120_000
THREAD_URL = re.compile(r"/thread/[0-9a-f-]+$")  # where a conversation lives once it is a thread

# True when the bottom of ``el`` (the newest content; all of it when it fits, unless the
# conversation is scrolled as far down as it goes) is inside the visible part of the conversation.
IN_VIEW_JS = """(el) => {
  let box = el.parentElement;
  while (box && !['auto', 'scroll'].includes(getComputedStyle(box).overflowY)) box = box.parentElement;
  const frame = (box || document.documentElement).getBoundingClientRect();
  const r = el.getBoundingClientRect();
  const fits = r.height <= frame.height;
  const atEnd = box && box.scrollTop + box.clientHeight >= box.scrollHeight - 2;
  return r.height > 0 && r.bottom <= frame.bottom + 2 && r.bottom >= frame.top
    && (!fits || atEnd || r.top >= frame.top - 2);
}"""


class ChatServer:
    """``chainlit run app.py`` with chat users, in its own app root and CLOSEDLOOP_HOME."""

    def __init__(self, base: Path) -> None:
        self.app_root, self.home = base / "app", base / "home"
        (self.app_root / ".chainlit").mkdir(parents=True)
        self.home.mkdir()
        shutil.copy(
            REPO_ROOT / ".chainlit" / "config.toml", self.app_root / ".chainlit" / "config.toml"
        )
        shutil.copy(REPO_ROOT / "chainlit.md", self.app_root / "chainlit.md")
        shutil.copytree(REPO_ROOT / "public", self.app_root / "public")
        self.database = self.home / "closedloop.db"
        users = ";".join(
            f"{name}:{ROLES[name]}:{hash_password(pw, iterations=2000)}"
            for name, pw in PASSWORDS.items()
        )
        self.env = {k: v for k, v in os.environ.items() if k not in NO_CALL_OUT}
        self.env.update(
            CHAINLIT_APP_ROOT=str(self.app_root),
            CLOSEDLOOP_HOME=str(self.home),
            DATABASE_URL=f"sqlite:///{self.database}",
            CLOSEDLOOP_CHAT_USERS=users,
            PYTHONUNBUFFERED="1",
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = base / "chainlit.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chainlit",
                    "run",
                    str(APP),
                    "--headless",
                    "--port",
                    str(self.port),
                    "--host",
                    "127.0.0.1",
                ],
                cwd=self.app_root,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until_serving(self.url, self.proc, self.log)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"Debian chromium not found at {CHROMIUM}; install it with scripts/install-system-deps.sh"
        )
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    chat = ChatServer(tmp_path_factory.mktemp("chatflow"))
    chat.start()
    try:
        yield chat
    finally:
        chat.stop()


@pytest.fixture(scope="module")
def shots() -> Path:
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    return SHOTS


@pytest.fixture(scope="module")
def browser(server: ChatServer) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Session:
    """One browser context on the chat: every request recorded, remote ones refused."""

    def __init__(self, browser: Any, server: ChatServer, shots: Path, prefix: str) -> None:
        self.context = browser.new_context(viewport=VIEWPORT)
        self.page = self.context.new_page()
        self.server, self.shots, self.prefix, self.count = server, shots, prefix, 0
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.route("**/*", self._only_loopback)

    @staticmethod
    def _only_loopback(route: Any) -> None:
        if urlparse(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            route.abort()

    @property
    def remote(self) -> list[str]:
        return [
            u
            for u in self.requests
            if urlparse(u).scheme in ("http", "https", "ws", "wss")
            and urlparse(u).hostname not in LOOPBACK
        ]

    def shot(self, name: str) -> Path:
        self.count += 1
        path = self.shots / f"{self.prefix}-{self.count:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        assert path.stat().st_size > 5_000
        return path

    def login(self, name: str) -> None:
        self.page.goto(self.server.url)
        self.page.get_by_label("User name").fill(name)
        self.page.locator("input[type=password]").fill(PASSWORDS[name])
        self.page.get_by_role("button", name="Sign In").click()
        self.page.get_by_role("button", name="Upload a log").last.wait_for(timeout=60_000)

    def message(self, text: str) -> Any:
        return self.page.locator(".message-content", has_text=text).last

    def wait_in_view(self, locator: Any, timeout: int = 30_000) -> None:
        """Wait until ``locator`` has scrolled into view by itself (nobody scrolls in this test).

        The locator is resolved again at every check: the chat re-renders messages (a handle
        taken once can be detached and would never come into view).
        """
        from playwright.sync_api import Error as PlaywrightError

        locator.wait_for(timeout=timeout)
        deadline = time.monotonic() + timeout / 1000
        while True:
            try:
                if locator.evaluate(IN_VIEW_JS, timeout=5_000):
                    return
            except PlaywrightError:
                pass  # re-rendered between resolving and evaluating: resolve it again
            if time.monotonic() > deadline:
                raise AssertionError(f"{locator} did not come into view by itself")
            self.page.wait_for_timeout(200)

    def upload(self, path: Path) -> None:
        """Give ``path`` to the waiting upload box; fails unless its upload starts.

        The first press in a new conversation makes it a thread: Chainlit fetches the thread
        list and then moves the page from ``/`` to ``/thread/<id>``, which mounts the whole chat
        again, upload box included. A file given to the box before that move went to a box
        being thrown away and nothing happened (the first upload did nothing in 2 runs of 6).
        So wait for the move, then check that the file is on its way to the server.
        """
        self.page.wait_for_url(THREAD_URL, timeout=60_000)
        self.page.get_by_role("button", name="Browse Files").last.wait_for(timeout=ASK_TIMEOUT_MS)
        with self.page.expect_request(
            lambda r: r.method == "POST" and urlparse(r.url).path == "/project/file",
            timeout=30_000,
        ):
            self.page.set_input_files("#ask-button-input", str(path))

    def ask(self, text: str) -> None:
        box = self.page.locator("#chat-input")
        box.fill(text)
        box.press("Enter")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def session_factory(browser: Any, server: ChatServer, shots: Path) -> Iterator[Any]:
    opened: list[Session] = []

    def make(prefix: str) -> Session:
        opened.append(Session(browser, server, shots, prefix))
        return opened[-1]

    yield make
    for s in opened:
        s.shot("last-seen")  # where each session ended (on a failure: what the person saw)
        s.close()


def test_operator_maps_a_log_asks_a_what_if_and_approves_the_loop(
    session_factory: Any, server: ChatServer, tmp_path: Path
) -> None:
    chat = session_factory("approver")
    page = chat.page
    log = unusual_log(tmp_path / "tickets.csv")

    chat.page.goto(server.url)
    page.get_by_label("User name").wait_for(timeout=60_000)
    chat.shot("login")
    chat.login("olga")
    chat.wait_in_view(chat.message("Signed in as olga"))
    assert "LLMs can make mistakes" not in page.content()
    page.get_by_text("No language model: offline rules route your questions").wait_for()
    chat.shot("welcome")

    # Upload a log with unusual headers and map its columns from the chat.
    page.get_by_role("button", name="Upload a log").last.click()
    chat.upload(log)
    intro = chat.message("Map the columns of tickets.csv")
    chat.wait_in_view(intro, timeout=ASK_TIMEOUT_MS)
    assert "ColumnMapping" not in intro.inner_text()
    for question, column in (
        ("case id", "Ticket Nr"),
        ("activity", "Step"),
        ("completed", "Finished"),
        ("started", "Began"),
        ("who did the step", "Handled by"),
    ):
        chat.wait_in_view(chat.message(question), timeout=ASK_TIMEOUT_MS)
        button = page.get_by_role("button", name=column, exact=True).last
        chat.wait_in_view(button)
        if column == "Ticket Nr":
            chat.shot("mapping")
        button.click()
    mapped = chat.message("Column mapping:")
    mapped.wait_for(timeout=ASK_TIMEOUT_MS)
    assert "case id = Ticket Nr; activity = Step; completed at = Finished" in mapped.inner_text()

    # The map and the bottleneck.
    summary = chat.message("Mining summary: tickets.csv")
    summary.wait_for(timeout=MINING_TIMEOUT_MS)
    image = summary.locator("img[alt='process-map.png']")
    chat.wait_in_view(image)
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 200", arg=image.element_handle()
    )
    rows = summary.locator("table").first.locator("tbody tr")
    assert rows.first.locator("td").nth(1).inner_text() == "Second line fix"
    assert "300 cases" in summary.inner_text()
    link = summary.get_by_role("link", name="Open the interactive process map")
    href = link.get_attribute("href")
    assert href and href.startswith("/closedloop/maps/")
    interactive = page.request.get(server.url + href)  # with the session's login cookie
    assert (
        interactive.status == 200
        and "<svg" in interactive.text()
        and "Second line fix" in interactive.text()
    )
    with pytest.raises(urllib.error.HTTPError) as refused:  # no login cookie
        urllib.request.urlopen(server.url + href, timeout=10)
    assert refused.value.code == 401
    chat.shot("process-map")

    chat.ask("why are tickets slow?")
    why = chat.message("Why cases are slow in tickets.csv")
    chat.wait_in_view(why.locator("table"), timeout=MINING_TIMEOUT_MS)
    assert "Bottleneck: Second line fix." in why.inner_text()
    chat.shot("why-slow")

    # A what-if question answered through the twin, with its tool calls as steps.
    chat.ask("what if we add two people to second line?")
    effect = chat.message("is the team")
    effect.wait_for(timeout=MINING_TIMEOUT_MS)
    chat.wait_in_view(effect.locator("table"))
    text = effect.inner_text()
    assert "What if: adding 2 people to second line" in text
    assert "Second line fix" in text and "2 → 4" in text
    cells = effect.locator("table tbody tr").first.locator("td").all_inner_texts()
    assert (
        cells[0].startswith("cycle time per case") and cells[1].endswith("%") and " to " in cells[2]
    )
    for step in ("twin.fit_twin", "twin.resolve_pool", "twin.predict"):
        assert page.get_by_text(f"Used {step}", exact=False).count() >= 1, step
    chat.shot("what-if")

    # The closed loop: the plan with its predicted effect, Approve in view, then the verdict.
    page.get_by_role("button", name="Start the closed loop (sandbox)").last.click()
    approve = page.get_by_role("button", name="Approve", exact=True)
    stopped = chat.message("No plan:").or_(chat.message("The closed loop failed"))
    approve.or_(stopped).first.wait_for(timeout=LOOP_TIMEOUT_MS)
    if not approve.is_visible():
        chat.shot("no-plan")
        pytest.fail(f"the loop stopped without a plan to approve:\n{stopped.first.inner_text()}")
    chat.wait_in_view(approve)
    plan = chat.message("Approve this change?").inner_text()
    assert "Predicted:" in plan and "95% interval" in plan
    chat.shot("plan")

    chat.ask("what is pending my approval?")
    pending = chat.message("Pending approvals (1)")
    chat.wait_in_view(pending)
    assert "Nothing waits" not in pending.inner_text()
    chat.shot("pending")

    approve.click()
    status = chat.message("Rollout status of scope")
    status.wait_for(timeout=LOOP_TIMEOUT_MS)
    assert "Executions:" in status.inner_text() and "succeeded" in status.inner_text()
    verdict = chat.message("Verdict for run")
    verdict.wait_for(timeout=LOOP_TIMEOUT_MS)
    chat.wait_in_view(verdict.get_by_text("Audit chain:"))
    text = verdict.inner_text()
    for part in (
        "approved by olga (chat)",
        "Decision:",
        "Realized (measured)",
        "Predicted (simulation)",
    ):
        assert part in text, part
    chat.shot("verdict")

    with sqlite3.connect(f"file:{server.database}?mode=ro", uri=True) as db:
        approvals = db.execute("SELECT status, channel, decided_by FROM approval").fetchall()
        verdicts = db.execute("SELECT decision FROM verdict").fetchall()
    assert approvals == [("approved", "chat", "olga (chat)")]
    assert len(verdicts) == 1
    assert chat.remote == [], f"requests left the machine: {chat.remote}"
    assert chat.errors == []


def test_analyst_sees_the_plan_but_cannot_approve(session_factory: Any) -> None:
    chat = session_factory("analyst")
    chat.login("ana")
    page = chat.page
    assert page.get_by_role("button", name="Kill switch").count() == 0  # admins only
    page.get_by_role("button", name="Start the closed loop (sandbox)").last.click()
    waiting = chat.message("An approver decides this change")
    waiting.or_(chat.message("No plan:")).first.wait_for(timeout=LOOP_TIMEOUT_MS)
    if not waiting.is_visible():
        pytest.fail("the loop stopped without a plan")
    chat.wait_in_view(waiting)
    assert page.get_by_role("button", name="Approve", exact=True).count() == 0
    chat.ask("what is pending my approval?")
    pending = chat.message("Pending approvals")
    chat.wait_in_view(pending)
    assert "You do not hold the approver role" in pending.inner_text()
    chat.shot("no-approve-button")
    assert chat.remote == [] and chat.errors == []


def test_history_survives_a_restart(session_factory: Any, server: ChatServer) -> None:
    server.stop()
    server.start()
    chat = session_factory("history")
    chat.login("olga")
    page = chat.page
    page.locator("#header #sidebar-trigger-button").click()
    past = page.locator("a[href^='/thread/']", has_text="Log tickets.csv")
    past.first.wait_for(timeout=30_000)
    past.first.click()
    chat.message("is the team").wait_for(timeout=30_000)
    assert "What if: adding 2 people to second line" in chat.message("is the team").inner_text()
    chat.message("Verdict for run").wait_for(timeout=30_000)
    chat.shot("history-after-restart")
    assert chat.remote == [] and chat.errors == []
