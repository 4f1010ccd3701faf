"""Old import path of the discovery tools, kept for one release.

Use ``closedloop.tools.mining`` (or ``closedloop.tools.mining.discovery``) instead.
"""

from __future__ import annotations

from closedloop.tools.mining import (
    DEFAULT_NOISE_THRESHOLD,
    IMF_BUDGET_EVENTS,
    SELECTION_GRID,
    CandidateScore,
    DfgModel,
    DiscoveredModel,
    TimedDfgEdge,
    discover_dfg,
    discover_petri_net,
    filter_dfg,
    petri_net,
    process_tree,
)

__all__ = [
    "DEFAULT_NOISE_THRESHOLD",
    "IMF_BUDGET_EVENTS",
    "SELECTION_GRID",
    "CandidateScore",
    "DfgModel",
    "DiscoveredModel",
    "TimedDfgEdge",
    "discover_dfg",
    "discover_petri_net",
    "filter_dfg",
    "petri_net",
    "process_tree",
]
