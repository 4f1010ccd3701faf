"""The approval cards rendered by Microsoft's ``adaptivecards`` JS renderer (vendored in
tests/data/adaptivecards) in headless Debian chromium: no parse or validation warnings, no
console errors, every fact on screen, no character a Teams font lacks; a screenshot of each."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from closedloop.api.cards import approval_card, decided_card, shared_card
from tests.helpers_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS_ENV
from tests.test_cards import WHEN, rich_rows, unsafe_glyphs

pytestmark = pytest.mark.browser

RENDERER = Path(__file__).parent / "data" / "adaptivecards" / "adaptivecards.min.js"
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<style>body { margin: 0; background: #f5f5f5; } #card { width: 560px; margin: 12px; background: #fff; }</style>
<script src="adaptivecards.min.js"></script></head><body><div id="card"></div></body></html>"""
RENDER = """(payload) => {
  // The host supplies Markdown processing (Teams does its own); the cards carry no Markdown, so
  // the text is shown as it is, HTML-escaped.
  AdaptiveCards.AdaptiveCard.onProcessMarkdown = (text, result) => {
    const holder = document.createElement("div");
    holder.textContent = text;
    result.outputHtml = holder.innerHTML;
    result.didProcess = true;
  };
  const card = new AdaptiveCards.AdaptiveCard();
  card.hostConfig = new AdaptiveCards.HostConfig({
    fontFamily: "'Segoe UI', 'Helvetica Neue', sans-serif", supportsInteractivity: true,
    actions: {actionsOrientation: "horizontal", maxActions: 5}});
  const context = new AdaptiveCards.SerializationContext();
  card.parse(payload, context);
  const events = [];
  for (let i = 0; i < context.eventCount; i++) { events.push(context.getEventAt(i).message); }
  const validation = card.validateProperties();
  for (const e of validation.validationEvents) { events.push(e.message); }
  const element = card.render();
  document.getElementById("card").appendChild(element);
  const buttons = Array.from(element.querySelectorAll("button")).map(b => b.innerText.trim());
  return {events, buttons, text: element.innerText, height: element.getBoundingClientRect().height};
}"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM}")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright (python) is not installed"
    )
    folder = tmp_path_factory.mktemp("cards")
    (folder / "adaptivecards.min.js").write_bytes(RENDERER.read_bytes())
    (folder / "index.html").write_text(PAGE, encoding="utf-8")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            tab = browser.new_page(viewport={"width": 600, "height": 900})
            tab.messages = []  # type: ignore[attr-defined]
            tab.on("console", lambda m: tab.messages.append((m.type, m.text)))  # type: ignore[attr-defined]
            tab.on("pageerror", lambda e: tab.messages.append(("pageerror", str(e))))  # type: ignore[attr-defined]
            # Offline: nothing but the local file may load.
            tab.route(
                "**/*",
                lambda route: (
                    route.continue_() if route.request.url.startswith("file://") else route.abort()
                ),
            )
            tab.goto((folder / "index.html").as_uri())
            yield tab
        finally:
            browser.close()


def shots_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get(SHOTS_ENV) or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cards() -> list[tuple[str, dict[str, Any], list[str]]]:
    plan, approval, run = rich_rows()
    questions = [
        {"by": "Bob Analyst (aad-0002)", "text": "What does this do to VIP tickets?", "at": WHEN}
    ]
    decided = approval.model_copy(
        update={
            "status": "approved",
            "decided_by": "Ada Lovelace (aad-0001)",
            "channel": "teams",
            "decided_at": WHEN,
            "comment": "go ahead",
        }
    )
    return [
        (
            "approval",
            approval_card(plan, approval, run, questions=questions),
            ["Approve", "Reject", "Ask for more"],
        ),
        ("shared", shared_card(plan, approval, run, ["29:approver-ada"], questions=questions), []),
        ("decided", decided_card(plan, decided, run), []),
    ]


@pytest.mark.parametrize("index", range(3))
def test_cards_render_without_warnings_and_show_every_fact(
    page: Any, tmp_path: Path, index: int
) -> None:
    name, card, buttons = cards()[index]
    page.evaluate("() => { document.getElementById('card').innerHTML = ''; }")
    page.messages.clear()
    out = page.evaluate(RENDER, json.loads(json.dumps(card)))
    assert out["events"] == [], out["events"]
    assert [m for m in page.messages if m[0] in ("error", "warning", "pageerror")] == []
    assert out["buttons"] == buttons
    text = out["text"]
    for fact in (
        "Create rule",
        "Cycle time: -19.4 %",
        "95 % interval -23.9 % to -14.9 %",
        "40% of cases",
        "50% get the change",
        "14 days live beside a control group",
        "Abort and undo automatically",
        "Undone by the system's delete rule call",
    ):
        assert fact in text, (fact, text[:500])
    assert "{" not in text.replace("{rule_id}", "")  # no raw JSON on screen
    assert unsafe_glyphs({"text": " ".join(text.split())}) == set()
    if name == "decided":
        assert "Approved by Ada Lovelace (aad-0001) via teams" in text
    else:
        assert "What does this do to VIP tickets?" in text
    shot = shots_dir(tmp_path) / f"card-{name}.png"
    page.locator("#card").screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000 and out["height"] > 300
