"""OfflineRulePolicy: a deterministic, rule-based stand-in for an LLM.

It implements langchain-core's chat-model interface, including tool calls, so
the agents run unchanged with no network. Each agent's ``AgentSpec`` passes in
its ``offline_step(messages) -> AIMessage`` function: it reads the tool results in
the conversation so far and either asks for the next tool or answers with the
agent's JSON output. It never invents numbers: it only copies them from tool
results.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool

OfflineStep = Callable[[Sequence[BaseMessage]], AIMessage]


class OfflineRulePolicy(BaseChatModel):
    """Deterministic rule-based policy for one agent, behind the chat-model interface."""

    agent: str
    step: OfflineStep

    @property
    def _llm_type(self) -> str:
        return "closedloop-offline-rule-policy"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any) -> Runnable:
        """Accept tools like any tool-calling model (the policy knows its agent's tools)."""
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        message = self.step(messages)
        return ChatResult(generations=[ChatGeneration(message=message)])


def tool_results(messages: Sequence[BaseMessage]) -> dict[str, list[Any]]:
    """Parsed JSON results of every tool call so far, by tool name (errors included)."""
    names: dict[str, str] = {}
    for m in messages:
        if isinstance(m, AIMessage):
            for call in m.tool_calls:
                names[call["id"]] = call["name"]
    out: dict[str, list[Any]] = {}
    for m in messages:
        if isinstance(m, ToolMessage):
            try:
                value = json.loads(m.content) if isinstance(m.content, str) else m.content
            except json.JSONDecodeError:
                value = {"error": m.content}
            out.setdefault(names.get(m.tool_call_id, m.name or "?"), []).append(value)
    return out


def first_human_json(messages: Sequence[BaseMessage]) -> dict[str, Any]:
    """The JSON task payload the agent runtime puts in the first human message."""
    for m in messages:
        if isinstance(m, HumanMessage):
            text = m.content if isinstance(m.content, str) else json.dumps(m.content)
            start = text.find("```json")
            if start >= 0:
                end = text.find("```", start + 7)
                return json.loads(text[start + 7 : end])
    return {}


def call_tool(name: str, args: dict[str, Any], messages: Sequence[BaseMessage]) -> AIMessage:
    """An AI message asking for one tool call (its id is deterministic)."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"offline-{name}-{len(messages)}"}])


def answer(payload: dict[str, Any]) -> AIMessage:
    """The agent's final answer as JSON text."""
    return AIMessage(content=json.dumps(payload))
