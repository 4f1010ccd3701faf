"""Benchmark the loop on order-to-cash against the sandbox's counterfactual truth.

Run from the repository root (no shared data needed):

    .venv/bin/python benchmarks/bench_o2c_truth.py [--seeds 5] [--regimes default] [--write]

For every seed: the loop of ``closedloop demo --domain o2c`` runs in-process
(offline policy, approval given) against a fresh order-to-cash sandbox, through
its connector only. Then ``closedloop.evals.connector_truth`` runs the same
seed with and without each candidate the Planner simulated (the connector's own
requests) and follows the cases started in the 14 observed days for 7 more:
the true total effect on mean order-to-invoice time. Reported: coverage of the
predicted 95 % interval, error, whether the chosen action was the best
candidate (best: most negative true effect that is at least ``--min-gain-pct``
of the baseline, else "no change"), and whether the Watchdog's interval covered
the chosen action's true effect. ``--write`` writes
``benchmarks/results/o2c_truth.md`` (then run ``benchmarks/assemble.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from statistics import mean
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
os.environ.setdefault("TQDM_DISABLE", "1")

from benchmarks.demo_loop import DRAIN_DAYS, HISTORY_DAYS, OBSERVE_DAYS, demo_loop
from closedloop.evals.connector_truth import (
    DOMAINS,
    ActionChange,
    run_world,
    true_effect_of,
)


def run_loop(seed: int, regime: str, tmp: Path) -> dict[str, Any]:
    """The o2c loop (approval given) and its simulated candidates, chosen action and measurement."""
    loop = demo_loop(
        seed,
        regime,
        tmp,
        domain="o2c",
        scope=f"bench-o2c-{seed}",
        predicted=lambda result: result.get("prediction"),
        connector="o2c",
    )
    watches = loop.pop("watches")
    return {**loop, "measured": watches[-1].get("measured") if watches else None}


def one_run(seed: int, regime: str, min_gain_pct: float) -> dict[str, Any]:
    """The loop's choice and the truth of every candidate it simulated, for one seed."""
    with tempfile.TemporaryDirectory(prefix="bench-o2c-") as tmp:
        loop = run_loop(seed, regime, Path(tmp))
    base = run_world(
        DOMAINS["o2c"], seed, ActionChange(), regime, HISTORY_DAYS, OBSERVE_DAYS, DRAIN_DAYS
    )
    rows = []
    for cand in loop["candidates"]:
        change = ActionChange(action=cand["action"], params=cand["params"])
        truth = true_effect_of(
            "o2c", seed, change, regime, HISTORY_DAYS, OBSERVE_DAYS, DRAIN_DAYS, baseline=base
        )
        chosen = (
            loop["chosen"] is not None
            and loop["chosen"]["action"] == cand["action"]
            and loop["chosen"]["params"] == cand["params"]
        )
        rows.append(
            {
                "change": change.label(),
                "predicted": cand["predicted"],
                "true_hours": truth.effect_hours,
                "true_pct": truth.effect_pct,
                "baseline_hours": truth.baseline_mean_cycle_hours,
                "chosen": chosen,
            }
        )
    helps = [r for r in rows if r["true_pct"] <= -min_gain_pct]
    best = min(helps, key=lambda r: r["true_hours"])["change"] if helps else "no change"
    chosen_row = next((r for r in rows if r["chosen"]), None)
    return {
        "seed": seed,
        "regime": regime,
        "outcome": loop["outcome"],
        "chosen": chosen_row["change"] if chosen_row else "no change",
        "best": best,
        "rows": rows,
        "measured": loop["measured"],
    }


def _covers(pred: dict[str, Any] | None, hours: float) -> bool | None:
    if not pred:
        return None
    return pred["ci_low_hours"] <= hours <= pred["ci_high_hours"]


