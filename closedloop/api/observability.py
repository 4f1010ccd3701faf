"""``/docs`` with local assets (works offline) and Prometheus ``/metrics``.

Swagger UI and ReDoc are served from the files the ``fastapi-offline`` package ships, so no
page loads anything from a CDN. ``/metrics`` (text format 0.0.4) has the HTTP traffic of this
process (requests by route and status, latency histogram) and, read from the store at each
scrape so every process agrees, the loop's counts: runs by status, writes (executions) by
status, failures, and model tokens recorded in the audit trail.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func
from sqlmodel import select

from closedloop.api.service import Service
from closedloop.store.db import transaction
from closedloop.store.models import AuditEvent, Execution, LoopRun

ASSETS = Path(fastapi_offline.__file__).parent / "static"
STATIC_URL = "/static-docs"
_FAILED_RUNS = ("failed",)
_FAILED_WRITES = ("failed", "unverified")


class StoreCollector:
    """Loop counters read from the store at scrape time."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Yield runs, writes, failures and model tokens."""
        runs = GaugeMetricFamily(
            "closedloop_runs", "Loop runs in the store by status", labels=["status"]
        )
        writes = GaugeMetricFamily(
            "closedloop_writes",
            "Writes to the enterprise system (executions) by status",
            labels=["status"],
        )
        failures = GaugeMetricFamily(
            "closedloop_failures", "Failed runs and failed or unverified writes", labels=["what"]
        )
        tokens = CounterMetricFamily(
            "closedloop_model_tokens",
            "Model tokens recorded in the audit trail",
            labels=["direction"],
        )
        with transaction(self.service.engine) as session:
            by_run = dict(
                session.exec(select(LoopRun.status, func.count()).group_by(LoopRun.status)).all()
            )
            by_write = dict(
                session.exec(
                    select(Execution.status, func.count()).group_by(Execution.status)
                ).all()
            )
            answers = session.exec(
                select(AuditEvent.payload).where(AuditEvent.kind == "model_answer")
            ).all()
        for status, n in sorted(by_run.items()):
            runs.add_metric([status], n)
        for status, n in sorted(by_write.items()):
            writes.add_metric([status], n)
        failures.add_metric(["runs"], sum(by_run.get(s, 0) for s in _FAILED_RUNS))
        failures.add_metric(["writes"], sum(by_write.get(s, 0) for s in _FAILED_WRITES))
        used = {"input": 0, "output": 0}
        for payload in answers:
            usage = (
                (payload or {}).get("usage")
                or ((payload or {}).get("message") or {}).get("usage")
                or {}
            )
            for direction in used:
                value = usage.get(f"{direction}_tokens")
                if isinstance(value, int) and not isinstance(value, bool):
                    used[direction] += value
        for direction, n in used.items():
            tokens.add_metric([direction], n)
        yield from (runs, writes, failures, tokens)


def install(app: FastAPI, service: Service) -> None:
    """Add offline ``/docs`` and ``/redoc``, ``/metrics`` and the HTTP metrics middleware to ``app``."""
    app.mount(STATIC_URL, StaticFiles(directory=ASSETS), name="static-docs")
    registry = CollectorRegistry()
    registry.register(StoreCollector(service))
    requests = Counter(
        "closedloop_http_requests",
        "HTTP requests by route and status",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "closedloop_http_request_seconds",
        "HTTP request latency by route",
        ["method", "route"],
        registry=registry,
        buckets=(0.005, 0.025, 0.1, 0.25, 1, 2.5, 10, 30, 120),
    )

    @app.middleware("http")
    async def _measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        # The route's template (not the raw path) keeps the label set small.
        name = getattr(route, "path", "unmatched")
        requests.labels(request.method, name, str(response.status_code)).inc()
        latency.labels(request.method, name).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="closedloop API",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/favicon.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def docs_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="closedloop API",
            redoc_js_url=f"{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
