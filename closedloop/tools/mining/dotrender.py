"""Graphviz rendering shared by the process map and the model exports (BPMN and PNML layout)."""

from __future__ import annotations

from typing import Any

from closedloop.tools.errors import ToolError

__all__ = ["graphviz_pipe"]


def graphviz_pipe(graph: Any, fmt: str) -> bytes:
    """Render a ``graphviz.Digraph`` to bytes; a clear ToolError when ``dot`` is missing."""
    import graphviz

    try:
        return graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound as exc:
        raise ToolError(
            "Graphviz 'dot' is not installed: install the graphviz system package "
            "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz)"
        ) from exc
    except graphviz.CalledProcessError as exc:
        raise ToolError(f"Graphviz failed to render the graph: {exc.stderr!r}") from exc
