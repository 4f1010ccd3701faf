"""The agent runtime: one declaration per agent, tags enforced, only tool errors reach the model."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from closedloop.agents.executor import EXECUTOR
from closedloop.agents.offline import answer, call_tool, tool_results
from closedloop.agents.planner import PLANNER
from closedloop.agents.runtime import AgentSpec, AuditTrail, run_agent, run_tool
from closedloop.agents.toolkit import UntaggedToolError, make_tool
from closedloop.agents.triage import TRIAGE
from closedloop.agents.watchdog import WATCHDOG
from closedloop.tools.act.invoke import invoke_api
from closedloop.tools.base import ToolKind, read_tool, write_tool
from closedloop.tools.errors import ScenarioError

AGENTS = Path(__file__).resolve().parents[1] / "closedloop" / "agents"


class Echo(BaseModel):
    value: int


def echo_step(messages):
    results = tool_results(messages)
    if "lookup" not in results:
        return call_tool("lookup", {"key": "a"}, messages)
    return answer({"value": results["lookup"][-1].get("value", -1)})


ECHO = AgentSpec(name="echo", prompt="triage", output=Echo, offline_step=echo_step)


def run_echo(tool_fn) -> Echo:
    audit = AuditTrail("run-test")
    return run_agent(ECHO, {}, [make_tool(tool_fn, "lookup")], ECHO.offline_model(), audit).output


def test_each_agent_is_declared_once_with_its_prompt_and_policy() -> None:
    for spec, name in [(TRIAGE, "triage"), (PLANNER, "planner"), (EXECUTOR, "executor"), (WATCHDOG, "watchdog")]:
        assert spec.name == spec.prompt == name
        assert spec.offline_model().step is spec.offline_step
    assert EXECUTOR.may_write and not (TRIAGE.may_write or PLANNER.may_write or WATCHDOG.may_write)


def test_offline_policy_imports_no_agent_module() -> None:
    tree = ast.parse((AGENTS / "offline.py").read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith("closedloop.agents")}


def test_an_untagged_tool_function_is_refused() -> None:
    def lookup(key: str) -> dict:
        """Look a key up."""
        return {"value": 1}

    with pytest.raises(UntaggedToolError, match="lookup.*@read_tool or @write_tool"):
        make_tool(lookup)


def test_the_tag_is_read_from_the_function() -> None:
    @read_tool
    def lookup(key: str) -> dict:
        """Look a key up."""
        return {"value": 1}

    assert make_tool(lookup).metadata == {"kind": "read"}
    assert make_tool(invoke_api).metadata == {"kind": "write"}
    assert invoke_api.tool_kind is ToolKind.WRITE


def test_a_write_tool_is_refused_to_an_agent_that_may_not_write() -> None:
    @write_tool
    def lookup(key: str) -> dict:
        """Change something."""
        return {"value": 1}

    with pytest.raises(PermissionError, match="may not be given WRITE tool lookup"):
        run_echo(lookup)
    writer = AgentSpec(name="echo", prompt="triage", output=Echo, offline_step=echo_step, may_write=True)
    outcome = run_agent(writer, {}, [make_tool(lookup)], writer.offline_model(), AuditTrail("r"))
    assert outcome.output.value == 1


def test_tool_errors_become_messages_for_the_model() -> None:
    @read_tool
    def lookup(key: str) -> dict:
        """Look a key up."""
        raise ScenarioError(f"no key {key!r}")

    assert run_echo(lookup).value == -1  # the policy saw {"error": ...} and answered
    error = json.loads(run_tool(make_tool(lookup), {"key": "a"}))
    assert error == {"error": "ScenarioError: no key 'a'"}
    # Bad arguments from the model are its mistake too.
    assert "ValidationError" in json.loads(run_tool(make_tool(lookup), {"key": ["not", "a", "str"]}))["error"]


@pytest.mark.parametrize("bug", [ValueError("bug"), KeyError("bug")])
def test_value_and_key_errors_are_bugs_and_propagate(bug: Exception) -> None:
    @read_tool
    def lookup(key: str) -> dict:
        """Look a key up."""
        raise bug

    with pytest.raises(type(bug)):
        run_echo(lookup)
