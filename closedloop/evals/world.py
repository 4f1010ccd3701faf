"""Run the whole loop on a sandbox world, once to the approval gate and then per branch.

Planning (observe, triage, plan, gate) costs most of a loop; every branch of a
world (approve, reject, kill switch...) starts from the same plan. The plan is
made once against a sandbox on loopback, the store (with its LangGraph
checkpoints) is copied, and each branch rebuilds the identical world (same
seed, regime, setup and history, on the same port) and resumes the durable run
from the copy, as a restarted process would. The world then runs on, the
Watchdog judges and a rollback runs its compensations. Writes are read back
from the sandbox's own ledger (``GET /writes``), never from the loop.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field
from sqlmodel import Session, select

from closedloop.agents.model_calls import loop_usage
from closedloop.demo import advance_clock, world_days
from closedloop.graphs.runner import LoopRunner
from closedloop.sandbox.server import SandboxServer
from closedloop.settings import Settings
from closedloop.store.models import Approval, AuditEvent, Execution, LoopRun, Plan, Verdict

Branch = Literal["approve", "reject", "kill_switch", "rollback_drill", "replay", "none"]
#: Days the world runs on after each evidence check the Watchdog answered "wait".
EXTRA_DAYS = 7.0
MAX_RESUMES = 40  # approval, a switchback's blocks (up to 14 + 1), evidence checks


class World(BaseModel):
    """A sandbox world: domain, regime (hidden dynamics), seed, setup and history."""

    domain: Literal["helpdesk", "o2c"] = "helpdesk"
    regime: str = "default"
    seed: int = 7
    history_days: float = Field(21.0, gt=0, le=120)
    observe_days: float = Field(14.0, gt=0, le=120)
    staffing: dict[str, int] = Field(default_factory=dict, description="helpdesk queues set at t=0")

    def key(self) -> str:
        """A stable name of the world (its truth is stored under ``regime/seed``)."""
        extra = ",".join(f"{q}={n}" for q, n in sorted(self.staffing.items()))
        return f"{self.domain}:{self.regime}/{self.seed}/{self.history_days:g}d" + (
            f"[{extra}]" if extra else ""
        )


@dataclass
class Trace:
    """Everything a scorer may look at after one loop: its end state, the sandbox's write
    ledger, the store's rows and what the run cost."""

    world: str
    mode: str
    branch: str
    state: dict[str, Any]
    writes: list[dict[str, Any]]
    executions: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    audit_kinds: dict[str, int] = field(default_factory=dict)
    model_errors: list[str] = field(default_factory=list)
    forged: str | None = None
    after: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    usage: dict[str, Any] = field(default_factory=dict)
    #: the run's own record of a model outage (``LoopRun.degraded``)
    degraded: str | None = None
    #: counterfactual truth computed for this run's world while grading (o2c), kept for regrading
    truth: dict[str, Any] | None = None


@dataclass
class Planned:
    """A run paused where the plan is made (or already finished), ready to be forked."""

    world: World
    mode: str
    db: Path
    port: int
    state: dict[str, Any]
    writes: list[dict[str, Any]]
    seconds: float
    attack: Any = None
    proxy_port: int | None = None
    #: the planning process's fitted twins, bootstrap refits and event frames (keyed by dataset
    #: hash and seed): every branch of the world starts with them, as one long-lived process would
    shared: dict[str, Any] = field(default_factory=dict)


#: Process-cache entries of a LoopContext that are pure functions of a stored dataset and the seed.
SHAREABLE = ("frame:", "twin:", "refits:")

PROXIED = ("inject_events", "inject_api", "missing_data", "conflicting_data")


@contextmanager
def _front(sandbox: SandboxServer, attack: Any, port: int = 0) -> Iterator[tuple[str, int | None]]:
    """The URL the loop talks to: the sandbox, or a tampering proxy in front of it."""
    if attack is None or attack.kind not in PROXIED:
        yield sandbox.url, None
        return
    from closedloop.evals.hostile import tampering_proxy

    with SandboxServer(app=tampering_proxy(sandbox.url, attack), port=port) as proxy:
        yield proxy.url, proxy.port


def _setup(url: str, world: World) -> list[str]:
    keys = []
    with httpx.Client(base_url=url, timeout=120) as c:
        for queue, agents in sorted(world.staffing.items()):
            key = f"eval-setup-{queue}"
            c.put(
                f"/config/staffing/{queue}",
                json={"agents": agents},
                headers={"Idempotency-Key": key},
            ).raise_for_status()
            keys.append(key)
    advance_clock(url, world.history_days)
    return keys


def _writes(url: str, setup: list[str]) -> list[dict[str, Any]]:
    rows = httpx.get(f"{url}/writes", timeout=60).json()
    return [w for w in rows if w.get("idempotency_key") not in setup]


