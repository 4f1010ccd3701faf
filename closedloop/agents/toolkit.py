"""Wrap plain typed functions as tools an agent's model can call."""

from __future__ import annotations

from collections.abc import Callable

from langchain_core.tools import StructuredTool

from closedloop.tools.base import ToolKind


def make_tool(func: Callable, kind: ToolKind, name: str | None = None) -> StructuredTool:
    """A LangChain tool from ``func`` (its docstring is what the model reads), tagged READ/WRITE."""
    tool = StructuredTool.from_function(func=func, name=name or func.__name__, parse_docstring=False)
    tool.metadata = {"kind": kind.value}
    return tool


def is_write(tool: StructuredTool) -> bool:
    """True when the tool changes the outside world."""
    return (tool.metadata or {}).get("kind") == ToolKind.WRITE.value
