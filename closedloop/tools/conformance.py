"""Old import path of the conformance tools, kept for one release.

Use ``closedloop.tools.mining`` (or ``closedloop.tools.mining.conformance``) instead.
"""

from __future__ import annotations

from closedloop.tools.mining import (
    DEFAULT_MAX_REPLAY_STEPS,
    CaseDeviation,
    ConformanceReport,
    DiscoveredNet,
    check_conformance,
    discovered_net,
    load_reference_model,
    replay_conformance,
)

__all__ = [
    "DEFAULT_MAX_REPLAY_STEPS",
    "CaseDeviation",
    "ConformanceReport",
    "DiscoveredNet",
    "check_conformance",
    "discovered_net",
    "load_reference_model",
    "replay_conformance",
]