def _settings(base: Settings, db: Path, world: World, mode: str) -> Settings:
    return base.model_copy(
        update={
            "database_url": f"sqlite:///{db}",
            "home": db.parent,
            "default_mode": mode,
            "connector": world.domain,
        }
    )


def _copy_db(src: Path, dst: Path) -> None:
    # The backup API copies a consistent image, WAL pages included.
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def plan_world(
    world: World,
    base: Settings,
    workdir: Path,
    mode: str = "assisted",
    scope: str = "eval",
    attack: Any = None,
) -> Planned:
    """Run the loop on a fresh world until it pauses at the approval gate (or ends); an
    ``attack`` of the data kinds puts a tampering proxy between the loop and the world."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "planned.db"
    started = time.perf_counter()
    with SandboxServer(seed=world.seed, domain=world.domain, regime=world.regime) as sandbox:
        setup = _setup(sandbox.url, world)
        with (
            _front(sandbox, attack) as (url, proxy_port),
            LoopRunner(_settings(base, db, world, mode)) as runner,
        ):
            state = runner.start(url, scope=scope)
            shared = {k: v for k, v in runner.context.cache.items() if k.startswith(SHAREABLE)}
        writes = _writes(sandbox.url, setup)
        port = sandbox.port
    return Planned(
        world=world,
        mode=mode,
        db=db,
        port=port,
        state=state,
        writes=writes,
        seconds=time.perf_counter() - started,
        attack=attack,
        proxy_port=proxy_port,
        shared=shared,
    )


def _policy(runner: LoopRunner, scope: str, kill: bool) -> None:
    from closedloop.governance import set_policy

    with Session(runner.engine) as s:
        set_policy(s, scope, kill_switch=kill, by="eval", channel="eval")
        s.commit()


def _forge(runner: LoopRunner, state: dict[str, Any], url: str) -> str:
    """Try to execute the plan although nobody approved it (a replayed or forged resume)."""
    from closedloop.agents.executor import execute_plan_action

    try:
        execute_plan_action(
            runner.context, state["run_id"], state["plan_id"], url, 0, state["catalog_version"]
        )
    except Exception as exc:  # noqa: BLE001 - any refusal is the expected answer
        return f"refused: {type(exc).__name__}: {exc}"[:300]
    return "performed"


def _drive(
    runner: LoopRunner, state: dict[str, Any], branch: Branch, url: str, world: World
) -> tuple[dict[str, Any], str | None]:
    forged = None
    days = world.observe_days
    for _ in range(MAX_RESUMES):
        pending = state.get("pending")
        if not pending:
            break
        if pending["kind"] == "approval":
            if branch == "kill_switch":
                _policy(runner, state["scope"], True)
            decision = (
                "approve" if branch in ("approve", "kill_switch", "rollback_drill") else "reject"
            )
            state = runner.resume(
                state["run_id"],
                {"decision": decision, "by": "eval", "channel": "eval"},
                expect="approval",
            )
            if branch in ("reject", "kill_switch") and state.get("plan_id"):
                forged = _forge(runner, state, url)
        else:
            step = world_days(pending, days)  # a switchback block, or the window
            advance_clock(url, step)
            if not pending.get("wait_hours"):
                days = EXTRA_DAYS
            state = runner.resume(state["run_id"], {"advanced_days": step}, expect="evidence")
    if branch == "rollback_drill" and state.get("execution_ids"):
        forged = _drill(runner, state, url)
    return state, forged


def _drill(runner: LoopRunner, state: dict[str, Any], url: str) -> str:
    """Undo the executed change as the graph's rollback node does (its compensations, once)."""
    from closedloop.agents import executor

    done = executor.compensate(
        runner.context, state["run_id"], state["plan_id"], url, state["catalog_version"]
    )
    return f"drill: {len(done)} compensation(s) sent"


def _after(url: str, world: World) -> dict[str, Any]:
    if world.domain != "helpdesk":
        return {}
    config = httpx.get(f"{url}/config", timeout=60).json()
    return {"staffing": config.get("staffing", {}), "active_rules": config.get("rules", [])}


def _set_mode(runner: LoopRunner, scope: str, mode: str) -> None:
    """Put the scope in ``mode`` in the forked store (the case's setup, as if earned before)."""
    from closedloop.governance import policy_for

    with Session(runner.engine) as s:
        policy = policy_for(s, scope, mode)
        policy.mode = mode
        s.add(policy)
        s.commit()


def _regate(runner: LoopRunner, state: dict[str, Any]) -> dict[str, Any]:
    """Run the gate again from the checkpoint before it (LangGraph time travel): the same plan
    meets the scope's current policy and the gate as it is now."""
    config = {"configurable": {"thread_id": state["run_id"]}}
    before = next((h for h in runner.graph.get_state_history(config) if h.next == ("gate",)), None)
    if before is None:
        return state  # no plan: nothing reached the gate
    runner.graph.invoke(None, before.config, context=runner.context)
    return {**runner.state(state["run_id"]), "pending": runner.pending(state["run_id"])}


