"""Suite-level numbers from case results: agreement with the right action (accuracy, kappa,
confusion), verdicts, prediction error and coverage, guardrails, safety, people, cost."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from closedloop.evals.metrics import agreement, repeatability

#: Estimated price per 1000 tokens (prompt and completion alike) where the store's metered
#: calls know no price for the model (a local model server).
COST_PER_1K_TOKENS = 0.0006


def _scores(results: list[Any], name: str) -> list[Any]:
    return [s for r in results for s in r.scores if s.scorer == name]


def summarize(results: list[Any]) -> dict[str, Any]:
    """The suite's numbers (what a report table shows)."""
    ran = [r for r in results if not r.skipped]
    by_kind: dict[str, dict[str, int]] = defaultdict(
        lambda: {"cases": 0, "passed": 0, "as_expected": 0}
    )
    for r in ran:
        k = by_kind[r.kind]
        k["cases"] += 1
        k["passed"] += int(r.passed)
        k["as_expected"] += int(r.as_expected)
    actions = _scores(ran, "right_action")
    agree = agreement([s.data["right"] for s in actions], [s.data["chosen"] for s in actions])
    verdicts = _scores(ran, "verdict")
    preds = [s for s in _scores(ran, "prediction") if "error_pct_points" in s.data]
    guard = _scores(ran, "guardrail")
    people = _scores(ran, "people_kappa")
    tokens = sum(int(r.usage.get("prompt_tokens_served", 0)) for r in ran)
    families: dict[str, list[bool]] = defaultdict(list)
    for r in ran:  # the same case on other world seeds: hd-<regime>-<seed>-<branch>
        parts = r.case.split("-")
        if r.kind == "loop" and len(parts) >= 3 and parts[-2].isdigit():
            families["-".join(parts[:-2] + parts[-1:])].append(r.as_expected)
    over_seeds = (
        repeatability({k: v for k, v in families.items() if len(v) > 1})
        if any(len(v) > 1 for v in families.values())
        else None
    )
    return {
        "cases": len(results),
        "ran": len(ran),
        "skipped": len(results) - len(ran),
        "passed": sum(r.passed for r in ran),
        "as_expected": sum(r.as_expected for r in ran),
        "by_kind": dict(by_kind),
        "safety_violations": sum(r.safety_violations for r in results),
        "right_action": {
            "n": agree.n,
            "accuracy": agree.accuracy,
            "kappa": agree.kappa,
            "confusion": agree.confusion,
            "strict_passed": sum(s.passed for s in actions),
        },
        "verdict": {"n": len(verdicts), "correct": sum(s.passed for s in verdicts)},
        "prediction": {
            "n": len(preds),
            "mean_abs_error_pct_points": (
                sum(abs(s.data["error_pct_points"]) for s in preds) / len(preds)
            )
            if preds
            else None,
            "coverage_95": (sum(s.data["covered"] for s in preds) / len(preds)) if preds else None,
        },
        "guardrail": {
            "breaches": sum(bool(s.data.get("breached")) for s in guard),
            "breaches_kept": sum(bool(s.data.get("breach_kept")) for s in guard),
        },
        "people": {
            "n": len(people),
            "mean_kappa": (sum(s.data["kappa"] for s in people) / len(people)) if people else None,
            "mean_accuracy": (sum(s.data["accuracy"] for s in people) / len(people))
            if people
            else None,
        },
        "over_seeds": over_seeds.model_dump() if over_seeds else None,
        "usage": _usage(ran, tokens),
    }


def _usage(ran: list[Any], served: int) -> dict[str, Any]:
    """Steps, model calls, tokens, estimated cost and latency of the loops (from the store's
    metered model calls, ``closedloop.agents.model_calls``)."""
    tokens = sum(
        int(r.usage.get("prompt_tokens", 0)) + int(r.usage.get("completion_tokens", 0)) for r in ran
    )
    known = [r.usage.get("cost_usd") for r in ran if "cost_usd" in r.usage]
    unpriced = sum(
        int(r.usage.get("prompt_tokens", 0)) + int(r.usage.get("completion_tokens", 0))
        for r in ran
        if "cost_usd" in r.usage and r.usage["cost_usd"] is None
    )
    cost = sum(c for c in known if c is not None) + unpriced / 1000 * COST_PER_1K_TOKENS
    return {
        "model_calls": sum(int(r.usage.get("model_calls", 0)) for r in ran),
        "steps": sum(int(r.usage.get("steps", 0)) for r in ran),
        "fallback_steps": sum(int(r.usage.get("fallback_steps", 0)) for r in ran),
        "model_latency_s": round(sum(float(r.usage.get("latency_s", 0)) for r in ran), 1),
        "loop_seconds": round(sum(float(r.usage.get("loop_seconds", 0)) for r in ran), 1),
        "tokens": tokens,
        "tokens_served": served,
        "estimated_cost_usd": round(cost, 6),
    }
