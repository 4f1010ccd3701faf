"""Precise exceptions raised by tools.

Tools raise these; one boundary (``closedloop.agents.runtime.run_tool`` for the
agents, ``closedloop.cli.main`` for people) turns them into messages.
"""

from __future__ import annotations


class ToolError(Exception):
    """Base class for every error a tool raises on purpose."""


class EventLogError(ToolError):
    """An event log cannot be read or validated (names file, line or column)."""


class ScenarioError(ToolError):
    """A what-if scenario is invalid (unknown activity or pool, negative staff...)."""


class InfeasibleError(ToolError):
    """An optimisation problem has no feasible solution."""


class ApiCallError(ToolError):
    """An enterprise API call failed after its retries."""


class NotAllowedError(ToolError):
    """A call the gate, the allowlist or the agent's tool set does not permit."""
