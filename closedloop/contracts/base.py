"""The base of the step and measurement records, and the statuses of a run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    SerializerFunctionWrapHandler,
    model_serializer,
)

RunStatus = Literal[
    "running", "paused", "failed", "completed", "kept", "rolled_back", "escalated", "rejected", "blocked",
    "shadowed", "no_plan", "needs_data", "nothing_to_do", "execution_failed",
]
"""Every status a loop run can have (``LoopRun.status``, the final ``outcome`` of a run)."""


class Record(BaseModel):
    """A model whose dump omits optional fields that were never set (see the module docstring)."""

    @model_serializer(mode="wrap")
    def _omit_unset_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        kept = {k: v for k, v in data.items() if v is not None or k in self.model_fields_set}
        return {"step": kept.pop("step"), **kept} if "step" in kept else kept


# --------------------------------------------------------------------------- prediction
