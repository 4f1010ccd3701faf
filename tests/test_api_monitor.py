"""``GET /monitor`` throughput: cases completed per period, per scope and cohort.

The first test pins the arithmetic on store rows; the second runs the real closed loop on the
helpdesk sandbox to a verdict, then reads ``GET /monitor`` from a real server on loopback and
checks its throughput against the Watchdog's own measurement in the run's final state, and
draws it in ``/monitor/view`` in headless chromium (a screenshot is kept).
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from closedloop.api.app import create_app
from closedloop.api.monitor_throughput import throughput
from closedloop.store.models import AuditEvent, Execution, Plan
from tests.helpers_browser import CHROMIUM, CHROMIUM_ARGS
from tests.teams_fakes import free_port, serving
from tests.test_api import KEYS, auth, make_settings

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _kpis(cases: int, open_cases: int) -> dict[str, Any]:
    rate = {"rate": 0.1, "n": cases, "se": 0.01, "count": cases // 10}
    return {
        "cases": cases,
        "open_cases": open_cases,
        "rework": rate,
        "reopen": rate,
        "busy_hours": 1.0,
        "staff_cost": 1.0,
        "cost_per_case": 0.1,
    }


def _measured(run_id: str, at: datetime, cohorts: dict[str, tuple[int, int]]) -> AuditEvent:
    result = {
        "kpi": "cycle_time_hours",
        "guardrail_kpis": {c: _kpis(*v) for c, v in cohorts.items()},
    }
    return AuditEvent(
        run_id=run_id,
        actor="watchdog",
        kind="tool_result",
        payload={"tool": "measure_kpi", "result": result},
        created_at=at,
    )


def _plan(plan_id: int, run_id: str) -> Plan:
    return Plan(
        id=plan_id,
        run_id=run_id,
        opportunity_id=1,
        scope="helpdesk",
        hypothesis="h",
        risk_tier="low",
        created_at=T0 - timedelta(hours=1),
    )


def test_throughput_counts_cases_completed_per_period() -> None:
    plans = [_plan(1, "run-a"), _plan(2, "run-b")]
    writes = [Execution(plan_id=1, action="a", idempotency_key="k", finished_at=T0)]
    day = timedelta(days=1)
    events = [
        _measured("run-a", T0 + day, {"treatment": (50, 10), "control": (48, 8)}),
        _measured("run-a", T0 + 2 * day, {"treatment": (90, 10), "control": (85, 15)}),
        _measured("run-b", T0 + day, {"after": (30, 5), "before": (1208, 55)}),
        _measured("run-b", T0 + 2 * day, {"after": (60, 4), "before": (1208, 55)}),
        # Not a measurement, a malformed one, and one of a run without plan: none counts.
        AuditEvent(
            run_id="run-a",
            actor="watchdog",
            kind="tool_result",
            payload={"tool": "other", "result": {}},
            created_at=T0 + day,
        ),
        AuditEvent(
            run_id="run-a",
            actor="watchdog",
            kind="tool_result",
            payload={"tool": "measure_kpi", "result": {"guardrail_kpis": {"x": {"cases": "?"}}}},
            created_at=T0 + day,
        ),
        _measured("run-z", T0 + day, {"treatment": (9, 0)}),
    ]
    flow = {s.cohort: s.points for s in throughput(plans, reversed(events), writes)}
    assert sorted(flow) == ["after", "before", "control", "treatment"]
    assert [(p.cases, p.total, p.open_cases) for p in flow["treatment"]] == [
        (40, 40, 10),
        (40, 80, 10),
    ]
    assert [(p.cases, p.total) for p in flow["control"]] == [(40, 40), (30, 70)]
    assert [p.since for p in flow["treatment"]] == [T0, T0 + day]  # from the write, then the check
    assert [p.at for p in flow["treatment"]] == [T0 + day, T0 + 2 * day]
    assert [(p.cases, p.since) for p in flow["after"]] == [(25, None), (31, T0 + day)]
    assert [(p.cases, p.total) for p in flow["before"]] == [(1153, 1153)]  # history: one period
    later = {s.cohort: s.points for s in throughput(plans, events, writes, since=T0 + 2 * day)}
    assert [(p.cases, p.since) for p in later["treatment"]] == [(40, T0 + day)]


@pytest.mark.browser
def test_monitor_throughput_of_a_real_loop_run(tmp_path: Path, migrated_db: Path) -> None:
    from closedloop.demo import run_demo

    shutil.copyfile(migrated_db, tmp_path / "t.db")
    settings = make_settings(tmp_path)
    state = run_demo(settings, auto_approve=True, quiet=True)
    watch = [s for s in state["steps"] if s.get("step") == "watch"]
    assert watch, "the loop ended without the Watchdog measuring"
    truth = watch[-1]["measured"]["guardrail_kpis"]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=free_port(), log_level="warning"
        )
    )
    with serving(server) as base:
        assert httpx.get(f"{base}/monitor", params={"scope": "helpdesk-demo"}).status_code == 401
        answer = httpx.get(
            f"{base}/monitor",
            params={"scope": "helpdesk-demo"},
            headers=auth("analyst"),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        flow = {s["cohort"]: s["points"] for s in body["throughput"]}
        # Every cohort the Watchdog measured last, with the cases it counted as completed.
        assert set(flow) == set(truth)
        for cohort, kpis in truth.items():
            done = kpis["cases"] - kpis["open_cases"]
            assert done > 0
            assert (
                flow[cohort][-1]["total"] == done
                and flow[cohort][-1]["open_cases"] == kpis["open_cases"]
            )
            if cohort != "before":  # periods since the change add up to what it measured
                assert sum(p["cases"] for p in flow[cohort]) == done
                assert flow[cohort][0]["since"] is not None  # the first period starts at the write
        other = httpx.get(
            f"{base}/monitor", params={"scope": "o2c"}, headers=auth("analyst")
        ).json()
        assert other["throughput"] == []
        _draw(base, flow, tmp_path)


def _draw(base: str, flow: dict[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    blocked: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
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
            page.goto(f"{base}/monitor/view?scope=helpdesk-demo")
            page.fill("#key", KEYS["analyst"])
            page.click("button[type=submit]")
            page.wait_for_selector("#throughput rect.bar", timeout=15_000)
            assert page.locator("#throughput rect.bar").count() == sum(
                len(p) for p in flow.values()
            )
            legend = page.locator("#throughput .legend").inner_text()
            for cohort, points in flow.items():
                assert f"{cohort}: {sum(p['cases'] for p in points)} cases" in legend
            heights = page.locator("#throughput rect.bar").evaluate_all(
                "(bars) => bars.map(b => Number(b.getAttribute('height')))"
            )
            assert max(heights) > 50  # the tallest bar fills the chart, none is negative
            assert min(heights) >= 0
            assert errors == []
            shots = Path(os.environ.get("CLOSEDLOOP_SCREENSHOTS") or tmp_path)
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "monitor-throughput.png"), full_page=True)
        finally:
            browser.close()
    assert blocked == []


def test_treatment_and_control_of_one_measurement_are_compared_though_stamped_apart() -> None:
    """The Watchdog stamps each row of one measurement a little apart; the rework guardrail
    alert must still compare treatment with the control of the same measurement, not another."""
    from closedloop.api.monitor import _alerts
    from closedloop.store.models import KpiSnapshot

    def row(i: int, cohort: str, mean: float, at: datetime) -> KpiSnapshot:
        return KpiSnapshot(
            id=i,
            plan_id=1,
            kpi="rework_rate",
            cohort=cohort,
            n=200,
            mean=mean,
            ci_low=mean - 0.03,
            ci_high=mean + 0.03,
            source="t",
            created_at=at,
        )

    tick = timedelta(microseconds=40)
    first = [row(1, "treatment", 0.10, T0), row(2, "control", 0.09, T0 + tick)]
    second = [
        row(3, "treatment", 0.30, T0 + 2 * tick + timedelta(days=1)),
        row(4, "control", 0.05, T0 + 3 * tick + timedelta(days=1)),
    ]
    alerts = _alerts(first + second, [], [], sla_target=0.9)
    assert [(a.kind, a.at) for a in alerts] == [("guardrail_breach", second[0].created_at)]
    assert "30.0% in treatment vs 5.0% in control" in alerts[0].detail