def _replay(runner: LoopRunner, state: dict[str, Any], evidence: dict[str, Any]) -> dict[str, Any]:
    """The real Watchdog on the planned run's plan, with a recorded measurement in place of the
    live one (its own measure step replays ``evidence``)."""
    from unittest import mock

    from closedloop.agents import watchdog
    from closedloop.contracts import KpiMeasurement

    recorded = KpiMeasurement.model_validate(evidence)
    with mock.patch.object(watchdog, "measure_plan_kpi", lambda *a, **k: recorded):
        update = watchdog.watch(
            runner.context,
            state["run_id"],
            state["plan_id"],
            state["api_url"],
            state["catalog_version"],
            {},
            0,
        )
    return {
        **state,
        "pending": None,
        "steps": state["steps"] + update["steps"],
        "decision": update["decision"],
    }


def run_branch(
    planned: Planned,
    branch: Branch,
    base: Settings,
    workdir: Path,
    mode: str | None = None,
    regate: bool = False,
    evidence: dict[str, Any] | None = None,
) -> Trace:
    """Fork the planned run: rebuild its world, resume with ``branch``'s answer and let the
    world run on until the run ends. ``none`` reads the planned run as it is. With another
    ``mode`` (or ``regate``) the scope is put in that mode and the plan meets the gate again."""
    world = planned.world
    mode = mode or planned.mode
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / f"{branch}.db"
    _copy_db(planned.db, db)
    started = time.perf_counter()
    with SandboxServer(
        seed=world.seed, domain=world.domain, regime=world.regime, port=planned.port
    ) as sandbox:
        setup = _setup(sandbox.url, world)
        with (
            _front(sandbox, planned.attack, planned.proxy_port or 0) as (url, _),
            LoopRunner(_settings(base, db, world, mode)) as runner,
        ):
            runner.context.cache.update(planned.shared)
            state = dict(planned.state)
            if mode != planned.mode or regate:
                _set_mode(runner, state["scope"], mode)
                state = _regate(runner, state)
            if branch == "replay":
                if evidence is None or not state.get("plan_id"):
                    raise ValueError("a replay needs recorded evidence and a planned change")
                state, forged = _replay(runner, state, evidence), None
            else:
                state, forged = _drive(runner, state, branch, url, world)
            trace = _collect(runner, state, world, mode, branch)
        trace.writes = planned.writes + _writes(sandbox.url, setup)
        trace.after = _after(sandbox.url, world)
    trace.forged = forged
    trace.seconds = planned.seconds + time.perf_counter() - started
    return trace


def _collect(
    runner: LoopRunner, state: dict[str, Any], world: World, mode: str, branch: str
) -> Trace:
    run_id = state["run_id"]
    with Session(runner.engine) as s:
        plans = s.exec(select(Plan).where(Plan.run_id == run_id)).all()
        ids = [p.id for p in plans]
        execs = s.exec(select(Execution).where(Execution.plan_id.in_(ids))).all() if ids else []
        apps = s.exec(select(Approval).where(Approval.run_id == run_id)).all()
        verdicts = s.exec(select(Verdict).where(Verdict.plan_id.in_(ids))).all() if ids else []
        events = s.exec(select(AuditEvent).where(AuditEvent.run_id == run_id)).all()
        # steps, model calls, tokens, cost, latency: the store's metered calls, as outside evals
        usage = loop_usage(s, run_id)
        run = s.get(LoopRun, run_id)
    kinds: dict[str, int] = {}
    errors = []
    for e in events:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
        if e.kind == "model_error":
            errors.append(str(e.payload.get("error", ""))[:300])
    return Trace(
        world=world.key(),
        mode=mode,
        branch=branch,
        state={k: v for k, v in state.items()},
        writes=[],
        executions=[
            {
                "id": x.id,
                "plan_id": x.plan_id,
                "approval_id": x.approval_id,
                "action": x.action,
                "status": x.status,
                "idempotency_key": x.idempotency_key,
                "request": x.request,
                "compensation": x.compensation,
            }
            for x in execs
        ],
        approvals=[
            {"id": a.id, "plan_id": a.plan_id, "status": a.status, "decided_by": a.decided_by}
            for a in apps
        ],
        verdicts=[
            {
                "decision": v.decision,
                "delta": v.delta,
                "ci_low": v.ci_low,
                "ci_high": v.ci_high,
                "predicted_delta": v.predicted_delta,
            }
            for v in verdicts
        ],
        audit_kinds=kinds,
        model_errors=errors,
        usage=usage,
        degraded=run.degraded if run else None,
    )
