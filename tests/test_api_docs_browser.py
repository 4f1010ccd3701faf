"""``/docs`` in headless Debian chromium with every non-loopback request blocked: Swagger UI loads from
the service's own assets and shows the API (a screenshot is kept)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn

from closedloop.api.app import create_app
from tests.teams_fakes import free_port, serving
from tests.test_api import make_settings

pytestmark = pytest.mark.browser
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


def test_docs_render_offline(tmp_path: Path, migrated_db: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM}")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright (python) is not installed"
    )
    import shutil

    shutil.copyfile(migrated_db, tmp_path / "t.db")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(make_settings(tmp_path)),
            host="127.0.0.1",
            port=free_port(),
            log_level="warning",
        )
    )
    blocked: list[str] = []
    with serving(server) as base, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})

            def only_loopback(route: object) -> None:
                url = route.request.url  # type: ignore[attr-defined]
                if urlsplit(url).hostname == "127.0.0.1":
                    route.continue_()  # type: ignore[attr-defined]
                else:
                    blocked.append(url)
                    route.abort()  # type: ignore[attr-defined]

            page.route("**/*", only_loopback)
            page.goto(f"{base}/docs")
            page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
            page.wait_for_selector("text=/simulate", timeout=30_000)
            assert "closedloop API" in page.title()
            assert page.locator(".opblock").count() >= 20
            assert page.locator("button.authorize").count() == 1  # bearer / API key schemes
            shots = Path(os.environ.get("CLOSEDLOOP_SCREENSHOTS") or tmp_path)
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "api-docs.png"))
        finally:
            browser.close()
    assert blocked == []


def test_monitor_page_draws_kpis_markers_and_alerts(tmp_path: Path, migrated_db: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM}")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright (python) is not installed"
    )
    import shutil

    from tests.test_api import KEYS, seed_paused_run
    from tests.test_api_ops import _seed_monitoring

    shutil.copyfile(migrated_db, tmp_path / "t.db")
    settings = make_settings(tmp_path)
    seed_paused_run(settings)
    _seed_monitoring(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=free_port(), log_level="warning"
        )
    )
    blocked: list[str] = []
    with serving(server) as base, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if urlsplit(route.request.url).hostname == "127.0.0.1"
                    else (blocked.append(route.request.url), route.abort())
                ),
            )
            page.goto(f"{base}/monitor/view?scope=helpdesk")
            page.fill("#key", "wrong")
            page.click("button[type=submit]")
            page.wait_for_selector("#status:has-text('401')", timeout=15_000)
            page.fill("#key", KEYS["analyst"])
            page.click("button[type=submit]")
            page.wait_for_selector("svg circle.point", timeout=15_000)
            titles = page.locator(".panel h2").all_inner_texts()
            assert {"Alerts", "cycle time hours", "sla attainment", "rework rate"} <= set(titles)
            assert page.locator("polyline.series.treatment").count() >= 1
            assert page.locator("line.marker").count() >= 3 * 3  # 3 markers on each of 3 charts
            alerts = page.locator("#alerts").inner_text()
            assert (
                "sla breach" in alerts and "guardrail breach" in alerts and "write failed" in alerts
            )
            assert errors == []
            shots = Path(os.environ.get("CLOSEDLOOP_SCREENSHOTS") or tmp_path)
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "monitor.png"), full_page=True)
        finally:
            browser.close()
    assert blocked == []
