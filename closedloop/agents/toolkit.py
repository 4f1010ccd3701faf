"""Wrap plain typed functions as tools an agent's model can call.

A tool's READ/WRITE tag is declared once, on the function (``@read_tool`` /
``@write_tool`` from ``closedloop.tools.base``); this module copies it onto the
LangChain tool, where the agent runtime enforces it.
"""

from __future__ import annotations

from collections.abc import Callable

from langchain_core.tools import StructuredTool

from closedloop.tools.base import ToolKind


class UntaggedToolError(TypeError):
    """A function offered as a tool without a READ/WRITE tag."""


def make_tool(func: Callable, name: str | None = None) -> StructuredTool:
    """A LangChain tool from ``func`` (its docstring is what the model reads), tagged as ``func`` declares."""
    kind = getattr(func, "tool_kind", None)
    if not isinstance(kind, ToolKind):
        raise UntaggedToolError(
            f"tool function {getattr(func, '__qualname__', func)!r} has no READ/WRITE tag; "
            "decorate it with @read_tool or @write_tool (closedloop.tools.base)")
    tool = StructuredTool.from_function(func=func, name=name or func.__name__, parse_docstring=False)
    tool.metadata = {"kind": kind.value}
    return tool


def is_write(tool: StructuredTool) -> bool:
    """True when the tool changes the outside world."""
    return (tool.metadata or {}).get("kind") == ToolKind.WRITE.value
