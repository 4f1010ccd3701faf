"""The Chainlit chat (app.py) in a real browser: headless Debian chromium driven by playwright.

One ``chainlit run app.py`` server per module, on a free loopback port, with its
app root, store and CLOSEDLOOP_HOME in a temporary folder. The browser may only
talk to loopback: every other request (Chainlit's page links Google Fonts and a
KaTeX stylesheet, which the chat removes) is aborted and recorded, and every test
checks that none was attempted.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
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

from closedloop.chat.render import WORD_JOINER
from closedloop.tools.mining.mine import MiningReport, mine_file

pytestmark = pytest.mark.browser

REPO_ROOT = Path(__file__).resolve().parents[1]
APP = REPO_ROOT / "app.py"
HELPDESK = REPO_ROOT / "closedloop" / "data" / "helpdesk.xes.gz"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Variables that would make the server call out (a real LLM, a remote API, Chainlit's cloud layer).
NO_CALL_OUT = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "CLOSEDLOOP_SANDBOX_URL",
    "CLOSEDLOOP_SANDBOX_TOKEN",
    "LITERAL_API_KEY",
    "LITERAL_API_URL",
    "CHAINLIT_AUTH_SECRET",
    "CHAINLIT_URL",
    # `chainlit run` in CI mode (CI set, as CI systems do) puts a fake OPENAI_API_KEY into its
    # own environment, which would read as a configured model.
    "CI",
)
START_TIMEOUT_S = 180
MINING_TIMEOUT_MS = 240_000
LOOP_TIMEOUT_MS = 420_000


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"chainlit exited with {proc.returncode}:\n{log.read_text(errors='replace')}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(
        f"chainlit did not answer on {url} in {START_TIMEOUT_S} s:\n"
        f"{log.read_text(errors='replace')}"
    )


def stop(proc: subprocess.Popen) -> None:
    """End the server and whatever it started (its own process group), politely first."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``chainlit run app.py --headless`` on a free port; killed at the end whatever happens."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"Debian chromium not found at {CHROMIUM}; install it with "
            "scripts/install-system-deps.sh (make system-deps)"
        )
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    base = tmp_path_factory.mktemp("chat")
    app_root, home = base / "app", base / "home"
    (app_root / ".chainlit").mkdir(parents=True)
    home.mkdir()
    shutil.copy(REPO_ROOT / ".chainlit" / "config.toml", app_root / ".chainlit" / "config.toml")
    shutil.copy(REPO_ROOT / "chainlit.md", app_root / "chainlit.md")
    shutil.copytree(REPO_ROOT / "public", app_root / "public")
    database = home / "closedloop.db"
    env = {k: v for k, v in os.environ.items() if k not in NO_CALL_OUT}
    env.update(
        CHAINLIT_APP_ROOT=str(app_root),
        CLOSEDLOOP_HOME=str(home),
        DATABASE_URL=f"sqlite:///{database}",
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = base / "chainlit.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chainlit",
                "run",
                str(APP),
                "--headless",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ],
            cwd=app_root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_serving(url, proc, log)
        yield {"url": url, "log": log, "database": database}
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser(chat_server: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, chat_server: dict[str, Any]) -> Iterator[Any]:
    """A fresh chat session; only loopback requests get through; alerts and page errors are recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 2400})
    page = context.new_page()
    page.dialogs, page.errors, page.blocked = [], [], []  # type: ignore[attr-defined]

    def route(request_route: Any) -> None:
        if urlparse(request_route.request.url).hostname in LOOPBACK:
            request_route.continue_()
        else:
            page.blocked.append(request_route.request.url)  # type: ignore[attr-defined]
            request_route.abort()

    def on_dialog(dialog: Any) -> None:
        page.dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()

    page.route("**/*", route)
    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: page.errors.append(str(error)))  # type: ignore[attr-defined]
    page.goto(chat_server["url"])
    page.get_by_role("button", name="Helpdesk tickets").wait_for(timeout=60_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def helpdesk_report() -> MiningReport:
    """What the app should show for the helpdesk log, computed with the tool itself."""
    return mine_file(HELPDESK)


def message(page: Any, text: str) -> Any:
    """The (latest) chat message whose content contains ``text``."""
    return page.locator(".message-content", has_text=text).last


def upload(page: Any, path: Path) -> None:
    page.get_by_role("button", name="Upload a log").last.click(timeout=120_000)
    page.get_by_role("button", name="Browse Files").last.wait_for(timeout=60_000)
    page.set_input_files("#ask-button-input", str(path))


def test_helpdesk_log_is_mined_in_the_chat(
    page: Any, helpdesk_report: MiningReport, tmp_path: Path
) -> None:
    # The bundled log (its event count follows the reader's cleaning rules, so it is compared
    # with the tool's own report below rather than pinned here).
    assert helpdesk_report.cases == 4580
    page.get_by_role("button", name="Helpdesk tickets").click()
    summary = message(page, "Mining summary: helpdesk.xes.gz")
    summary.wait_for(timeout=MINING_TIMEOUT_MS)
    text = summary.inner_text()
    assert f"{helpdesk_report.cases:,} cases" in text  # "4,580 cases"
    assert f"{helpdesk_report.events:,} events" in text
    assert f"{helpdesk_report.variant_count:,} variants" in text
    rows = summary.locator("table").first.locator("tbody tr")
    assert rows.count() == min(5, len(helpdesk_report.bottlenecks))
    first = rows.first.locator("td").all_inner_texts()
    assert first[:2] == ["1", helpdesk_report.bottlenecks[0].activity]
    assert first[-1] == f"{helpdesk_report.bottlenecks[0].cases_affected:,}"
    shot = tmp_path / "helpdesk.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    assert page.dialogs == [] and page.errors == [] and page.blocked == []


def test_hostile_activity_names_stay_text_and_bad_files_get_one_line(
    page: Any, tmp_path: Path
) -> None:
    names = [
        "<img src=x onerror=alert(1)>",
        "[click me](https://evil.example/x)",
        "https://evil.example/raw",
        "<script>alert(2)</script> | **bold** www.evil.example",
    ]
    lines = ["case_id,activity,timestamp"]
    for case in ("c1", "c2"):
        lines.append(f"{case},start,2024-01-01T00:00:00")
        for i, name in enumerate(names, start=1):
            quoted = '"' + name.replace('"', '""') + '"'
            lines.append(f"{case},{quoted},2024-01-01T{i * 5:02d}:00:00")
    hostile = tmp_path / "hostile.csv"
    hostile.write_text("\n".join(lines) + "\n", encoding="utf-8")

    upload(page, hostile)
    summary = message(page, "Mining summary: hostile.csv")
    summary.wait_for(timeout=MINING_TIMEOUT_MS)
    cells = summary.locator("table").first.locator("tbody tr td:nth-child(2)").all_inner_texts()
    # The literal text, not rendered markup (word joiners keep "www." and "https://" from autolinking).
    assert sorted(cell.replace(WORD_JOINER, "") for cell in cells) == sorted(names)
    # The only link is the chat's own one to the interactive process map.
    assert summary.locator("a:not([href^='/closedloop/maps/'])").count() == 0
    assert summary.locator("a").count() == 1
    assert summary.locator("img:not([alt='process-map.png'])").count() == 0  # only the chat's map
    assert summary.locator("script").count() == 0
    assert summary.locator("strong", has_text="bold").count() == 0

    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,activity\nc1,a\n", encoding="utf-8")
    upload(page, bad)
    error = message(page, "Cannot use this log")
    error.wait_for(timeout=MINING_TIMEOUT_MS)
    text = error.inner_text()
    assert "bad.csv: missing timestamp column" in text
    assert "Traceback" not in text and "closedloop-upload-" not in text
    page.screenshot(path=str(tmp_path / "upload.png"))
    assert page.dialogs == [] and page.errors == [] and page.blocked == []


@pytest.mark.slow
def test_closed_loop_plan_approve_verdict(
    page: Any, chat_server: dict[str, Any], tmp_path: Path
) -> None:
    page.get_by_role("button", name="Start the closed loop (sandbox)").click()
    approve = page.get_by_role("button", name="Approve", exact=True)
    stopped = message(page, "No plan:").or_(message(page, "The closed loop failed"))
    approve.or_(stopped).first.wait_for(timeout=LOOP_TIMEOUT_MS)
    if not approve.is_visible():  # fail fast, saying what the chat showed instead of a plan
        page.screenshot(path=str(tmp_path / "no-plan.png"))
        pytest.fail(f"the loop stopped without a plan to approve:\n{stopped.first.inner_text()}")
    plan = message(page, "Approve this change?").inner_text()
    for part in (
        "Plan #",
        "Action:",
        "Hypothesis:",
        "Predicted:",
        "95% interval",
        "Risk tier:",
        "mode assisted",
    ):
        assert part in plan, part
    page.screenshot(path=str(tmp_path / "plan.png"))

    approve.click()
    verdict = message(page, "Verdict for run")
    verdict.wait_for(timeout=LOOP_TIMEOUT_MS)
    text = verdict.inner_text()
    for part in (
        "approved by",
        "Decision:",
        "Realized (measured)",
        "Predicted (simulation)",
        "Outcome:",
        "Audit chain:",
    ):
        assert part in text, part
    assert (
        page.get_by_role("button", name="Approve", exact=True).count() == 0
    )  # buttons go once used
    assert page.get_by_role("button", name="Reject", exact=True).count() == 0
    page.screenshot(path=str(tmp_path / "verdict.png"))

    with sqlite3.connect(f"file:{chat_server['database']}?mode=ro", uri=True) as db:
        approvals = db.execute("SELECT status, channel, decided_by FROM approval").fetchall()
        verdicts = db.execute("SELECT decision FROM verdict").fetchall()
    assert approvals == [("approved", "chat", "chat operator (chat)")]
    assert len(verdicts) == 1 and verdicts[0][0] in ("keep", "rollback", "escalate")
    assert page.dialogs == [] and page.errors == [] and page.blocked == []
