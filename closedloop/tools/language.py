"""Old import path of model comparison and trace reading, kept for one release.

Use ``closedloop.tools.mining`` (or ``closedloop.tools.mining.language``) instead.
"""

from __future__ import annotations

from closedloop.tools.mining import (
    CompiledNet,
    ModelComparison,
    compare_models,
    frame_from_traces,
    read_traces,
)

__all__ = ["CompiledNet", "ModelComparison", "compare_models", "frame_from_traces", "read_traces"]
