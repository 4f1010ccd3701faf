"""Offline: the right answers of the sandbox loop cases, from the counterfactual harness.

``python -m closedloop.evals.truth --write`` runs, for every helpdesk world
(regime x seed) of :data:`WORLDS`, the same sandbox seed with and without each
change of :func:`truth_candidates` through the sandbox's own API
(:func:`closedloop.evals.counterfactual.best_candidate`) and stores, per world,
every change's true effect, the right verdict for it and the acceptable actions
in ``cases/truth/helpdesk.yaml``. The loop is never run here: the answers do
not depend on what the loop does.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from closedloop.evals.counterfactual import (
    NoChange,
    RuleChange,
    StaffingChange,
    best_candidate,
    regime_staffing,
)

#: The helpdesk worlds whose answers are computed (regime -> seeds).
WORLDS: dict[str, list[int]] = {
    "default": [7, 11, 23],
    "second-line-bottleneck": [3, 7, 11],
    "unreliable-bot": [3, 7, 11],
    "overload": [3, 7],
    "nothing-helps": [3, 7, 11],
}
HISTORY_DAYS, OBSERVE_DAYS, DRAIN_DAYS = 21.0, 14.0, 7.0
#: A change must shorten mean cycle time by this share to be "the right action" (the loop's bar).
MIN_GAIN_PCT = 5.0
#: A change reaching this share of the best change's gain is also acceptable.
NEAR_BEST = 0.8
#: Within this band of the baseline a kept or rolled-back change are both right.
EITHER_BAND_PCT = 2.0
ROUTE_VALUES = {"category": ["software", "hardware", "network", "access", "password"],
                "customer_tier": ["standard", "gold"], "priority": ["low", "medium", "high"],
                "channel": ["email", "phone", "portal"]}  # fmt: skip
OUT = Path(__file__).parent / "cases" / "truth" / "helpdesk.yaml"


def truth_candidates(staffing: dict[str, int]) -> list[Any]:
    """Every change the helpdesk's catalog can make that a loop might propose: one agent more or
    less per queue, auto-resolving each category and routing each attribute value to L2, each
    at 50 % (a canary with a control group) and 100 %."""
    out: list[Any] = [NoChange()]
    for q, n in sorted(staffing.items()):
        out.append(StaffingChange(queue=q, agents=n + 1))
        if n > 1:
            out.append(StaffingChange(queue=q, agents=n - 1))
    for share in (0.5, 1.0):
        for cat in ROUTE_VALUES["category"]:
            out.append(
                RuleChange(
                    name=f"auto-resolve {cat}",
                    treatment_share=share,
                    condition={"field": "category", "op": "eq", "value": cat},
                )
            )
        for field, values in ROUTE_VALUES.items():
            for v in values:
                out.append(
                    RuleChange(
                        name=f"route {field}={v}",
                        treatment_share=share,
                        condition={"field": field, "op": "eq", "value": v},
                        action={"type": "route", "queue": "L2"},
                    )
                )
    return out


def right_verdict(effect_pct: float) -> str:
    """keep (it helps), rollback (it hurts) or either (within the band of no effect)."""
    if effect_pct <= -EITHER_BAND_PCT:
        return "keep"
    if effect_pct >= EITHER_BAND_PCT:
        return "rollback"
    return "either"


def world_truth(regime: str, seed: int) -> dict[str, Any]:
    """One world's answers: every candidate's true effect, its right verdict, acceptable actions."""
    staffing = regime_staffing(regime, seed)
    started = time.perf_counter()
    found = best_candidate(
        seed,
        truth_candidates(staffing),
        HISTORY_DAYS,
        OBSERVE_DAYS,
        DRAIN_DAYS,
        regime=regime,
        min_gain_pct=MIN_GAIN_PCT,
    )
    effects = {}
    for r in found.results:
        effects[r.change.label()] = {
            "effect_pct": round(r.effect_pct, 2),
            "effect_hours": round(r.effect_hours, 3),
            "per_treated_case_hours": None
            if r.effect_per_treated_case_hours is None
            else round(r.effect_per_treated_case_hours, 3),
            "reopen_points": round(r.reopen_effect_points, 2),
            "verdict": right_verdict(r.effect_pct),
        }
    if found.best is None:
        acceptable = ["no change"]
    else:
        best = found.results[found.best].effect_pct
        acceptable = sorted(
            label
            for label, e in effects.items()
            if e["effect_pct"] <= NEAR_BEST * best and -e["effect_pct"] >= MIN_GAIN_PCT
        )
    return {
        "regime": regime,
        "seed": seed,
        "staffing": staffing,
        "best": found.best_label,
        "acceptable": acceptable,
        "baseline_mean_cycle_hours": round(found.results[0].baseline_mean_cycle_hours, 3),
        "cases": found.results[0].cases,
        "effects": effects,
        "seconds": round(time.perf_counter() - started, 1),
    }


def compute(worlds: dict[str, list[int]] = WORLDS) -> dict[str, Any]:
    """The answers of every world, with how they were computed."""
    return {
        "computed_by": "python -m closedloop.evals.truth --write (closedloop.evals.counterfactual."
                       "best_candidate: the same sandbox seed run with and without each change "
                       "through the sandbox API; cases started in the observed days followed "
                       f"{DRAIN_DAYS:g} more days)",
        "computed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "history_days": HISTORY_DAYS, "observe_days": OBSERVE_DAYS, "drain_days": DRAIN_DAYS,
        "min_gain_pct": MIN_GAIN_PCT, "near_best": NEAR_BEST, "either_band_pct": EITHER_BAND_PCT,
        "worlds": {f"{regime}/{seed}": world_truth(regime, seed)
                   for regime, seeds in worlds.items() for seed in seeds},
    }  # fmt: skip


def load_truth(path: Path = OUT) -> dict[str, Any]:
    """The stored answers (``worlds`` keyed ``regime/seed``)."""
    if not path.exists():
        raise FileNotFoundError(
            f"no stored truth at {path}; run python -m closedloop.evals.truth --write"
        )
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    """Compute the answers; ``--write`` stores them next to the cases."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help=f"write {OUT.name}")
    p.add_argument("--regimes", default=",".join(WORLDS), help="comma-separated regimes")
    args = p.parse_args(argv)
    worlds = {r: WORLDS[r] for r in args.regimes.split(",")}
    data = compute(worlds)
    for key, w in data["worlds"].items():
        print(f"{key}: best {w['best']}; acceptable {w['acceptable']} ({w['seconds']} s)")
    if args.write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
