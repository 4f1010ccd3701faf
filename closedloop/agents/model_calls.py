"""What the agents' models cost: one ``ModelCall`` row per model turn, summed per loop.

The agent runtime meters every turn (tokens from the answer's usage, latency,
whether the service failed, whether the offline policy stood in for it); the
rows are written in the node's transaction with its audit events. A loop's
usage (steps, model calls, tokens, estimated cost, latency) is read back from
them, in and outside evals, and so is whether the run was degraded.

Prices are estimates per million tokens: the table below (public list prices of
common OpenAI models), or ``CLOSEDLOOP_PRICE_PROMPT_PER_MTOK`` and
``CLOSEDLOOP_PRICE_COMPLETION_PER_MTOK`` (USD) for any other model. An unknown
price gives ``cost_usd = None``, never a made-up zero.
"""

from __future__ import annotations

import os
from typing import Any

from sqlmodel import Session, select

from closedloop.store.models import LoopRun, ModelCall

#: USD per million (prompt, completion) tokens; the longest matching prefix wins.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
}


def price(model: str) -> tuple[float, float] | None:
    """USD per million prompt and completion tokens of ``model`` (None: unknown)."""
    env_in = os.environ.get("CLOSEDLOOP_PRICE_PROMPT_PER_MTOK")
    env_out = os.environ.get("CLOSEDLOOP_PRICE_COMPLETION_PER_MTOK")
    if env_in is not None or env_out is not None:
        try:
            return float(env_in or 0.0), float(env_out or 0.0)
        except ValueError as exc:
            raise ValueError(
                "CLOSEDLOOP_PRICE_PROMPT_PER_MTOK / CLOSEDLOOP_PRICE_COMPLETION_PER_MTOK must be "
                f"numbers (USD per million tokens), got {env_in!r} / {env_out!r}"
            ) from exc
    matches = [k for k in PRICES if model.startswith(k)]
    return PRICES[max(matches, key=len)] if matches else None


def estimate_cost(
    model: str, offline: bool, prompt_tokens: int, completion_tokens: int
) -> float | None:
    """Estimated USD of one call; the offline policy costs nothing."""
    if offline:
        return 0.0
    known = price(model)
    if known is None:
        return None
    return round((prompt_tokens * known[0] + completion_tokens * known[1]) / 1e6, 8)


def call_row(
    run_id: str,
    agent: str,
    model: str,
    offline: bool,
    latency_s: float,
    usage: dict[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The fields of one ``ModelCall`` (``usage``: the answer's usage_metadata)."""
    usage = usage or {}
    prompt = int(usage.get("input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return {
        "run_id": run_id,
        "agent": agent,
        "model": model,
        "offline": offline,
        "ok": error is None,
        "error": error[:1000] if error else None,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cost_usd": estimate_cost(model, offline, prompt, completion),
        "latency_ms": round(latency_s * 1000, 3),
    }


def save_calls(
    session: Session, run_id: str, calls: list[dict[str, Any]], degraded: list[str]
) -> None:
    """Add the metered calls to the open transaction and mark the run degraded (which agent
    steps fell back and why), keeping what earlier steps recorded."""
    for call in calls:
        session.add(ModelCall(**call))
    if not degraded:
        return
    run = session.get(LoopRun, run_id)
    if run is None:
        return
    known = [p for p in (run.degraded or "").split("; ") if p]
    agents = {p.split(":", 1)[0] for p in known}
    known += [d for d in degraded if d.split(":", 1)[0] not in agents]
    run.degraded = "; ".join(known)
    session.add(run)


def loop_usage(session: Session, run_id: str) -> dict[str, Any]:
    """Steps (model turns), calls to a configured model, tokens, estimated cost and latency of
    one loop, from its ``ModelCall`` rows."""
    rows = session.exec(select(ModelCall).where(ModelCall.run_id == run_id)).all()
    remote = [r for r in rows if not r.offline]
    costs = [r.cost_usd for r in remote]
    return {
        "steps": len(rows),
        "model_calls": len(remote),
        "failed_calls": sum(not r.ok for r in rows),
        "fallback_steps": sum(r.fallback for r in rows),
        "prompt_tokens": sum(r.prompt_tokens for r in rows),
        "completion_tokens": sum(r.completion_tokens for r in rows),
        "cost_usd": None if any(c is None for c in costs) else round(sum(costs), 6),
        "latency_s": round(sum(r.latency_ms for r in rows) / 1000, 3),
        "by_agent": _by_agent(rows),
    }


def _by_agent(rows: list[ModelCall]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        a = out.setdefault(r.agent, {"calls": 0, "tokens": 0, "latency_s": 0.0, "fallback": False})
        a["calls"] += 1
        a["tokens"] += r.prompt_tokens + r.completion_tokens
        a["latency_s"] = round(a["latency_s"] + r.latency_ms / 1000, 3)
        a["fallback"] = a["fallback"] or r.fallback
    return out


def run_degraded(session: Session, run_id: str) -> str | None:
    """Which agent steps of the run fell back to the offline policy and why (None: none did)."""
    run = session.get(LoopRun, run_id)
    return run.degraded if run else None
