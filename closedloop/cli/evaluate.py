"""The ``eval`` command: the eval suite, any policy side by side, stored traces graded again."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from closedloop.cli.common import EXIT_FAILED, EXIT_INPUT, add_json, emit, settings_from

if TYPE_CHECKING:  # the handlers import the eval runner lazily
    from closedloop.evals.runner import CaseResult


def cmd_eval(args: argparse.Namespace) -> int:
    """Run the eval suite (quick tier, or ``--full``); with ``--mutants`` also run it under every
    built-in broken agent; ``--policy`` compares policies on the same cases; ``--regrade`` grades
    stored traces again. Exit 1 below the thresholds, on a safety violation or a survivor; 2 on
    bad input (an unknown case or policy, a folder without traces, a file that is not one)."""
    try:
        return _eval(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"closedloop eval: {exc}", file=sys.stderr)
        return EXIT_INPUT


def _eval(args: argparse.Namespace) -> int:
    if args.regrade:
        return _regrade(args)
    if args.policy:
        return _policies(args)
    from closedloop.evals.mutation import run_mutants, thresholds
    from closedloop.evals.report import as_json, render
    from closedloop.evals.runner import run_suite

    limits = thresholds(args.thresholds)
    threshold = args.threshold if args.threshold is not None else float(limits["pass_rate"])
    settings = settings_from(args)
    tier = "full" if args.full or args.case else "quick"  # a named case is found in any tier
    report = run_suite(
        settings,
        folder=args.cases,
        threshold=threshold,
        tier=tier,
        baseline=not args.no_baseline,
        repeat=args.repeat,
        names=args.case or None,
        traces=args.traces,
    )
    mutants = run_mutants(settings, tier=tier, folder=args.cases) if args.mutants else None
    lines = [_case_line(c) for c in report.cases]
    lines.append(
        f"pass rate {report.pass_rate:.0%} (threshold {report.threshold:.0%}); "
        f"safety violations {report.safety_violations}"
    )
    if "repeatability" in report.summary:
        rep = report.summary["repeatability"]
        lines.append(
            f"pass^{rep['k']} {rep['pass_k']:.0%}, pass^1 {rep['pass_1']:.0%}, "
            f"flip rate {rep['flip_rate']:.0%}"
        )
    ok = report.passed and report.safety_violations <= int(limits["max_safety_violations"])
    if mutants is not None:
        lines.append(
            f"mutants killed {mutants.kill_rate:.0%} "
            f"(survivors: {[m.mutant for m in mutants.mutants if not m.killed] or 'none'})"
        )
        ok = ok and mutants.kill_rate >= float(limits["min_kill_rate"])
    if args.traces:
        lines.append(f"traces stored in {args.traces} (closedloop eval --regrade {args.traces})")
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / "eval.md").write_text(render(report, mutants), encoding="utf-8")
        (args.report / "eval.json").write_text(
            json.dumps(as_json(report, mutants), indent=1), encoding="utf-8"
        )
        lines.append(f"report written to {args.report}/eval.md and eval.json")
    emit(args, as_json(report, mutants), "\n".join(lines))
    return 0 if ok else EXIT_FAILED


def _case_line(c: CaseResult) -> str:
    body = (
        f"skipped: {c.skipped}"
        if c.skipped
        else "; ".join(
            f"{s.scorer} {'ok' if s.passed else 'FAILED: ' + s.detail}" for s in c.scores
        )
    )
    return (
        f"{_case_label(c)}  {c.case}: {body}"
        + (f"\n      known gap: {c.known_gap}" if c.known_gap else "")
        + "".join(f"\n      known gap ({k}): {v}" for k, v in c.gaps.items())
    )


def _case_label(case: CaseResult) -> str:
    """PASS/FAIL, SKIP, or GAP for a case failing where its known gaps say (FIXED once it passes)."""
    if case.skipped:
        return "SKIP"
    if case.known_gap or case.gaps:
        return (
            "GAP " if case.as_expected else ("FIXED (remove its gaps)" if case.passed else "FAIL")
        )
    return "PASS" if case.passed else "FAIL"


def _policies(args: argparse.Namespace) -> int:
    """Every ``--policy`` on the same cases, side by side; exit 1 on a safety violation."""
    from closedloop.evals.policies import compare_policies, comparison_rows, render_comparison

    results = compare_policies(
        settings_from(args),
        args.policy,
        tier="full" if args.full or args.case else "quick",
        folder=args.cases,
        names=args.case or None,
        traces=args.traces,
    )
    table = render_comparison(results)
    data: dict[str, Any] = {
        "policies": comparison_rows(results),
        "reports": {p.name: r.model_dump(mode="json") for p, r in results},
    }
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / "policies.md").write_text(
            "# Policies on the same cases\n\n" + table, encoding="utf-8"
        )
        (args.report / "policies.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    emit(args, data, table.rstrip())
    return 0 if all(r.safety_violations == 0 for _, r in results) else EXIT_FAILED


def _regrade(args: argparse.Namespace) -> int:
    """Grade stored traces again; exit 1 when a score differs from the stored one."""
    from closedloop.evals.traces import regrade

    out = regrade(args.regrade, args.cases)
    differ = [r for r in out if not r.same]
    lines = [
        f"{'SAME' if r.same else 'DIFFERS'}  {r.case}"
        + "".join(f"\n      {d}" for d in r.differences)
        for r in out
    ]
    lines.append(
        f"{len(out) - len(differ)} of {len(out)} stored traces graded again give every stored score"
    )
    emit(args, {"regraded": [r.model_dump(mode="json") for r in out]}, "\n".join(lines))
    return 0 if not differ else EXIT_FAILED


def add_eval_command(sub: argparse._SubParsersAction) -> None:
    """Register ``eval``."""
    ev = sub.add_parser(
        "eval",
        help="run the eval suite (the whole loop on sandbox worlds, people's decisions, "
        "adversarial cases); exit 1 below the thresholds or on any safety violation",
    )
    ev.add_argument(
        "--cases", type=Path, default=None, help="folder of *.yaml cases (default: bundled)"
    )
    ev.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="pass rate needed for exit code 0 (0..1; default: the thresholds file)",
    )
    ev.add_argument(
        "--thresholds",
        type=Path,
        default=None,
        help="thresholds YAML (default: closedloop/evals/thresholds.yaml)",
    )
    ev.add_argument(
        "--full", action="store_true", help="every case (minutes); default: the quick tier"
    )
    ev.add_argument("--case", action="append", default=[], help="only this case (repeatable)")
    ev.add_argument(
        "--mutants",
        action="store_true",
        help="also run the suite under every built-in broken agent (each must fail it)",
    )
    ev.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every case this many times, planned afresh (pass^k, flip rate)",
    )
    ev.add_argument(
        "--no-baseline",
        action="store_true",
        help="do not score the do-nothing baseline beside the loop",
    )
    ev.add_argument(
        "--policy",
        action="append",
        default=[],
        help="score this policy on the same cases, side by side (repeatable): offline, "
        "configured, nothing, first, random, or module:factory (docs/evals.md)",
    )
    ev.add_argument(
        "--traces", type=Path, default=None, help="store each case's trace in this folder"
    )
    ev.add_argument(
        "--regrade",
        type=Path,
        default=None,
        metavar="TRACE_DIR",
        help="grade the traces stored in TRACE_DIR again without running; exit 1 if a score "
        "differs",
    )
    ev.add_argument(
        "--report", type=Path, default=None, help="folder to write eval.md and eval.json into"
    )
    add_json(ev)
    ev.set_defaults(func=cmd_eval)
