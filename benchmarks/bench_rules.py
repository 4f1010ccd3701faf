"""Benchmark rule generation on BPI 2012: backtest numbers against the majority baseline.

Run from the repository root (needs ../shared/data beside the clone):

    .venv/bin/python benchmarks/bench_rules.py [--write]

Predicts the human decision (A_APPROVED vs A_DECLINED, and vs A_DECLINED or
A_CANCELLED) from AMOUNT_REQ with a depth-3 tree fitted on the earlier 80 %
of decided cases (by case start) and scores every candidate rule on the later
20 %. ``--write`` replaces the rules section of
``benchmarks/results/optimize_rules.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")

from bench_optimize import replace_section

from closedloop.tools.log.ingest import load_event_log
from closedloop.tools.rules import backtest_rule, generate_rules

LOG = ROOT.parent.parent / "shared" / "data" / "logs" / "bpic2012.xes.gz"
RESULTS = ROOT / "results" / "optimize_rules.md"
TARGETS = {
    "A_APPROVED vs A_DECLINED": {"approve": ["A_APPROVED"], "decline": ["A_DECLINED"]},
    "A_APPROVED vs A_DECLINED/A_CANCELLED": {
        "approve": ["A_APPROVED"], "decline": ["A_DECLINED", "A_CANCELLED"]
    },
}  # fmt: skip


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"update {RESULTS}")
    args = parser.parse_args()
    rows = ["## Rule generation and backtest (BPI 2012)", "",
            (f"Load before: {os.getloadavg()[0]:.2f}. Log: `{LOG.name}` (loaded with "
            "`load_event_log`). Features: AMOUNT_REQ; tree depth 3, leaves >= 30 cases; "
            "candidates need >= 90 % precision on the fit period; `holds` = >= 90 % on >= 30 "
            "later cases. Baseline = always the fit period's majority decision. Command: "
            "`.venv/bin/python benchmarks/bench_rules.py --write`."), ""]  # fmt: skip
    if not LOG.exists():
        rows.append(f"skipped: {LOG} not found")
        print("\n".join(rows))
        return
    frame = load_event_log(LOG)
    for title, target in TARGETS.items():
        ruleset, seconds = None, time.perf_counter()
        ruleset = generate_rules(frame, target=target, features=["AMOUNT_REQ"], min_precision=0.9)
        seconds = time.perf_counter() - seconds
        rows += [
            f"### {title}", "",
            (f"{ruleset.fit_cases} fit cases (from {ruleset.rules[0].backtest.fit.first_case_start[:10] if ruleset.rules else '?'}), "
            f"{ruleset.score_cases} score cases (from {ruleset.split_at[:10]}), "
            f"{ruleset.unlabelled_cases} undecided left out; labels {ruleset.labels}. "
            f"Majority baseline (`{ruleset.majority_label}` for all) score-period accuracy "
            f"{pct(ruleset.baseline_accuracy)}; whole tree {pct(ruleset.tree_accuracy)}. "
            f"generate_rules took {seconds:.1f} s."), "",
            ("| rule | fit: support, precision | later: support (coverage), precision | "
            "later base rate (= baseline precision) | lift | errors | holds |"),
            "|---|---|---|---|---|---|---|",
        ]  # fmt: skip
        for r in ruleset.rules:
            f, s = r.backtest.fit, r.backtest.score
            rows.append(
                f"| `{r.condition}` -> {r.action} | {f.support}, {pct(f.precision)} | "
                f"{s.support} ({pct(s.coverage)}), {pct(s.precision)} | {pct(s.base_rate)} | "
                f"{'n/a' if s.lift is None else f'{s.lift:.2f}'} | {s.errors} | {r.backtest.holds} |"
            )
        if not ruleset.rules:
            rows.append("| (no candidate) | | | | | | |")
        rows.append("")
    bt = backtest_rule(frame, "AMOUNT_REQ < 2500", "auto_decline", target=TARGETS[
        "A_APPROVED vs A_DECLINED"])  # fmt: skip
    rows += ["Hand-written rule `AMOUNT_REQ < 2500 -> auto_decline` (A_APPROVED vs A_DECLINED): "
             + bt.message + f"; confusion later {bt.score.confusion.fired}.", ""]  # fmt: skip
    body = "\n".join(rows)
    print(body)
    if args.write:
        replace_section(RESULTS, "rules", body)


if __name__ == "__main__":
    main()
