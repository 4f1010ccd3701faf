"""The spec's REST endpoints beyond runs and approvals: mining jobs with progress (pushed source or an
uploaded log), simulate, optimize, monitor, Prometheus metrics and offline /docs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from closedloop.api.app import create_app
from closedloop.settings import Settings
from closedloop.store.db import open_store, transaction
from closedloop.store.models import (
    AuditEvent,
    Dataset,
    Execution,
    KpiSnapshot,
    MiningRun,
    Plan,
    Verdict,
)
from tests.test_api import StubRunner, auth, make_settings, seed_paused_run

REPAIR = Path(__file__).resolve().parents[1] / "closedloop" / "data" / "03_repairExample.xes.gz"
ONE_MORE_X = {"kind": "add_capacity", "activity_or_pool": "x", "extra": 1}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    settings = make_settings(tmp_path)
    seed_paused_run(settings)
    stub = StubRunner(settings)
    with TestClient(
        create_app(settings, runner_factory=lambda _s: stub), headers=auth("analyst")
    ) as client:
        yield client, settings


def wait_for(
    client: TestClient, job_id: str, limit_s: float = 120
) -> tuple[dict[str, Any], list[str]]:
    """Poll a job to its end; returns it and the stages seen on the way."""
    stages: list[str] = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if not stages or stages[-1] != job["stage"]:
            stages.append(job["stage"])
        if job["status"] in ("done", "failed"):
            return job, stages
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def counts(settings: Settings) -> tuple[int, int]:
    with transaction(open_store(settings.resolved_database_url())) as s:
        return len(s.exec(select(Dataset)).all()), len(s.exec(select(MiningRun)).all())


def test_upload_mine_then_simulate_and_optimize_the_dataset(api) -> None:
    client, settings = api
    r = client.post(
        "/mine/upload", params={"filename": "repair.xes.gz"}, content=REPAIR.read_bytes()
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] in ("queued", "running", "done") and r.json()["by"] == "Ann Analyst"
    job, stages = wait_for(client, r.json()["id"])
    assert job["status"] == "done", job
    assert job["progress"] == 1.0 and job["stage"] == "done" and job["finished_at"]
    assert set(stages) <= {
        "queued",
        "starting",
        "reading the log",
        "mining the process",
        "storing the snapshot and insights",
        "done",
    }
    result = job["result"]
    assert result["events"] > 1000 and result["report"]["cases"] == 1104 and result["insights"] >= 1
    dataset_id = result["dataset_id"]
    assert [j["id"] for j in client.get("/jobs").json()] == [job["id"]]
    uploads = list((settings.home / "uploads").iterdir())
    assert len(uploads) == 1 and uploads[0].stat().st_mode & 0o777 == 0o600

    scenario = {"kind": "add_capacity", "activity_or_pool": "Repair (Complex)", "extra": 1}
    sim = client.post(
        "/simulate",
        json={"dataset_id": dataset_id, "scenario": scenario, "cases": 100, "replications": 2},
    )
    assert sim.status_code == 200, sim.text
    assert {"as_is", "what_if", "delta"} <= set(sim.json())
    opt = client.post(
        "/optimize",
        json={
            "dataset_id": dataset_id,
            "kind": "staffing",
            "budget": 1,
            "validate_by_simulation": False,
        },
    )
    assert opt.status_code == 200, opt.text
    assert sum(opt.json()["extra_staff"].values()) <= 1
    assert counts(settings) == (
        2,
        2,
    )  # the seeded dataset and the upload's; analysis stored nothing


@pytest.mark.parametrize(
    ("url", "body", "status", "says"),
    [
        (
            "/simulate",
            {"dataset_id": 999, "scenario": ONE_MORE_X},
            404,
            "no dataset 999",
        ),
        ("/simulate", {"dataset_id": 1, "scenario": {"kind": "teleport"}}, 422, ""),
        ("/simulate", {"dataset_id": 1, "scenario": {}, "cases": 10}, 422, ""),
        (
            "/simulate",
            {"dataset_id": 1, "scenario": ONE_MORE_X},
            422,
            "no snapshot",
        ),
        ("/optimize", {"dataset_id": 1, "kind": "staffing"}, 422, "needs budget"),
        ("/optimize", {"dataset_id": 1, "kind": "magic", "budget": 1}, 422, ""),
        ("/mine/jobs", {"source": "bad source!"}, 422, ""),
        ("/mine", {"source": "erp", "extra": 1}, 422, ""),
    ],
)
def test_bad_payloads_are_clear_4xx_and_write_nothing(
    api, url: str, body: dict, status: int, says: str
) -> None:
    client, settings = api
    r = client.post(url, json=body)
    assert r.status_code == status, r.text
    assert says in r.text
    assert counts(settings) == (1, 1)


def test_bad_uploads_are_refused_or_fail_as_a_job_with_a_message(api) -> None:
    client, settings = api
    for name in ("../../etc/passwd.csv", "log.exe", ""):
        r = client.post("/mine/upload", params={"filename": name}, content=b"a,b\n1,2\n")
        assert r.status_code == 422, (name, r.text)
    assert (
        client.post("/mine/upload", params={"filename": "log.csv"}, content=b"").status_code == 422
    )
    r = client.post(
        "/mine/upload", params={"filename": "log.csv"}, content=b"just,some\ncolumns,here\n"
    )
    job, _ = wait_for(client, r.json()["id"])
    assert job["status"] == "failed" and "log.csv" in job["error"] and job["result"] is None
    assert counts(settings) == (1, 1)


def test_mining_a_pushed_source_as_a_job(api) -> None:
    client, settings = api
    start = datetime(2024, 1, 1, 8, tzinfo=UTC)
    events = [
        {
            "event_id": f"e{c}-{i}",
            "case_id": f"c{c}",
            "activity": act,
            "timestamp": (
                start + timedelta(hours=c * 3 + i * (5 if act == "Review" else 1))
            ).isoformat(),
        }
        for c in range(30)
        for i, act in enumerate(("Open", "Review", "Close"))
    ]
    assert client.post("/events", json={"source": "erp", "events": events}).status_code == 200
    r = client.post("/mine/jobs", json={"source": "erp"})
    assert r.status_code == 202
    job, _ = wait_for(client, r.json()["id"])
    assert (
        job["status"] == "done"
        and job["result"]["events"] == 90
        and job["result"]["report"]["cases"] == 30
    )
    missing = client.post("/mine/jobs", json={"source": "nobody"})
    failed, _ = wait_for(client, missing.json()["id"])
    assert failed["status"] == "failed" and "nobody" in failed["error"]
    assert counts(settings) == (2, 2)


def _snapshot(
    plan_id: int, kpi: str, cohort: str, mean: float, half_width: float, at: datetime
) -> KpiSnapshot:
    """One cohort's reading of ``kpi`` over 40 cases: ``mean`` within ``± half_width``."""
    return KpiSnapshot(
        plan_id=plan_id,
        kpi=kpi,
        cohort=cohort,
        n=40,
        mean=mean,
        ci_low=mean - half_width,
        ci_high=mean + half_width,
        source="test",
        created_at=at,
    )


