"""The main job: the whole closed loop against a bundled sandbox on loopback, through its connector.

Two domains are bundled: ``helpdesk`` (the default) and ``o2c`` (order-to-cash). The loop
knows each only through the connector of the same name (``closedloop/connectors/<domain>/``).
"""

from __future__ import annotations

import sys
from typing import Any

import httpx

from closedloop.graphs.runner import LoopRunner
from closedloop.report import render_run
from closedloop.sandbox.server import SandboxServer
from closedloop.settings import Settings


def advance_clock(api_url: str, days: float) -> None:
    """Let the sandbox's world run on for ``days`` simulated days."""
    with httpx.Client(base_url=api_url, timeout=120) as client:
        remaining = days * 24
        while remaining > 0:
            hours = min(remaining, 24 * 30)
            client.post("/clock/advance", json={"hours": hours}).raise_for_status()
            remaining -= hours


def world_days(pending: dict[str, Any], observe_days: float) -> float:
    """How long to let the world run before resuming a run that waits for evidence: the hours
    it asks for (a switchback block), else the observation window."""
    hours = pending.get("wait_hours")
    return hours / 24.0 if hours else observe_days


def ask_approval(state: dict[str, Any]) -> bool:
    """Ask the operator at the terminal; no answer (EOF) means reject."""
    print(render_run(state), file=sys.stderr)
    try:
        reply = input(f"\nApprove plan #{state['plan_id']}? [y/N] ")
    except EOFError:
        return False
    return reply.strip().lower() in ("y", "yes")


def run_demo(settings: Settings, seed: int = 7, history_days: float = 21.0, observe_days: float = 14.0,
             auto_approve: bool = False, quiet: bool = False, scope: str | None = None,
             domain: str = "helpdesk", regime: str = "default") -> dict[str, Any]:
    """Start the ``domain`` sandbox (of ``regime``: its hidden dynamics, for benchmarks), let it
    build history, run the loop through the domain's connector to a verdict, and return the
    final state."""
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    settings = settings.model_copy(update={"connector": domain})
    scope = scope or f"{domain}-demo"
    with SandboxServer(seed=seed, domain=domain, regime=regime) as sandbox, \
            LoopRunner(settings) as runner:
        log(f"sandbox {domain} API on {sandbox.url} (OpenAPI at {sandbox.url}/openapi.json)")
        advance_clock(sandbox.url, history_days)
        log(f"sandbox ran {history_days:g} simulated days; observing, triaging, planning...")
        state = runner.start(sandbox.url, scope=scope)
        while state.get("pending"):
            pending = state["pending"]
            if pending["kind"] == "approval":
                approved = auto_approve or ask_approval(state)
                state = runner.resume(state["run_id"], {"decision": "approve" if approved else "reject",
                                                        "by": "demo --yes" if auto_approve else "operator",
                                                        "channel": "cli"}, expect="approval")
            else:
                days = world_days(pending, observe_days)
                log(f"change is live; the sandbox runs on {days:g} simulated days...")
                advance_clock(sandbox.url, days)
                state = runner.resume(state["run_id"], {"advanced_days": days}, expect="evidence")
        return state
