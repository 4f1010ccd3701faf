"""Headless Debian chromium for the browser tests: skipped with a reason when it is absent, and
every request that leaves loopback aborted and recorded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Where screenshots are kept for people to look at (default: the test's tmp folder).
SHOTS_ENV = "CLOSEDLOOP_SCREENSHOTS"


def playwright_sync_api() -> ModuleType:
    """playwright's sync API; skips the test, saying why, without Debian chromium or playwright."""
    if not CHROMIUM.exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM}")
    return pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")


@contextmanager
def loopback_page(
    sync_api: ModuleType, viewport: dict[str, int], blocked: list[str]
) -> Iterator[Any]:
    """A chromium page on which a request to anywhere but 127.0.0.1 is aborted and its URL
    appended to ``blocked`` (the test asserts it stays empty)."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport=viewport)

            def only_loopback(route: Any) -> None:
                url = route.request.url
                if urlsplit(url).hostname == "127.0.0.1":
                    route.continue_()
                else:
                    blocked.append(url)
                    route.abort()

            page.route("**/*", only_loopback)
            yield page
        finally:
            browser.close()


def screenshot(page: Any, name: str, default_dir: Path, **options: Any) -> Path:
    """Keep a screenshot of ``page`` as ``name`` in $CLOSEDLOOP_SCREENSHOTS, else ``default_dir``."""
    shots = Path(os.environ.get(SHOTS_ENV) or default_dir)
    shots.mkdir(parents=True, exist_ok=True)
    path = shots / name
    page.screenshot(path=str(path), **options)
    return path
