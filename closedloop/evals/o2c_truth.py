"""Counterfactual truth of the order-to-cash worlds, computed while grading and cached.

The o2c catalog's changes have parameters read from the data (an approval
threshold amount, a team's headcount), so no fixed list of changes can be
stored ahead of time as for the helpdesk. Instead every candidate the Planner
weighed in a case's run (the candidate generator's output, whatever it chose)
and "no change" are run through :mod:`closedloop.evals.connector_truth`: the
same seed with and without the change, the connector's own request, the orders
started in the observed days followed 7 more. The answers are the world's, not
the loop's; they are computed once per world and change in the process and
stored in the case's trace (so re-grading never runs a world).

Limitation: the right action is judged among the candidates the loop weighed
(those whose parameters make a request; the others are listed as unrunnable);
a better change the candidate generator never proposed is not known here.
"""

from __future__ import annotations

from typing import Any

from closedloop.evals.connector_truth import DOMAINS, ActionChange, WorldCase, run_world
from closedloop.tools.errors import ToolError

MIN_GAIN_PCT, NEAR_BEST, EITHER_BAND_PCT, DRAIN_DAYS = 5.0, 0.8, 2.0, 7.0

#: (world key, change label) -> the world's cases after that change
_RUNS: dict[tuple[str, str], dict[str, WorldCase]] = {}
#: world key -> every change weighed in a run of that world so far (a run that weighed nothing,
#: e.g. the do-nothing baseline, is judged against the changes the loop's runs weighed)
_SEEN: dict[str, dict[str, ActionChange]] = {}


def candidates_of(state: dict[str, Any]) -> list[ActionChange]:
    """The changes the run's Planner weighed (chosen or not), each once."""
    plan = next((s for s in state.get("steps", []) if s.get("step") == "plan"), {})
    out: dict[str, ActionChange] = {}
    for c in plan.get("considered", []):
        if c.get("action"):
            change = ActionChange(action=c["action"], params=c.get("params") or {})
            out.setdefault(change.label(), change)
    if plan.get("action") and plan.get("action") != "none":
        chosen = ActionChange(action=plan["action"], params=plan.get("params") or {})
        out.setdefault(chosen.label(), chosen)
    return list(out.values())


def _world(world: Any, change: ActionChange) -> dict[str, WorldCase]:
    key = (world.key(), change.label())
    if key not in _RUNS:
        _RUNS[key] = run_world(
            DOMAINS[world.domain],
            world.seed,
            change,
            world.regime,
            world.history_days,
            world.observe_days,
            DRAIN_DAYS,
        )
    return _RUNS[key]


def _verdict(pct: float) -> str:
    if pct < -EITHER_BAND_PCT:
        return "keep"
    if pct > EITHER_BAND_PCT:
        return "rollback"
    return "either"


def connector_truth(world: Any, state: dict[str, Any]) -> dict[str, Any]:
    """The truth of one o2c world in the helpdesk truth's shape (best, acceptable, effects)."""
    seen = _SEEN.setdefault(world.key(), {})
    for change in candidates_of(state):
        seen.setdefault(change.label(), change)
    base = _world(world, ActionChange())
    effects: dict[str, dict[str, Any]] = {
        "no change": {"effect_pct": 0.0, "effect_hours": 0.0, "verdict": "either"}
    }
    unrunnable: dict[str, str] = {}
    for change in sorted(seen.values(), key=lambda c: c.label()):
        try:
            changed = _world(world, change)
        except (ToolError, RuntimeError) as exc:  # weighed without complete parameters
            unrunnable[change.label()] = f"{type(exc).__name__}: {exc}"[:300]
            continue
        ids = sorted(set(base) & set(changed))
        if not ids:
            raise RuntimeError(f"{world.key()}: no order started in the window in both worlds")
        mb = sum(base[i].cycle_hours for i in ids) / len(ids)
        mc = sum(changed[i].cycle_hours for i in ids) / len(ids)
        pct = 100.0 * (mc - mb) / mb if mb > 0 else 0.0
        effects[change.label()] = {
            "effect_pct": round(pct, 2),
            "effect_hours": round(mc - mb, 3),
            "verdict": _verdict(pct),
        }
    helping = {k: v["effect_pct"] for k, v in effects.items() if v["effect_pct"] <= -MIN_GAIN_PCT}
    if helping:
        best = min(helping, key=lambda k: helping[k])
        acceptable = sorted(k for k, v in helping.items() if v <= NEAR_BEST * helping[best])
    else:
        best, acceptable = "no change", ["no change"]
    return {
        "regime": world.regime,
        "seed": world.seed,
        "computed_by": "closedloop.evals.o2c_truth (closedloop.evals.connector_truth per change)",
        "best": best,
        "acceptable": acceptable,
        "effects": effects,
        "unrunnable": unrunnable,
    }
