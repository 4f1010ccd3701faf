"""Deliberately broken agents and tools: the eval suite must fail on (kill) every one.

A mutant is a set of patches of named module attributes, applied only while
the suite runs under it (:func:`applied`). Each stands for a real way the loop
could break: an agent that decides badly, a guard that is gone, a tool that
lies. ``closedloop eval --mutants`` runs the suite under each and reports the
kill rate; the do-nothing planner is also the baseline scored beside the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib import import_module
from typing import Any
from unittest import mock

from closedloop.evals.mutants import breakers as b


@dataclass(frozen=True)
class Mutant:
    """One deliberately broken part: ``patches`` maps ``module:attribute`` to a factory that gets
    the original and returns the broken replacement."""

    name: str
    what: str
    patches: dict[str, Callable[[Any], Any]]
    #: "plan": breaks observe, triage or plan (a world must be planned again under it);
    #: "gate": breaks the gate (the unbroken plan meets the broken gate again);
    #: "act": breaks what happens after the gate (the unbroken plan can be reused).
    stage: str = "plan"


MUTANTS: dict[str, Mutant] = {
    m.name: m
    for m in (
        Mutant(
            "triage_nothing",
            "Triage selects no opportunity",
            {"closedloop.agents.triage:TRIAGE": b.triage_spec("nothing")},
        ),
        Mutant(
            "triage_reversed",
            "Triage picks the lowest-priority insights first",
            {"closedloop.agents.triage:TRIAGE": b.triage_spec("reversed")},
        ),
        Mutant(
            "triage_random",
            "Triage picks insights at random (seeded)",
            {"closedloop.agents.triage:TRIAGE": b.triage_spec("random")},
        ),
        Mutant(
            "planner_nothing",
            "the Planner never proposes a change (the do-nothing baseline)",
            {"closedloop.agents.planner:plan": b.no_plan},
        ),
        Mutant(
            "planner_first_candidate",
            "the Planner proposes the first candidate without predicting",
            {"closedloop.agents.planner:PLANNER": b.planner_spec("first")},
        ),
        Mutant(
            "planner_ignores_bar",
            "the Planner's bar (min improvement at p90) is gone",
            {
                "closedloop.agents.planner:shortfall": lambda orig: lambda *a, **k: None,
                "closedloop.agents.planner:decide": lambda orig: lambda w, m: orig(w, -1e9),
            },
        ),
        Mutant(
            "prediction_inflated_x3",
            "every prediction the Planner cites is three times too good",
            {"closedloop.agents.planner:contract_prediction": b.inflated(3.0)},
        ),
        Mutant(
            "watchdog_always_keep",
            "the Watchdog's rules always say KEEP",
            {
                "closedloop.agents.watchdog:rule_decision": lambda orig: lambda m: "keep",
                "closedloop.agents.watchdog:WATCHDOG": b.watchdog_spec("keep"),
            },
            "act",
        ),
        Mutant(
            "watchdog_always_rollback",
            "the Watchdog always rolls back",
            {
                "closedloop.agents.watchdog:rule_decision": lambda orig: lambda m: "rollback",
                "closedloop.agents.watchdog:WATCHDOG": b.watchdog_spec("rollback"),
            },
            "act",
        ),
        Mutant(
            "watchdog_reversed",
            "the Watchdog keeps what got worse and rolls back what got better",
            {"closedloop.agents.watchdog:rule_decision": b.reversed_decision},
            "act",
        ),
        Mutant(
            "watchdog_ignores_guardrail",
            "the Watchdog ignores guardrail breaches",
            {"closedloop.agents.watchdog:rule_decision": b.no_guardrail},
            "act",
        ),
        Mutant(
            "executor_no_approval_check",
            "the Executor runs plans whatever their approval",
            {
                "closedloop.agents.executor:EXECUTABLE_STATUSES": lambda orig: b.EVERYTHING,
                "closedloop.agents.executor:kill_switch_on": lambda orig: lambda *a, **k: False,
            },
            "act",
        ),
        Mutant(
            "approval_ignores_kill_switch",
            "an approval goes through with the kill switch on",
            {"closedloop.graphs.gate:kill_switch_on": lambda orig: lambda *a, **k: False},
            "act",
        ),
        Mutant(
            "gate_always_execute",
            "the gate executes every plan without asking anyone",
            {"closedloop.graphs.gate:route_plan": b.always_route("execute")},
            "gate",
        ),
        Mutant(
            "gate_ignores_shadow",
            "the gate asks for approval (and then acts) in shadow mode",
            {"closedloop.graphs.gate:route_plan": b.shadow_as_assisted},
            "gate",
        ),
        Mutant(
            "rollback_noop",
            "a rollback sends no compensation",
            {"closedloop.agents.executor:compensate": lambda orig: lambda *a, **k: []},
            "act",
        ),
        Mutant(
            "learn_self_promotes",
            "a kept change promotes the scope to supervised without a human",
            {"closedloop.graphs.learn:apply_verdict": b.self_promote},
            "act",
        ),
        Mutant(
            "rules_inverted",
            "the rule learner's rules predict the opposite decision",
            {"closedloop.evals.people:generate_rules": b.inverted_rules},
            "act",
        ),
    )
}


def resolve(name: str | Mutant | None) -> Mutant | None:
    """The mutant called ``name`` (a ``Mutant`` itself, e.g. a policy's patches, as it is)."""
    if name is None or isinstance(name, Mutant):
        return name
    if name not in MUTANTS:
        raise KeyError(f"unknown mutant {name!r}; known: {', '.join(MUTANTS)}")
    return MUTANTS[name]


def stage(name: str | Mutant | None) -> str | None:
    """What the mutant breaks first: "plan", "gate" or "act" (None: nothing)."""
    mutant = resolve(name)
    return mutant.stage if mutant else None


@contextmanager
def applied(name: str | Mutant | None) -> Iterator[Mutant | None]:
    """Apply mutant ``name`` (None: nothing) for the duration of the block."""
    mutant = resolve(name)
    if mutant is None:
        yield None
        return
    with ExitStack() as stack:
        for target, factory in mutant.patches.items():
            module, attr = target.split(":")
            original = getattr(import_module(module), attr)
            stack.enter_context(mock.patch(f"{module}.{attr}", factory(original)))
        yield mutant
