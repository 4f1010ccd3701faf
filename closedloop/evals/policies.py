"""Any policy on the same cases: ``closedloop eval --policy NAME_OR_MODULE:FACTORY``.

A policy decides what the agents' models answer. The suite runs each policy
on the same cases and worlds, planned afresh under it, and puts their numbers
side by side. Built in:

- ``offline``: the offline rule policy of every agent (what CI scores);
- ``configured``: the model the settings configure (an OpenAI-compatible LLM when
  ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` are set, else the offline policy);
- ``nothing``: the Planner never proposes a change (the do-nothing baseline);
- ``first``: the Planner proposes the first candidate, predicting only it;
- ``random``: the Planner proposes a random candidate (seeded by the candidates).

A user's own policy is ``module:factory``: ``factory()`` (no arguments) returns
an :class:`EvalPolicy`, or a callable ``model(agent, offline_step, settings)``
returning the LangChain chat model that agent talks to (see docs/evals.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from langchain_core.language_models import BaseChatModel

from closedloop.agents.chat_model import offline_model
from closedloop.agents.offline import OfflineStep
from closedloop.evals.mutants import Mutant
from closedloop.settings import Settings

ModelFor = Callable[[str, OfflineStep, Settings], BaseChatModel]


class PolicyError(ValueError):
    """A policy that cannot be loaded or used (named in the message)."""


@dataclass(frozen=True)
class EvalPolicy:
    """A named policy: ``model(agent, offline_step, settings)`` is the chat model each agent
    (``triage``, ``planner``, ``watchdog``, ``executor``) talks to; None keeps the configured one."""

    name: str
    model: ModelFor | None = None
    what: str = ""

    def as_mutant(self) -> Mutant | None:
        """The patch the suite applies while it runs under this policy (None: nothing)."""
        if self.model is None:
            return None
        chosen = self.model

        def factory(original: Any) -> Any:
            return lambda settings, agent, step: _checked(chosen(agent, step, settings), agent)

        return Mutant(
            f"policy:{self.name}",
            self.what or f"policy {self.name}",
            {"closedloop.agents.runtime:make_chat_model": factory},
        )


def _checked(model: Any, agent: str) -> BaseChatModel:
    if not isinstance(model, BaseChatModel):
        raise PolicyError(
            f"a policy's model for agent {agent!r} must be a LangChain BaseChatModel, "
            f"got {type(model).__name__}"
        )
    return model


def _offline(agent: str, step: OfflineStep, settings: Settings) -> BaseChatModel:
    return offline_model(agent, step)


def _planner(how: str) -> ModelFor:
    from closedloop.evals.mutants.breakers import planner_step

    def model(agent: str, step: OfflineStep, settings: Settings) -> BaseChatModel:
        return offline_model(agent, planner_step(how) if agent == "planner" else step)

    return model


BUILT_IN: dict[str, Callable[[], EvalPolicy]] = {
    "offline": lambda: EvalPolicy("offline", _offline, "the offline rule policy of every agent"),
    "configured": lambda: EvalPolicy("configured", None, "the model the settings configure"),
    "nothing": lambda: EvalPolicy("nothing", _planner("nothing"), "never propose a change"),
    "first": lambda: EvalPolicy("first", _planner("first"), "propose the first candidate"),
    "random": lambda: EvalPolicy("random", _planner("random"), "propose a random candidate"),
}


def load_policy(spec: str) -> EvalPolicy:
    """A built-in policy by name, or ``module:factory`` (ValueError naming what is wrong)."""
    if spec in BUILT_IN:
        return BUILT_IN[spec]()
    if ":" not in spec:
        raise PolicyError(
            f"unknown policy {spec!r}: use one of {', '.join(BUILT_IN)} or module:factory"
        )
    module_name, attr = spec.split(":", 1)
    try:
        module = import_module(module_name)
    except ImportError as exc:
        raise PolicyError(f"policy {spec!r}: cannot import module {module_name!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise PolicyError(f"policy {spec!r}: {module_name} has no callable {attr!r}")
    made = factory()
    if isinstance(made, EvalPolicy):
        return made
    if callable(made):
        return EvalPolicy(spec, made, f"{spec} (user policy)")
    raise PolicyError(
        f"policy {spec!r}: the factory returned {type(made).__name__}; it must return an "
        "EvalPolicy or a callable (agent, offline_step, settings) -> BaseChatModel"
    )


def compare_policies(
    base: Settings,
    specs: list[str],
    tier: str = "quick",
    folder: Any = None,
    names: list[str] | None = None,
    threshold: float = 1.0,
    traces: Any = None,
) -> list[tuple[EvalPolicy, Any]]:
    """Run the same cases under each policy; (policy, its EvalReport) in the order given.
    ``traces``: a folder, one sub-folder of stored traces per policy."""
    from pathlib import Path

    from closedloop.evals.runner import run_suite

    policies = [load_policy(s) for s in specs]  # fail on a bad name before running anything
    seen = [p.name for p in policies]
    if len(set(seen)) != len(seen):
        raise PolicyError(f"a policy is named twice: {seen}")
    out = []
    for policy in policies:
        report = run_suite(
            base,
            folder=folder,
            threshold=threshold,
            tier=tier,
            mutant=policy.as_mutant(),
            baseline=False,
            names=names,
            traces=Path(traces) / _safe(policy.name) if traces else None,
        )
        report.mutant = f"policy:{policy.name}"
        out.append((policy, report))
    return out


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def comparison_rows(results: list[tuple[EvalPolicy, Any]]) -> list[dict[str, Any]]:
    """One row of numbers per policy (what the side-by-side table shows)."""
    rows = []
    for policy, report in results:
        s = report.summary
        a = s["right_action"]
        rows.append(
            {
                "policy": policy.name,
                "what": policy.what,
                "cases": s["ran"],
                "as_expected": s["as_expected"],
                "passed": s["passed"],
                "right_action": a["strict_passed"],
                "right_action_n": a["n"],
                "action_accuracy": a["accuracy"],
                "action_kappa": a["kappa"],
                "verdicts_right": s["verdict"]["correct"],
                "verdicts_n": s["verdict"]["n"],
                "safety_violations": s["safety_violations"],
                "model_calls": s["usage"]["model_calls"],
                "steps": s["usage"]["steps"],
                "tokens": s["usage"]["tokens"],
                "estimated_cost_usd": s["usage"]["estimated_cost_usd"],
            }
        )
    return rows


def render_comparison(results: list[tuple[EvalPolicy, Any]]) -> str:
    """The side-by-side Markdown table of the policies on the same cases."""

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.0%}"

    lines = [
        (
            "| policy | cases | pass every scorer | as expected | right action | action accuracy "
            "/ kappa | verdicts right | safety violations | model calls / steps | tokens / est. cost |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in comparison_rows(results):
        kappa = "n/a" if r["action_kappa"] is None else f"{r['action_kappa']:.2f}"
        cost = r["estimated_cost_usd"]
        lines.append(
            f"| {r['policy']} | {r['cases']} | {r['passed']} | {r['as_expected']} | "
            f"{r['right_action']}/{r['right_action_n']} | {pct(r['action_accuracy'])} / {kappa} | "
            f"{r['verdicts_right']}/{r['verdicts_n']} | {r['safety_violations']} | "
            f"{r['model_calls']} / {r['steps']} | {r['tokens']} / "
            f"{'n/a' if cost is None else f'${cost}'} |"
        )
    return "\n".join(lines) + "\n"