def report(runs: list[dict[str, Any]], seconds: float, args: argparse.Namespace) -> str:
    """The results page section."""
    cands = [r for run in runs for r in run["rows"] if r["predicted"]]
    covered = sum(bool(_covers(r["predicted"], r["true_hours"])) for r in cands)
    chosen = [r for run in runs for r in run["rows"] if r["chosen"]]
    errors = [abs(r["predicted"]["delta_hours"] - r["true_hours"]) for r in chosen]
    mean_true = sum(abs(r["true_hours"]) for r in chosen) / len(chosen) if chosen else 0.0
    watch_cov = [
        run for run in runs if run["measured"] and run["measured"].get("delta") is not None
    ]
    truth_of = {  # per regime and seed: regimes share seeds
        (run["regime"], run["seed"]): next((r["true_hours"] for r in run["rows"] if r["chosen"]), None)
        for run in runs
    }
    w_covers = sum(
        run["measured"]["ci_low"] <= truth_of[run["regime"], run["seed"]] <= run["measured"]["ci_high"]
        for run in watch_cov
        if truth_of[run["regime"], run["seed"]] is not None
    )
    out = [
        "# Order-to-cash: predictions and verdicts against the counterfactual truth",
        "",
        (
            f"Reproduce: `.venv/bin/python benchmarks/bench_o2c_truth.py --seeds {args.seeds} "
            f"--regimes {args.regimes} --write` then `.venv/bin/python benchmarks/assemble.py` "
            f"({seconds / 60:.1f} min on 2 shared cores)."
        ),
        "",
        (
            "The loop of `closedloop demo --domain o2c` (offline policy, plan approved) runs on the "
            "order-to-cash sandbox through its connector alone (21 days of history, the change, 14 "
            "days observed). `closedloop.evals.connector_truth` runs the same seed with and without "
            "each candidate the Planner simulated, sending the connector's own request, and follows "
            "the orders started in the 14 days for 7 more: the true effect on mean order-to-invoice "
            "time (the connector's `case_scope`). Best: the most negative true effect of at least "
            f"{args.min_gain_pct:g} % of the baseline, else no change."
        ),
        "",
        (
            f"- runs: {len(runs)}; chosen = best by truth: "
            f"{sum(run['chosen'] == run['best'] for run in runs)}/{len(runs)}"
        ),
        (
            f"- predicted 95 % interval covers the true effect: {covered}/{len(cands)} simulated "
            f"candidates; chosen action: "
            f"{sum(bool(_covers(r['predicted'], r['true_hours'])) for r in chosen)}/{len(chosen)}"
        ),
        (
            f"- mean absolute error of the chosen action: "
            f"{(sum(errors) / len(errors)) if errors else float('nan'):.2f} h "
            f"({100 * (sum(errors) / len(errors)) / mean_true if errors and mean_true else float('nan'):.0f} % "
            "of the mean absolute true effect)"
        ),
        (
            f"- Watchdog's interval covers the chosen action's true effect: {w_covers}/{len(watch_cov)}; "
            f"outcomes: {', '.join(sorted(str(run['outcome']) for run in runs))}"
        ),
        (
            "- Watchdog's designs: "
            + ", ".join(f"{d} ({n})" for d, n in sorted(Counter(
                run["measured"].get("design") for run in watch_cov).items()))
            + "; mean width of its 95 % interval: "
            + (f"{mean([run['measured']['ci_high'] - run['measured']['ci_low'] for run in watch_cov]):.2f} h"
               if watch_cov else "n/a")
        ),
        "",
        (
            "| seed | candidate | chosen | predicted (h) [95 %] | predicted % | true (h) | true % | "
            "Watchdog (h) [95 %] |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for r in run["rows"]:
            p, m = r["predicted"], run["measured"] if r["chosen"] else None
            pred = (
                f"{p['delta_hours']:+.2f} [{p['ci_low_hours']:+.2f}, {p['ci_high_hours']:+.2f}]"
                if p
                else "-"
            )
            watch = (
                f"{m['delta']:+.2f} [{m['ci_low']:+.2f}, {m['ci_high']:+.2f}]"
                if m and m.get("delta") is not None
                else ""
            )
            out.append(
                f"| {run['seed']} | {r['change']} | {'yes' if r['chosen'] else ''} | {pred} "
                f"| {p['delta_pct']:+.1f} | {r['true_hours']:+.2f} | {r['true_pct']:+.1f} "
                f"| {watch} |"
                if p
                else f"| {run['seed']} | {r['change']} | | - | - | {r['true_hours']:+.2f} | "
                f"{r['true_pct']:+.1f} | |"
            )
    return "\n".join(out) + "\n"


def main() -> None:
    """Run the seeds and print (or write) the report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--regimes", default="default")
    ap.add_argument("--min-gain-pct", type=float, default=5.0)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    began = time.perf_counter()
    runs = [
        one_run(seed, regime, args.min_gain_pct)
        for regime in args.regimes.split(",")
        for seed in range(1, args.seeds + 1)
    ]
    text = report(runs, time.perf_counter() - began, args)
    print(text)
    if args.write:
        out = ROOT / "results"
        (out / "o2c_truth.md").write_text(text, encoding="utf-8")
        (out / "o2c_truth.json").write_text(
            json.dumps(runs, indent=1, default=str), encoding="utf-8"
        )


if __name__ == "__main__":
    main()
