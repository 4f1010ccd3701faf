"""The REST API: runs, approvals, audit trail and policies, pushed events, mining a pushed
source and external alerts (``closedloop.api.ingest``, ``closedloop.api.alerts``), plus the
Teams bot router. docs/api.md shows the live-input endpoints with examples.

Errors are JSON ``{"error", "detail"}``: unknown id -> 404, a run not waiting for what
was sent -> 409, a bad body -> 422 (FastAPI's validation detail), a tool failing inside
the loop -> 502 (with the ``run_id`` when a new run stopped), a body or batch over its size
limit -> 413, a refused event batch -> 422 naming each bad item by index and field.
Every endpoint but ``/health``, ``/metrics``, ``/docs`` and the Teams endpoints needs a
credential (``closedloop.api.auth``): none or an unknown one is 401, a missing role 403, and
nothing changes. Deciding needs the approver role, policies and kill switches the admin role.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse

from closedloop import governance
from closedloop.api import (
    alerts,
    analysis,
    bot,
    ingest,
    jobs,
    monitor,
    observability,
    records,
    reviews,
    teams,
)
from closedloop.api.auth import Admin, Analyst, Approver, Caller, needs
from closedloop.api.cards import approval_card, decided_card
from closedloop.api.ingest_models import EventErrorsOut
from closedloop.api.models import (
    SCOPE_PATTERN,
    ApprovalStatus,
    ApprovalView,
    AuditEventView,
    DecisionIn,
    DecisionOut,
    ErrorOut,
    Health,
    PolicyIn,
    PolicyView,
    RunView,
    StartRunIn,
)
from closedloop.api.service import RunFailed, RunnerFactory, Service, UrlNotAllowed, approval_view
from closedloop.contracts import NotPaused, RunNotFound
from closedloop.identity import ANALYST, Forbidden, Unauthenticated
from closedloop.settings import Settings, get_settings
from closedloop.tools.errors import ToolError
from closedloop.tools.log.ingest_events import BatchInvalid, BatchTooLarge

RunId = Annotated[str, Path(min_length=1, max_length=128)]
ApprovalId = Annotated[int, Path(ge=1)]
Scope = Annotated[str, Path(pattern=SCOPE_PATTERN)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "unknown id"},
    409: {"model": ErrorOut, "description": "the run is not waiting for this"},
}
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no credential, or an unknown one"},
    403: {"model": ErrorOut, "description": "the caller lacks the role"},
}


class AlreadyDecided(RuntimeError):
    """A REST decision on an approval that was decided before (nothing was resumed)."""


def _version() -> str:
    try:
        return version("closedloop")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def _json_error(status: int, code: str, detail: str, run_id: str | None = None) -> JSONResponse:
    return JSONResponse(
        ErrorOut(error=code, detail=detail, run_id=run_id).model_dump(exclude_none=True),
        status_code=status,
    )


def create_app(
    settings: Settings | None = None, runner_factory: RunnerFactory | None = None
) -> FastAPI:
    """The FastAPI app of closedloop's service (REST + Teams bot) on the store of ``settings``.

    ``runner_factory`` builds the LoopRunner (default: ``LoopRunner(settings)``); tests inject one.
    """
    settings = settings or get_settings()
    service = Service(settings, runner_factory)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Runs a crash interrupted are taken over in the background (closedloop resume's work).
        threading.Thread(target=service.recover_interrupted, name="recover", daemon=True).start()
        yield
        service.close()

    app = FastAPI(
        title="closedloop",
        version=_version(),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        responses=_AUTH,
        description="Process mining -> governed action: runs, approvals, audit trail, policies, "
        "monitoring and the Teams approval bot. Authenticate with "
        "`Authorization: Bearer <API key or OAuth2 JWT>` (docs/api.md).",
    )
    app.state.service = service
    observability.install(app, service)

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(_: Request, exc: Unauthenticated) -> JSONResponse:
        response = _json_error(401, "unauthenticated", str(exc))
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return _json_error(403, "forbidden", str(exc))

    @app.exception_handler(RunNotFound)
    async def _not_found(_: Request, exc: RunNotFound) -> JSONResponse:
        return _json_error(404, "not_found", str(exc))

    @app.exception_handler(NotPaused)
    async def _not_paused(_: Request, exc: NotPaused) -> JSONResponse:
        return _json_error(409, "not_paused", str(exc))

    @app.exception_handler(governance.GovernanceError)
    async def _governance(_: Request, exc: governance.GovernanceError) -> JSONResponse:
        code = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
        return _json_error(409, code, str(exc))

    @app.exception_handler(UrlNotAllowed)
    async def _url_not_allowed(_: Request, exc: UrlNotAllowed) -> JSONResponse:
        return _json_error(422, "api_url_not_allowed", str(exc))

    @app.exception_handler(AlreadyDecided)
    async def _decided(_: Request, exc: AlreadyDecided) -> JSONResponse:
        return _json_error(409, "already_decided", str(exc))

    @app.exception_handler(RunFailed)
    async def _run_failed(_: Request, exc: RunFailed) -> JSONResponse:
        return _json_error(502, "tool_error", str(exc), run_id=exc.run_id)

    @app.exception_handler(ToolError)
    async def _tool_error(_: Request, exc: ToolError) -> JSONResponse:
        first_line = (str(exc).splitlines() or [""])[0]
        return _json_error(502, "tool_error", f"{type(exc).__name__}: {first_line}")

    @app.get(
        "/health",
        response_model=Health,
        summary="Liveness, version and whether the Teams bot is enabled",
    )
    def health() -> Health:  # open: load balancers probe it without credentials
        secret = settings.teams_webhook_secret
        webhook = secret is not None and bool(secret.get_secret_value())
        return Health(
            version=app.version,
            teams_bot="enabled" if settings.teams_app_id else "disabled",
            teams_webhook="enabled" if webhook else "disabled",
        )

    @app.post(
        "/runs",
        response_model=RunView,
        status_code=201,
        responses={502: {"model": ErrorOut}},
        summary="Start a loop against an enterprise API (runs until it pauses or ends)",
    )
    def start_run(body: StartRunIn, who: Analyst) -> RunView:
        return service.start_run(body.api_url, body.scope, by=who.name)

    @app.get(
        "/runs/{run_id}",
        response_model=RunView,
        responses=_ERRORS,
        summary="A run's state, what it waits for and its audit chain ids",
    )
    def get_run(run_id: RunId, _: Caller) -> RunView:
        return service.run_view(run_id)

    @app.post(
        "/runs/{run_id}/evidence",
        response_model=RunView,
        responses={**_ERRORS, 502: {"model": ErrorOut}},
        summary="Resume a run that waits for evidence after acting (the watchdog measures and decides)",
    )
    def post_evidence(run_id: RunId, who: Analyst) -> RunView:
        return service.give_evidence(run_id, by=who.name)

    @app.get(
        "/runs/{run_id}/audit",
        response_model=list[AuditEventView],
        responses=_ERRORS,
        summary="Every prompt, answer, tool call and decision of a run, oldest first",
    )
    def get_audit(run_id: RunId, _: Caller) -> list[AuditEventView]:
        return service.audit_events(run_id)

    @app.get(
        "/approvals",
        response_model=list[ApprovalView],
        summary="Approvals, newest first, optionally by status or run",
    )
    def list_approvals(
        _: Caller,
        status: Annotated[ApprovalStatus | None, Query()] = None,
        run_id: Annotated[str | None, Query(max_length=128)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[ApprovalView]:
        return service.approvals(status=status, run_id=run_id, limit=limit)

    @app.get("/approvals/{approval_id}", response_model=ApprovalView, responses=_ERRORS)
    def get_approval(approval_id: ApprovalId, _: Caller) -> ApprovalView:
        approval, plan, _ = service.rows(approval_id)
        return approval_view(approval, plan)

    @app.get(
        "/approvals/{approval_id}/card",
        responses=_ERRORS,
        summary="The Adaptive Card (1.5) of an approval: the request while pending, else the decision",
    )
    def get_card(approval_id: ApprovalId, _: Caller) -> dict[str, Any]:
        approval, plan, run = service.rows(approval_id)
        questions = service.questions(approval_id)
        if approval.status == "pending":
            return approval_card(plan, approval, run, questions=questions)
        return decided_card(plan, approval, run, questions=questions)

    @app.post(
        "/approvals/{approval_id}/decision",
        response_model=DecisionOut,
        responses=_ERRORS,
        summary="Approve or reject; resumes the paused loop once",
    )
    def post_decision(approval_id: ApprovalId, body: DecisionIn, who: Approver) -> DecisionOut:
        if body.decision == "ask":
            service.ask(approval_id, who.name, body.comment, channel="api")
            approval, plan, run = service.rows(approval_id)
            return DecisionOut(approval=approval_view(approval, plan), run=service.run_view(run.id))
        done = service.decide(approval_id, body.decision, who.name, body.comment, channel="api")
        if done.replayed:
            raise AlreadyDecided(
                f"approval #{approval_id} was already {done.approval.status} by "
                f"{done.approval.decided_by}; the loop was not resumed again"
            )
        return DecisionOut(
            approval=approval_view(done.approval, done.plan), run=service.run_view(done.run.id)
        )

    @app.get("/policies/{scope}", response_model=PolicyView, responses=_ERRORS)
    def get_policy(scope: Scope, _: Caller) -> PolicyView:
        return service.find_policy(scope)

    @app.post(
        "/policies/{scope}",
        response_model=PolicyView,
        summary="Set a scope's mode and/or kill switch (creates the policy on first use)",
    )
    def post_policy(scope: Scope, body: PolicyIn, who: Admin) -> PolicyView:
        return service.policy(scope, mode=body.mode, kill_switch=body.kill_switch, by=who.name)

    @app.exception_handler(BatchInvalid)
    async def _bad_batch(_: Request, exc: BatchInvalid) -> JSONResponse:
        body = EventErrorsOut(
            error="invalid_events", detail=f"nothing stored: {exc}", errors=exc.errors
        )
        return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=422)

    @app.exception_handler(alerts.InvalidAlert)
    async def _bad_alert(_: Request, exc: alerts.InvalidAlert) -> JSONResponse:
        body = {"error": "invalid_alert", "detail": str(exc), "errors": exc.errors}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(ingest.BadBody)
    async def _bad_body(_: Request, exc: ingest.BadBody) -> JSONResponse:
        return _json_error(422, "bad_body", str(exc))

    @app.exception_handler(BatchTooLarge)
    @app.exception_handler(ingest.TooLarge)
    async def _too_large(_: Request, exc: Exception) -> JSONResponse:
        return _json_error(413, "too_large", str(exc))

    @app.exception_handler(ingest.UnknownSource)
    async def _unknown_source(_: Request, exc: ingest.UnknownSource) -> JSONResponse:
        return _json_error(404, "not_found", str(exc))

    app.include_router(ingest.build_router(service), dependencies=[Depends(needs(ANALYST))])
    app.include_router(jobs.build_router(service))
    app.include_router(analysis.build_router(service), dependencies=[Depends(needs(ANALYST))])
    app.include_router(monitor.build_router(service))
    app.include_router(records.build_router(service))
    app.include_router(reviews.build_router(service))  # shadow reviews: approver role to record
    app.include_router(alerts.build_router(service), dependencies=[Depends(needs(ANALYST))])
    app.include_router(teams.build_router(service))
    app.include_router(bot.build_router(service))
    return app
