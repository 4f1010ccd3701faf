"""Deterministic tools, tagged READ or WRITE, grouped in rooms by capability.

Each room is a subpackage whose ``__init__`` is its public API:

- ``log``: read event logs into the canonical frame -- ``load_event_log``,
  ``frame_from_records``; column names in ``closedloop.tools.log.columns``.
- ``mining``: statistics, process models and diagnoses -- ``mine``,
  ``diagnose``, ``discover_dfg``, ``discover_petri_net``,
  ``replay_conformance``, ``check_conformance``, ``compare_models``,
  ``root_causes``, ``segment_profile``, ``score_insight``,
  ``insights_from_report``, ``render_process_map``.
- ``twin``: fit a process twin, simulate what-if scenarios, predict with
  uncertainty and backtest the twin -- ``fit_twin``, ``simulate``,
  ``simulate_log``, ``predict``, ``backtest_twin``.
- ``optimize``: CP-SAT plans checked in the twin -- ``optimize_staffing``,
  ``optimize_shifts``, ``optimize_assignment``, ``optimize_threshold``.
- ``rules``: automation rules learnt from history and backtested --
  ``generate_rules``, ``backtest_rule``, ``compile_condition``.
- ``act``: the action catalogue and the enterprise API (the only WRITE
  tools) -- ``list_catalog``, ``invoke_api``, ``fetch_events``,
  ``fetch_config``, ``actionability`` (what the catalog can change at an activity).
- ``measure``: effects of changes and how to measure them -- ``kpi_delta``,
  ``prediction_summary``, ``measure_cohorts``, ``choose_design``, ``switchback``,
  ``before_after_with_counterfactual``, ``treatment_control_corrected``,
  ``guardrail_kpis``, ``guardrail_check``, ``sequential_rework_check``,
  ``measure_change``, ``twin_counterfactual``, ``twin_interference``,
  ``twin_carry_over``, ``rollout_shares_resources``, ``automation_failures``.

Not a room of tools: ``closedloop.tools.connect`` builds the action catalog from a
connector (an OpenAPI spec plus ``x-closedloop-*`` annotations) and checks a connector
against its live API (``check_connector``); it has no tagged tools, ``act`` uses it.

Shared by every room: ``closedloop.tools.errors`` (precise exceptions) and
``closedloop.tools.base`` (the READ/WRITE tags).

Importing this package imports no room: ``closedloop.tools.fit_twin`` (any
name of :data:`TOOL_ROOMS`) is resolved on first access (PEP 562), so
``closedloop.tools.errors`` stays cheap. :func:`all_tools` imports every room
and lists its tagged tools, for tests and docs.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

ROOMS = ("log", "mining", "twin", "optimize", "rules", "act", "measure")

_ROOM_TOOLS: dict[str, tuple[str, ...]] = {
    "log": ("load_event_log", "frame_from_records"),
    "mining": (
        "mine", "diagnose", "discover_dfg", "discover_petri_net", "replay_conformance",
        "check_conformance", "compare_models", "root_causes", "segment_profile", "score_insight",
        "rescore_insight", "insights_from_report", "render_process_map",
    ),
    "twin": ("fit_twin", "simulate", "simulate_log", "predict", "backtest_twin"),
    "optimize": (
        "optimize_staffing", "optimize_shifts", "optimize_assignment", "optimize_threshold",
    ),
    "rules": ("generate_rules", "backtest_rule", "compile_condition"),
    "act": ("list_catalog", "invoke_api", "fetch_events", "fetch_config", "actionability"),
    "measure": (
        "kpi_delta", "prediction_summary", "measure_cohorts", "choose_design", "switchback",
        "before_after_with_counterfactual", "treatment_control_corrected", "guardrail_kpis",
        "guardrail_check", "sequential_rework_check", "measure_change", "twin_counterfactual",
        "twin_interference", "twin_carry_over", "rollout_shares_resources", "partial_automation",
        "automation_failures",
    ),
}  # fmt: skip

# Tool name -> the room package (facade) that exports it.
TOOL_ROOMS: dict[str, str] = {
    name: f"closedloop.tools.{room}" for room, names in _ROOM_TOOLS.items() for name in names
}

__all__ = ["ROOMS", "TOOL_ROOMS", "all_tools"]


def __getattr__(name: str) -> Any:
    """Resolve a tool name (or a room) on first access by importing its room."""
    if name in TOOL_ROOMS:
        value = getattr(importlib.import_module(TOOL_ROOMS[name]), name)
    elif name in ROOMS:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        # AttributeError also lets `from closedloop.tools import errors` import the submodule.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(TOOL_ROOMS) | set(ROOMS))


def all_tools() -> dict[str, list[Callable[..., Any]]]:
    """Per room, the tool functions tagged READ or WRITE (``fn.tool_kind``), by name.

    Imports every module of every room (slow: for tests and docs, not at run time).
    Each function is listed once, under the room of the module that defines it.
    """
    out: dict[str, list[Callable[..., Any]]] = {}
    for room in ROOMS:
        package = importlib.import_module(f"{__name__}.{room}")
        found: dict[str, Callable[..., Any]] = {}
        for info in pkgutil.iter_modules(package.__path__, prefix=f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for attr, value in vars(module).items():
                if (
                    callable(value)
                    and getattr(value, "tool_kind", None) is not None
                    and getattr(value, "__module__", None) == module.__name__
                ):
                    found[attr] = value
        out[room] = [found[name] for name in sorted(found)]
    return out
