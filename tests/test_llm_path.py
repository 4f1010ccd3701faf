"""The real openai client against a local OpenAI-compatible server on loopback.

The server plays a model that calls tools properly, answers Triage validly,
and gives invalid answers elsewhere: those must be retried, then replaced by
the offline policy, never acted on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fastapi import FastAPI, Request
from sqlmodel import Session, select

from closedloop.demo import advance_clock
from closedloop.graphs.runner import LoopRunner
from closedloop.sandbox.server import SandboxServer, bind_socket
from closedloop.settings import Settings
from closedloop.store.models import AuditEvent
from tests.helpers_model import completion, serve

SECRET = "sk-test-do-not-log-4242"


def scripted_model(seen: list[dict]) -> FastAPI:
    app = FastAPI()

    def reply(message: dict) -> dict:
        return completion(message, "scripted-model")

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> dict:
        body = await request.json()
        seen.append({"auth": request.headers.get("authorization"), "body": body})
        messages, tools = body["messages"], body.get("tools", [])
        system = messages[0]["content"]
        tool_msgs = [m for m in messages if m["role"] == "tool"]
        if tools and not tool_msgs:
            name = tools[0]["function"]["name"]
            return reply({"role": "assistant", "content": None, "tool_calls": [
                {"id": "call-1", "type": "function", "function": {"name": name, "arguments": "{}"}}]})
        if "**Triage**" in system:
            insights = json.loads(tool_msgs[-1]["content"])
            best = max(insights, key=lambda i: i["priority"])
            return reply({"role": "assistant", "content": json.dumps(
                {"selected": [{"insight_id": best["insight_id"], "rationale": "largest priority"}],
                 "missing_data": [], "summary": "one opportunity"})})
        return reply({"role": "assistant", "content": "Sure, let's just do it!"})

    return app


@pytest.fixture
def model_server():
    seen: list[dict] = []
    with serve(scripted_model(seen)) as url:
        yield url, seen


def test_llm_output_is_validated_and_invalid_output_falls_back(tmp_path, model_server):
    base_url, seen = model_server
    settings = Settings(DATABASE_URL=f"sqlite:///{tmp_path}/s.db", CLOSEDLOOP_HOME=str(tmp_path),
                        OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=base_url, CLOSEDLOOP_MODEL="scripted-model")
    with SandboxServer(seed=3) as sandbox, LoopRunner(settings) as runner:
        advance_clock(sandbox.url, 21)
        state = runner.start(sandbox.url, scope="helpdesk")
    steps = {s["step"]: s for s in state["steps"]}
    assert steps["triage"]["agent_model"] == "scripted-model" and not steps["triage"]["fallback"]
    assert steps["plan"]["fallback"] is True  # invalid answers were replaced by the offline policy
    assert state["pending"]["kind"] == "approval"
    assert all(r["auth"] == f"Bearer {SECRET}" for r in seen)
    assert any(r["body"].get("tools") for r in seen)
    with Session(runner.engine) as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.run_id == state["run_id"])).all()
    assert any(e.kind == "model_invalid" and e.actor == "planner" for e in events)
    assert SECRET not in json.dumps([e.payload for e in events])


def test_a_model_outage_is_not_a_clean_run(tmp_path):
    # A model server that is down (a closed loopback port): the offline policy decides in its
    # place, every step says so, and the command exits 4, not 0.
    closed = bind_socket()
    port = closed.getsockname()[1]
    closed.close()
    with SandboxServer(seed=3) as sandbox:
        advance_clock(sandbox.url, 21)
        env = {**os.environ, "CLOSEDLOOP_HOME": str(tmp_path), "OPENAI_API_KEY": SECRET,
               "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "CLOSEDLOOP_MODEL": "gone"}
        out = subprocess.run([sys.executable, "-m", "closedloop.cli", "run", "--api", sandbox.url,
                              "--json"], check=False, env=env, capture_output=True, text=True,
                             timeout=600)
    assert out.returncode == 4, out.stderr[-2000:]
    assert "the configured model failed" in out.stderr
    state = json.loads(out.stdout)
    assert state["pending"]["kind"] == "approval"  # nothing written: the gate still holds
    assert any(s.get("fallback") for s in state["steps"])
