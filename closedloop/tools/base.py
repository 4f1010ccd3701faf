"""READ / WRITE tagging of tools, declared once at the tool function.

Only WRITE tools change the outside world, and only an agent declared to
write (the Executor) may be given one: ``closedloop.agents.toolkit.make_tool``
reads ``fn.tool_kind`` (and refuses an untagged function), the agent runtime
enforces it.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TypeVar

F = TypeVar("F", bound=Callable)


class ToolKind(str, Enum):
    READ = "read"
    WRITE = "write"


def tool_kind(kind: ToolKind) -> Callable[[F], F]:
    """Tag a tool function as READ or WRITE (stored on ``fn.tool_kind``)."""

    def decorate(fn: F) -> F:
        fn.tool_kind = kind  # type: ignore[attr-defined]
        return fn

    return decorate


read_tool = tool_kind(ToolKind.READ)
write_tool = tool_kind(ToolKind.WRITE)
