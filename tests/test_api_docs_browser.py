"""``/docs`` in headless Debian chromium with every non-loopback request blocked: Swagger UI loads from
the service's own assets and shows the API (a screenshot is kept)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import uvicorn

from closedloop.api.app import create_app
from closedloop.settings import Settings
from tests.helpers_browser import loopback_page, playwright_sync_api, screenshot
from tests.teams_fakes import free_port, serving
from tests.test_api import KEYS, make_settings, seed_paused_run
from tests.test_api_ops import _seed_monitoring

pytestmark = pytest.mark.browser


def _server(settings: Settings) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=free_port(), log_level="warning"
        )
    )


def test_docs_render_offline(tmp_path: Path, migrated_db: Path) -> None:
    sync_api = playwright_sync_api()
    shutil.copyfile(migrated_db, tmp_path / "t.db")
    blocked: list[str] = []
    with (
        serving(_server(make_settings(tmp_path))) as base,
        loopback_page(sync_api, {"width": 1100, "height": 900}, blocked) as page,
    ):
        page.goto(f"{base}/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        page.wait_for_selector("text=/simulate", timeout=30_000)
        assert "closedloop API" in page.title()
        assert page.locator(".opblock").count() >= 20
        assert page.locator("button.authorize").count() == 1  # bearer / API key schemes
        screenshot(page, "api-docs.png", tmp_path)
    assert blocked == []


def test_monitor_page_draws_kpis_markers_and_alerts(tmp_path: Path, migrated_db: Path) -> None:
    sync_api = playwright_sync_api()
    shutil.copyfile(migrated_db, tmp_path / "t.db")
    settings = make_settings(tmp_path)
    seed_paused_run(settings)
    _seed_monitoring(settings)
    blocked: list[str] = []
    with (
        serving(_server(settings)) as base,
        loopback_page(sync_api, {"width": 1000, "height": 800}, blocked) as page,
    ):
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
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
        assert "sla breach" in alerts and "guardrail breach" in alerts and "write failed" in alerts
        assert errors == []
        screenshot(page, "monitor.png", tmp_path, full_page=True)
    assert blocked == []
