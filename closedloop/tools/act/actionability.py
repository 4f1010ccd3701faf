"""Can the connected system act on an activity? The catalog's change kinds meet the mined log.

Triage scores an insight's feasibility by whether the catalog can change it at
all: an activity whose pools map onto none of the system's pools, whose cases
pass no numeric threshold and have no segment the catalog can automate or
route, cannot be changed through this connector, however long its delay. The
checks are the Planner's own (:func:`closedloop.tools.act.candidates.candidates_for`,
without the twin's screening), so Triage and Planner never disagree on what
applies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.act.candidates import CAPACITY_KINDS, Opportunity, candidates_for
from closedloop.tools.base import read_tool
from closedloop.tools.connect import Catalog
from closedloop.tools.mining.opportunities import Lever
from closedloop.tools.twin import ProcessTwin


class KindCheck(BaseModel):
    """One catalog action's change kind at an activity: does it apply, and why (not)."""

    action: str
    change_kind: str
    applies: bool
    reason: str = Field(description="the change it would make, or why it cannot apply")


class Actionability(BaseModel):
    """Which of the catalog's change kinds can apply to an activity, given the mined log."""

    activity: str
    actionable: bool
    kinds: list[str] = Field(default_factory=list, description="change kinds that apply")
    lever: Lever = Field(description="none; capacity (only people apply); setting (a rule applies)")
    checks: list[KindCheck] = Field(default_factory=list)

    def rationale(self, limit: int = 3) -> str:
        """One sentence for people: what the catalog can do here, or why nothing."""
        if self.actionable:
            shown = [c for c in self.checks if c.applies][:limit]
            return "the catalog can act: " + "; ".join(
                f"{c.action} ({c.change_kind}): {c.reason}" for c in shown)
        if not self.checks:
            return "the catalog offers no change kind at all"
        shown = self.checks[:limit]
        more = len(self.checks) - len(shown)
        return "no catalog action can change it: " + "; ".join(
            f"{c.action} ({c.change_kind}): {c.reason}" for c in shown) + (
            f"; and {more} more" if more > 0 else "")


@read_tool
def actionability(catalog: Catalog, activity: str, kind: str,
                  segments: Sequence[Mapping[str, Any]], twin: ProcessTwin, frame: pd.DataFrame,
                  pools: Mapping[str, Any], members: Mapping[str, list[str]], share: float,
                  name_hint: bool = True) -> Actionability:
    """Which catalog change kinds can apply to ``activity`` (an insight of ``kind`` with its
    case ``segments``), by the Planner's candidate checks against the system's ``pools``.

    Applies: the kind yields at least one candidate whose parameters fit the
    catalog. Kinds the twin cannot simulate yet do not apply.
    """
    opp = Opportunity(activity=activity, kind=kind, segments=list(segments))
    made, dropped = candidates_for(catalog, opp, twin, frame, pools, members, share,
                                   name_hint=name_hint, screen=None)
    checks = [KindCheck(action=c.action, change_kind=c.change_kind, applies=True, reason=c.label)
              for c in made]
    checks += [KindCheck(action=d.action, change_kind=d.change_kind, applies=False,
                         reason=d.reason) for d in dropped]
    kinds = sorted({c.change_kind for c in made})
    lever: Lever = ("none" if not kinds else
                    "capacity" if set(kinds) <= set(CAPACITY_KINDS) else "setting")
    return Actionability(activity=activity, actionable=bool(kinds), kinds=kinds, lever=lever,
                         checks=checks)


__all__ = ["Actionability", "KindCheck", "actionability"]