def _seed_monitoring(settings: Settings) -> int:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    with transaction(open_store(settings.resolved_database_url())) as s:
        plan = s.exec(select(Plan)).first()
        writes = (("k1", "succeeded", now, now), ("k2", "failed", now + timedelta(minutes=1), None))
        for key, status, created, finished in writes:
            s.add(
                Execution(
                    plan_id=plan.id,
                    action="set_staffing",
                    idempotency_key=key,
                    status=status,
                    created_at=created,
                    finished_at=finished,
                )
            )
        for day, (t, c) in enumerate([(10.0, 12.0), (9.0, 12.5)]):
            at = now + timedelta(days=day + 1)
            s.add(_snapshot(plan.id, "cycle_time_hours", "treatment", t, 1, at))
            s.add(_snapshot(plan.id, "cycle_time_hours", "control", c, 1, at))
        at = now + timedelta(days=3)
        for cohort, sla, rework in (("treatment", 0.82, 0.30), ("control", 0.95, 0.05)):
            s.add(_snapshot(plan.id, "sla_attainment", cohort, sla, 0.05, at))
            s.add(_snapshot(plan.id, "rework_rate", cohort, rework, 0.04, at))
        s.add(
            Verdict(
                plan_id=plan.id,
                decision="rollback",
                kpi="rework_rate",
                delta=0.25,
                ci_low=0.17,
                ci_high=0.33,
                created_at=at + timedelta(hours=1),
            )
        )
        return plan.id


