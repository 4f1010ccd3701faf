"""Which design measures a change without bias, and why."""

from __future__ import annotations

from closedloop.contracts import DesignChoice
from closedloop.tools.base import read_tool

# Changes of who works (headcount, shifts, assignment) act on everyone at once and carry over
# for days (queues drain slowly, people learn), so they are measured before/after.
STAFFING_KINDS = frozenset(
    {"staffing", "add_capacity", "set_capacity", "shifts", "shift", "assignment"}
)


@read_tool
def choose_design(
    change_kind: str, shares_resources: bool, can_split: bool, can_toggle: bool
) -> DesignChoice:
    """The measurement design for a change.

    ``shares_resources``: treated and untreated cases are served by the same
    people (the usual case); ``can_split``: the system can apply the change to
    a random share of cases; ``can_toggle``: it can switch the change on and
    off by time blocks (a rule, a threshold, a routing).
    """
    if change_kind in STAFFING_KINDS:
        return DesignChoice(
            design="before_after_with_counterfactual",
            why=(
                f"a {change_kind} change acts on every case at once and cannot be split or toggled "
                "without long carry-over"
            ),
        )
    if can_split and not shares_resources:
        return DesignChoice(
            design="treatment_control",
            why=(
                "treated and control cases share no resources, so treatment vs control is unbiased"
            ),
        )
    if can_toggle:
        return DesignChoice(
            design="switchback",
            why=(
                "treated and control cases would share resources (control cases speed up too), and the "
                "system can toggle the change: alternating time blocks measure the total effect"
            ),
        )
    if can_split:
        return DesignChoice(
            design="treatment_control_corrected",
            why=(
                "treated and control cases share resources and the change cannot be toggled by time: "
                "treatment vs control, corrected by the twin's predicted interference"
            ),
        )
    return DesignChoice(
        design="before_after_with_counterfactual",
        why=(
            "the change can be neither split nor toggled"
        ),
    )
