"""Errors of run lookups and the approval answer a paused run is resumed with."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
)


class RunNotFound(LookupError):
    """No loop run or approval with that id."""


class NotPaused(RuntimeError):
    """The run is not waiting for what the caller tried to give it."""


class InvalidApproval(ValueError):
    """An approval answer that is neither 'approve' nor 'reject' (the run stays paused)."""


class ApprovalAnswer(BaseModel):
    """A human's answer to a plan waiting for approval (the value given to ``Command(resume=...)``)."""

    model_config = ConfigDict(extra="ignore")

    decision: Literal["approve", "reject"]
    by: str = "unknown"
    comment: str = ""
    channel: str = "cli"


def parse_approval(value: Any) -> ApprovalAnswer:
    """The approval answer in ``value`` (a dict, an ``ApprovalAnswer`` or a bare 'approve'/'reject')."""
    if isinstance(value, ApprovalAnswer):
        return value
    if isinstance(value, str):
        value = {"decision": value}
    try:
        return ApprovalAnswer.model_validate(value)
    except ValidationError as exc:
        got = value.get("decision") if isinstance(value, dict) else value
        raise InvalidApproval(f"an approval answer must be 'approve' or 'reject', got {got!r}") from exc


# --------------------------------------------------------------------------- step records