def test_monitor_shows_kpis_over_time_markers_and_alerts(api) -> None:
    client, settings = api
    plan_id = _seed_monitoring(settings)
    out = client.get("/monitor", params={"scope": "helpdesk"}).json()
    series = {(s["kpi"], s["cohort"]): [p["mean"] for p in s["points"]] for s in out["series"]}
    assert series[("cycle_time_hours", "treatment")] == [10.0, 9.0]
    assert series[("cycle_time_hours", "control")] == [12.0, 12.5]
    assert [(m["kind"], m["detail"]) for m in out["markers"]] == [
        ("write", "set_staffing: succeeded"),
        ("write", "set_staffing: failed"),
        ("verdict", "rollback: rework_rate changed +0.25 [+0.17, +0.33]"),
    ]
    kinds = sorted(a["kind"] for a in out["alerts"])
    assert kinds == ["guardrail_breach", "guardrail_breach", "sla_breach", "write_failed"]
    assert all(a["plan_id"] == plan_id for a in out["alerts"]) and out["plans"] == 1
    assert "82.0% below the target 90%" in str(out["alerts"])
    relaxed = client.get("/monitor", params={"scope": "helpdesk", "sla_target": 0.8}).json()
    assert "sla_breach" not in [a["kind"] for a in relaxed["alerts"]]
    other = client.get("/monitor", params={"scope": "o2c"}).json()
    assert other["series"] == [] and other["alerts"] == [] and other["plans"] == 0
    assert client.get("/monitor", params={"scope": "../x"}).status_code == 422
    assert client.get("/monitor").status_code == 422


def test_metrics_count_runs_writes_failures_and_requests(api) -> None:
    client, settings = api
    _seed_monitoring(settings)
    with transaction(open_store(settings.resolved_database_url())) as s:
        for n in (100, 20):
            s.add(
                AuditEvent(
                    run_id="run-seeded",
                    actor="planner",
                    kind="model_answer",
                    payload={
                        "model": "m",
                        "message": {
                            "type": "ai",
                            "content": "x",
                            "usage": {"input_tokens": n, "output_tokens": 7},
                        },
                    },
                )
            )
    client.get("/approvals")
    client.get("/approvals/999")
    text = client.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("closedloop_runs", (("status", "paused"),))] == 1
    assert samples[("closedloop_writes", (("status", "succeeded"),))] == 1
    assert samples[("closedloop_failures", (("what", "writes"),))] == 1
    assert samples[("closedloop_model_tokens_total", (("direction", "input"),))] == 120
    assert samples[("closedloop_model_tokens_total", (("direction", "output"),))] == 14
    assert (
        samples[
            (
                "closedloop_http_requests_total",
                (("method", "GET"), ("route", "/approvals/{approval_id}"), ("status", "404")),
            )
        ]
        == 1
    )
    assert (
        "closedloop_http_request_seconds_count",
        (("method", "GET"), ("route", "/approvals")),
    ) in samples


def test_docs_are_served_with_local_assets_only(api) -> None:
    client, _ = api
    html = client.get("/docs").text
    assert "/static-docs/swagger-ui-bundle.js" in html and "/static-docs/swagger-ui.css" in html
    assert "cdn" not in html.lower() and "https://" not in html.replace(
        "https://fastapi.tiangolo.com", ""
    )
    js = client.get("/static-docs/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 500_000
    assert client.get("/static-docs/swagger-ui.css").status_code == 200
    redoc = client.get("/redoc").text
    assert "/static-docs/redoc.standalone.js" in redoc and "fonts.googleapis" not in redoc
    spec = client.get("/openapi.json").json()
    assert {
        "/mine",
        "/mine/jobs",
        "/mine/upload",
        "/simulate",
        "/optimize",
        "/monitor",
        "/plans",
        "/executions",
        "/policies",
        "/jobs/{job_id}",
        "/api/messages",
    } <= set(spec["paths"])
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
