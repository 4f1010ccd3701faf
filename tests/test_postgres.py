"""The store and the checkpointer on PostgreSQL: a loop pauses and resumes across runners."""

from __future__ import annotations

import httpx
import pytest

from closedloop.demo import advance_clock
from closedloop.graphs.runner import LoopRunner
from closedloop.sandbox.server import SandboxServer
from closedloop.settings import Settings
from tests.postgres_server import postgres_url, unavailable_reason

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_url():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with postgres_url() as url:
        yield url


def test_loop_on_postgres_pauses_and_resumes_in_a_new_runner(pg_url, tmp_path):
    settings = Settings(DATABASE_URL=pg_url, CLOSEDLOOP_HOME=str(tmp_path))
    with SandboxServer(seed=7) as sandbox:
        advance_clock(sandbox.url, 21)
        with LoopRunner(settings) as runner:
            state = runner.start(sandbox.url, scope="helpdesk")
            assert state["pending"]["kind"] == "approval"
        with LoopRunner(settings) as other:  # a new runner: new connections, same database
            state = other.resume(state["run_id"], {"decision": "approve", "by": "pg"}, expect="approval")
        assert state["pending"]["kind"] == "evidence"
        writes = httpx.get(f"{sandbox.url}/writes").json()
    assert [w["replayed"] for w in writes] == [False]
