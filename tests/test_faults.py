"""Writes under injected faults (5xx, 429 with Retry-After, timeouts, answers lost after commit,
correlated in bursts) against the real sandbox on loopback: >= 99 % applied, the rest
dead-lettered, no duplicate, no live write the store does not know; a replay of the dead
letters resolves them. Plus the unit behaviour of retries, Retry-After and the breaker."""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import select

from closedloop.agents.binding import bind_catalog
from closedloop.agents.context import LoopContext
from closedloop.agents.executor import execute_plan_action
from closedloop.governance import set_caps
from closedloop.graphs.deadletters import replay_dead_letter
from closedloop.sandbox.server import SandboxServer
from closedloop.settings import Settings
from closedloop.store.db import open_store, transaction
from closedloop.store.models import DeadLetter, Execution
from closedloop.tools.act.invoke import (
    ApiRequest,
    CircuitBreaker,
    CircuitOpen,
    OutcomeUnknown,
    send,
)
from closedloop.tools.errors import ApiCallError
from tests.helpers_store import add_approval, add_plan, add_run, opportunity
from tests.sandbox_process import applied_writes

WRITES = 100


def _plans(engine, version: str, n: int) -> list[tuple[str, int]]:
    out = []
    with transaction(engine) as s:
        opp = opportunity(s, "faults")
        for i in range(n):
            run = add_run(s, f"run-fault-{i:04d}", catalog_version=version)
            plan = add_plan(
                s,
                run,
                opp,
                status="approved",
                actions=[
                    {
                        "action": "set_queue_staffing",
                        "params": {"queue": "L1" if i % 2 else "L2", "agents": 3 + i % 5},
                    }
                ],
            )
            add_approval(s, plan, status="approved", channel="cli", decided_by="ops-lead")
            out.append((run.id, plan.id))
    return out


@pytest.mark.parametrize("rate", [0.10, 0.30])
def test_writes_under_faults_apply_once_or_dead_letter(tmp_path, monkeypatch, rate):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings = Settings(
        CLOSEDLOOP_HOME=tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path}/s.db",
        CLOSEDLOOP_API_RETRIES=10,
        CLOSEDLOOP_API_TIMEOUT=0.5,
    )
    engine = open_store(settings.resolved_database_url())
    with SandboxServer(seed=5) as sandbox:
        version, base = bind_catalog(settings, engine, sandbox.url)
        with transaction(engine) as s:
            set_caps(s, "helpdesk", {"max_writes_per_day": 10_000}, by="ops-lead", channel="test")
        plans = _plans(engine, version, WRITES)
        quarter = rate / 4
        faults = {
            "error_rate": quarter,
            "throttle_rate": quarter,
            "retry_after_s": 0.3,
            "timeout_rate": quarter,
            "timeout_s": 0.8,
            "lost_rate": quarter,
            "correlation": 0.25,
            "seed": int(rate * 100),
        }
        httpx.put(f"{sandbox.url}/faults", json=faults).raise_for_status()
        ctx = LoopContext(settings=settings, engine=engine)
        for run_id, plan_id in plans:
            try:
                execute_plan_action(ctx, run_id, plan_id, base, 0, version)
            except ApiCallError:
                pass  # recorded as unknown or failed, and dead-lettered
        counts = httpx.get(f"{sandbox.url}/faults").json()["counts"]
        assert all(counts[k] > 0 for k in ("error", "throttle", "timeout", "lost")), counts
        with transaction(engine) as s:
            rows = s.exec(select(Execution)).all()
            letters = s.exec(select(DeadLetter).where(DeadLetter.status == "open")).all()
        applied = [r for r in rows if r.status == "succeeded"]
        assert len(rows) == WRITES
        assert len(applied) >= 0.99 * WRITES, [r.response for r in rows if r.status != "succeeded"]
        assert {r.id for r in rows if r.status != "succeeded"} == {d.execution_id for d in letters}
        assert not [
            r
            for r in rows
            if r.status == "failed" and r.response.get("error", "").find("lost") >= 0
        ]

        httpx.put(f"{sandbox.url}/faults", json={}).raise_for_status()
        for letter in letters:
            replay_dead_letter(ctx, letter.id)
        ctx.close()
        writes = applied_writes(sandbox.url)
    keys = [w["idempotency_key"] for w in writes]
    assert len(keys) == len(set(keys)), "a write was applied twice"
    with transaction(engine) as s:
        rows = {r.idempotency_key: r for r in s.exec(select(Execution)).all()}
    live_unknown = [k for k in keys if rows[k].status not in ("succeeded", "unverified")]
    assert live_unknown == [], "a live write the store does not know as applied"
    assert all(r.status == "succeeded" for r in rows.values())


class _Script(httpx.BaseTransport):
    """Answers from a list, one per request; records what was sent."""

    def __init__(self, answers: list) -> None:
        self.answers = list(answers)
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


WRITE = ApiRequest(
    method="POST",
    url="http://sys/rules",
    headers={"Idempotency-Key": "key-12345678"},
    body={"a": 1},
    idempotency_key="key-12345678",
)


def test_retry_after_is_honoured_and_4xx_is_not_retried():
    waits: list[float] = []
    transport = _Script(
        [httpx.Response(429, headers={"Retry-After": "5"}), httpx.Response(201, json={"ok": 1})]
    )
    result = send(httpx.Client(transport=transport), WRITE, retries=3, sleep=waits.append)
    assert result.attempts == 2 and waits and waits[0] >= 5
    transport = _Script([httpx.Response(400, json={"bad": 1})])
    with pytest.raises(ApiCallError, match="rejected"):
        send(httpx.Client(transport=transport), WRITE, retries=3, sleep=waits.append)
    assert len(transport.sent) == 1


def test_lost_answer_is_unknown_never_failed_and_unkeyed_writes_are_not_resent():
    lost = httpx.RemoteProtocolError("peer closed connection")
    transport = _Script([lost] * 3)
    with pytest.raises(OutcomeUnknown):
        send(httpx.Client(transport=transport), WRITE, retries=2, sleep=lambda _s: None)
    bare = WRITE.model_copy(update={"headers": {}})
    transport = _Script([lost, httpx.Response(201)])
    with pytest.raises(OutcomeUnknown, match="cannot be resent"):
        send(httpx.Client(transport=transport), bare, retries=3, sleep=lambda _s: None)
    assert len(transport.sent) == 1
    # A request that never left (connection refused) is a plain failure.
    transport = _Script([httpx.ConnectError("refused")] * 2)
    with pytest.raises(ApiCallError) as info:
        send(httpx.Client(transport=transport), WRITE, retries=1, sleep=lambda _s: None)
    assert not isinstance(info.value, OutcomeUnknown)


def test_circuit_breaker_opens_then_lets_one_trial_through():
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, cooldown_s=10, clock=lambda: now[0])
    transport = _Script([httpx.Response(500)] * 3)
    read = ApiRequest(method="GET", url="http://sys/config")
    with pytest.raises(ApiCallError):
        send(
            httpx.Client(transport=transport),
            read,
            retries=2,
            sleep=lambda _s: None,
            breaker=breaker,
        )
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        send(httpx.Client(transport=_Script([])), read, retries=0, breaker=breaker)
    now[0] = 11
    assert breaker.state == "half_open"
    send(
        httpx.Client(transport=_Script([httpx.Response(200, json={})])),
        read,
        retries=0,
        breaker=breaker,
    )
    assert breaker.state == "closed"
