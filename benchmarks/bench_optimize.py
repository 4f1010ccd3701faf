"""Benchmark the optimisers: solve time, improvement over today, confirmation by simulation.

Run from the repository root (needs ../shared/data beside the clone for BPIC 2012):

    .venv/bin/python benchmarks/bench_optimize.py [--write]

Prints a Markdown report; ``--write`` also replaces the optimisation section of
``benchmarks/results/optimize_rules.md``. Solve times are wall clock on a
shared machine (the load is printed with them): read them as an order of
magnitude. Every plan's baseline is measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")

from closedloop.tools.log.ingest import load_event_log
from closedloop.tools.optimize import (
    optimize_assignment,
    optimize_shifts,
    optimize_staffing,
    optimize_threshold,
)
from closedloop.tools.twin import fit_twin

SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "optimize_rules.md"
LOGS = {
    "BPIC 2012 W (train)": SHARED / "simulation" / "BPIC_2012_W_train.csv.gz",
    "helpdesk": ROOT / "closedloop" / "data" / "helpdesk.xes.gz",
    "repair": ROOT / "closedloop" / "data" / "03_repairExample.xes.gz",
}


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def est(e, unit: str = "", digits: int = 2) -> str:
    if e is None:
        return "n/a"
    return f"{e.mean:+.{digits}f}{unit} [{e.ci_low:+.{digits}f}, {e.ci_high:+.{digits}f}]"


def flat_roster_hours(plan) -> float:
    """Cost of the same SLA with one staffing level per pool (its busiest block) in all open blocks."""
    total = 0.0
    for pool in plan.pools:
        blocks = [b for b in plan.blocks if b.pool == pool and b.open]
        total += max((b.staff for b in blocks), default=0) * len(blocks) * plan.block_hours
    return total


def bench_shifts(rows: list[str]) -> None:
    rows += ["### Staff per pool per shift block (`optimize_shifts`)", "",
             ("SLA per open 4-hour block (UTC): utilisation <= 85 %, predicted queue wait <= 1 h per "
             "item. Cost = staff hours per week (1 per hour). *Observed* = distinct people active "
             "per open block (weekly mean, >= 1); *flat* = the plan's busiest-block level kept in "
             "every open block (what one level per pool would cost for the same SLA). Solve = demand "
             "+ CP-SAT, no simulation."), "",
             ("| log | solve s | observed h/wk | flat h/wk | plan h/wk | cost vs observed | "
             "block check: wait per item observed -> plan (h) | twin: cycle time vs fitted twin | "
             "SLA violations | confirmed |"),
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, path in LOGS.items():
        if not path.exists():
            rows.append(f"| {name} | skipped: {path} not found | | | | | | | | |")
            continue
        frame = load_event_log(path)
        twin = fit_twin(frame)
        fast, seconds = timed(optimize_shifts, twin, frame, validate=False)
        if fast.status == "infeasible":
            rows.append(f"| {name} | {seconds:.2f} | {fast.cost_as_is_per_week:g} | | infeasible | "
                        f"| | | {fast.message} | |")  # fmt: skip
            continue
        plan = optimize_shifts(twin, frame)
        rows.append(
            f"| {name} | {seconds:.2f} | {plan.cost_as_is_per_week:g} | {flat_roster_hours(plan):g} "
            f"| {plan.cost_per_week:g} | {plan.cost_delta_pct:+.1f} % "
            f"| {plan.simulated_wait_as_is_hours.mean:.3f} -> {plan.simulated_wait_hours.mean:.3f} "
            f"| {est(plan.simulated_cycle_time_delta_pct, ' %', 1)} | {len(plan.sla_violations)} "
            f"| {plan.confirmed} |"
        )
    rows.append("")


def bench_staffing_and_assignment(rows: list[str]) -> None:
    rows += [("### Extra staff (`optimize_staffing`, budget 2) and activity -> pool "
             "(`optimize_assignment`, skill share >= 0.3)"), "",
             ("| log | optimiser | solve s | plan | predicted wait/case before -> after (h) | "
             "simulated wait/case delta (h) | simulated cycle time | confirmed |"),
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, path in LOGS.items():
        if not path.exists():
            continue
        frame = load_event_log(path)
        twin = fit_twin(frame)
        _, seconds = timed(optimize_staffing, twin, 2, validate=False)
        plan = optimize_staffing(twin, 2)
        rows.append(
            f"| {name} | staffing | {seconds:.2f} | {plan.extra_staff or 'none'} | "
            f"{plan.predicted_waiting_before_hours:.3g} -> {plan.predicted_waiting_after_hours:.3g} "
            f"| {est(plan.simulated_waiting_delta_hours)} "
            f"| {est(plan.simulated_cycle_time_delta_pct, ' %', 1)} | {plan.confirmed} |"
        )
        _, seconds = timed(optimize_assignment, twin, frame, min_skill_share=0.3, validate=False)
        plan = optimize_assignment(twin, frame, min_skill_share=0.3)
        moves = "; ".join(f"{m.activity} -> {m.to_pool}" for m in plan.moves) or "keep"
        after = plan.predicted_waiting_after_hours
        rows.append(
            f"| {name} | assignment | {seconds:.2f} | {moves} | "
            f"{plan.predicted_waiting_before_hours:.3g} -> "
            f"{'n/a' if after is None else f'{after:.3g}'} "
            f"| {est(plan.simulated_waiting_delta_hours)} "
            f"| {est(plan.simulated_cycle_time_delta_pct, ' %', 1)} | {plan.confirmed} |"
        )
    rows.append("")


def bench_threshold(rows: list[str]) -> None:
    path = SHARED / "logs" / "bpic2012.xes.gz"
    rows += ["### Auto-decision threshold on BPI 2012 AMOUNT_REQ (`optimize_threshold`)", "",
             ("Target: approve = A_APPROVED, decline = A_DECLINED or A_CANCELLED; fitted on the "
             "earlier 80 % of decided cases (by start), scored on the later 20 %. Risk = share of "
             "automated cases people decided otherwise. Baseline: no automation (0 cases). The "
             "twin check skips the step after submission and jumps to the decision."), "",
             ("| action | risk cap | solve s | rule | fit: automated (share), risk | later: "
             "automated (share), risk | twin: cycle time | confirmed |"),
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    if not path.exists():
        rows += [f"skipped: {path} not found", ""]
        return
    frame = load_event_log(path)
    twin = fit_twin(frame)
    for action, cap in (("auto_approve", 0.2), ("auto_decline", 0.05), ("auto_decline", 0.02)):
        fast, seconds = timed(optimize_threshold, frame, action=action, risk_cap=cap, validate=False)
        if fast.status == "infeasible":
            rows.append(f"| {action} | {cap:.0%} | {seconds:.2f} | {fast.message} | | | | |")
            continue
        plan = optimize_threshold(frame, action=action, risk_cap=cap, twin=twin)
        f, s = plan.fit, plan.score
        rows.append(
            f"| {action} | {cap:.0%} | {seconds:.2f} | `{plan.condition}` | {f.automated} "
            f"({f.automated_share:.1%}), {f.risk:.1%} | {s.automated} ({s.automated_share:.1%}), "
            f"{s.risk:.1%} | {est(plan.simulated_cycle_time_delta_pct, ' %', 1)} "
            f"| {plan.confirmed} |"
        )
    rows.append("")


def replace_section(path: Path, marker: str, body: str) -> None:
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = (text.rstrip() + "\n\n" if text else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"update {RESULTS}")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = ["## Optimisation", "",
            (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}; load before: {os.getloadavg()[0]:.2f}. "
            "CP-SAT: 1 worker, seed 0, deterministic limit 5, wall limit 10 s. "
            "Command: `.venv/bin/python benchmarks/bench_optimize.py --write`."), ""]  # fmt: skip
    bench_shifts(rows)
    bench_staffing_and_assignment(rows)
    bench_threshold(rows)
    rows.append(f"Load after: {os.getloadavg()[0]:.2f}; whole run "
                f"{time.perf_counter() - started:.0f} s.")  # fmt: skip
    body = "\n".join(rows)
    print(body)
    if args.write:
        replace_section(RESULTS, "optimize", body)


if __name__ == "__main__":
    main()
