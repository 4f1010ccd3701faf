"""Operations commands: ``policy``, ``sandbox``, ``serve``, ``eval``, ``db``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from closedloop.cli.common import (
    EXIT_FAILED,
    MODES,
    add_json,
    current_user,
    emit,
    settings_from,
)

if TYPE_CHECKING:  # the handlers import the eval runner lazily
    from closedloop.evals.runner import CaseResult


def cmd_policy(args: argparse.Namespace) -> int:
    """Show a scope's policy; ``--set-mode``/``--kill-switch`` change it (audited, channel cli)."""
    from closedloop.governance import policy_for, set_policy
    from closedloop.store.db import open_store, transaction

    settings = settings_from(args)
    with transaction(open_store(settings.resolved_database_url())) as session:
        if args.set_mode or args.kill_switch:
            kill = None if args.kill_switch is None else args.kill_switch == "on"
            policy = set_policy(session, args.scope, mode=args.set_mode, kill_switch=kill,
                                by=args.by, channel="cli", default_mode=settings.default_mode)
        else:
            policy = policy_for(session, args.scope, settings.default_mode)
        data = policy.model_dump(mode="json")
    emit(args, data, f"scope {data['scope']}: mode {data['mode']}, kill switch "
                     f"{'ON' if data['kill_switch'] else 'off'}, caps {data['caps']}")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Serve a simulated enterprise system (helpdesk or order-to-cash) until interrupted."""
    from closedloop.sandbox.__main__ import main as sandbox_main

    return sandbox_main(["--domain", args.domain, "--regime", args.regime, "--port", str(args.port),
                         "--seed", str(args.seed), "--speed", str(args.speed)])


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the REST API and the Teams-style bot until interrupted."""
    from closedloop.api.server import serve

    serve(settings_from(args), host=args.host, port=args.port)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Run the eval suite (quick tier, or ``--full``); with ``--mutants`` also run it under every
    built-in broken agent. Exit 1 below the thresholds, on a safety violation or a survivor."""
    from closedloop.evals.mutation import run_mutants, thresholds
    from closedloop.evals.report import as_json, render
    from closedloop.evals.runner import run_suite

    limits = thresholds(args.thresholds)
    threshold = args.threshold if args.threshold is not None else float(limits["pass_rate"])
    settings = settings_from(args)
    tier = "full" if args.full else "quick"
    report = run_suite(settings, folder=args.cases, threshold=threshold, tier=tier,
                       baseline=not args.no_baseline, repeat=args.repeat)
    mutants = run_mutants(settings, tier=tier, folder=args.cases) if args.mutants else None
    lines = [f"{_case_label(c)}  {c.case}: " + (f"skipped: {c.skipped}" if c.skipped else "; ".join(
        f"{s.scorer} {'ok' if s.passed else 'FAILED: ' + s.detail}" for s in c.scores))
        + (f"\n      known gap: {c.known_gap}" if c.known_gap else "")
        + "".join(f"\n      known gap ({k}): {v}" for k, v in c.gaps.items())
        for c in report.cases]
    lines.append(f"pass rate {report.pass_rate:.0%} (threshold {report.threshold:.0%}); "
                 f"safety violations {report.safety_violations}")
    if "repeatability" in report.summary:
        rep = report.summary["repeatability"]
        lines.append(f"pass^{rep['k']} {rep['pass_k']:.0%}, pass^1 {rep['pass_1']:.0%}, "
                     f"flip rate {rep['flip_rate']:.0%}")
    ok = report.passed and report.safety_violations <= int(limits["max_safety_violations"])
    if mutants is not None:
        lines.append(f"mutants killed {mutants.kill_rate:.0%} "
                     f"(survivors: {[m.mutant for m in mutants.mutants if not m.killed] or 'none'})")
        ok = ok and mutants.kill_rate >= float(limits["min_kill_rate"])
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / "eval.md").write_text(render(report, mutants), encoding="utf-8")
        (args.report / "eval.json").write_text(json.dumps(as_json(report, mutants), indent=1), encoding="utf-8")
        lines.append(f"report written to {args.report}/eval.md and eval.json")
    emit(args, as_json(report, mutants), "\n".join(lines))
    return 0 if ok else EXIT_FAILED


def _case_label(case: CaseResult) -> str:
    """PASS/FAIL, SKIP, or GAP for a case failing where its known gaps say (FIXED once it passes)."""
    if case.skipped:
        return "SKIP"
    if case.known_gap or case.gaps:
        return "GAP " if case.as_expected else ("FIXED (remove its gaps)" if case.passed else "FAIL")
    return "PASS" if case.passed else "FAIL"


def cmd_db(args: argparse.Namespace) -> int:
    """Migrate the store to the latest schema."""
    from closedloop.store.migrate import upgrade

    url = settings_from(args).resolved_database_url()
    upgrade(url)
    print(f"store at {url.split('@')[-1]} is at the latest schema")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register policy, sandbox, eval, serve and db."""
    po = sub.add_parser("policy", help="show or change a scope's autonomy and kill switch")
    po.add_argument("scope", help="the scope, e.g. helpdesk")
    po.add_argument("--set-mode", choices=MODES, help="new autonomy mode of the scope")
    po.add_argument("--kill-switch", choices=["on", "off"],
                    help="on stops every write of the scope")
    po.add_argument("--by", default=current_user(),
                    help="who changes the policy, for the audit trail (default: $USER)")
    add_json(po)
    po.set_defaults(func=cmd_policy, mode=None)

    sb = sub.add_parser("sandbox", help="serve a simulated enterprise system's API on loopback")
    sb.add_argument("--domain", choices=("helpdesk", "o2c"), default="helpdesk",
                    help="helpdesk (ITSM tickets) or o2c (order-to-cash, SAP OData-shaped)")
    sb.add_argument("--regime", default="default",
                    help="its hidden dynamics, for benchmarks (python -m closedloop.sandbox "
                         "--list-regimes)")
    sb.add_argument("--port", type=int, default=8765, help="port (0 = any free port)")
    sb.add_argument("--seed", type=int, default=7, help="seed of the simulated system")
    sb.add_argument("--speed", type=float, default=0.0,
                    help="simulated seconds per real second (0 = manual clock)")
    sb.set_defaults(func=cmd_sandbox)

    ev = sub.add_parser("eval", help="run the eval suite (the whole loop on sandbox worlds, "
                                     "people's decisions, adversarial cases); exit 1 below the "
                                     "thresholds or on any safety violation")
    ev.add_argument("--cases", type=Path, default=None,
                    help="folder of *.yaml cases (default: bundled)")
    ev.add_argument("--threshold", type=float, default=None,
                    help="pass rate needed for exit code 0 (0..1; default: the thresholds file)")
    ev.add_argument("--thresholds", type=Path, default=None,
                    help="thresholds YAML (default: closedloop/evals/thresholds.yaml)")
    ev.add_argument("--full", action="store_true",
                    help="every case (minutes); default: the quick tier CI runs")
    ev.add_argument("--mutants", action="store_true",
                    help="also run the suite under every built-in broken agent (each must fail it)")
    ev.add_argument("--repeat", type=int, default=1,
                    help="run every case this many times, planned afresh (pass^k, flip rate)")
    ev.add_argument("--no-baseline", action="store_true",
                    help="do not score the do-nothing baseline beside the loop")
    ev.add_argument("--report", type=Path, default=None,
                    help="folder to write eval.md and eval.json into")
    add_json(ev)
    ev.set_defaults(func=cmd_eval)

    sv = sub.add_parser("serve", help="serve the REST API and the Teams approval bot; creates a dev "
                                      "API key in CLOSEDLOOP_HOME/api-key on first start")
    sv.add_argument("--host", default="127.0.0.1",
                    help="interface to listen on (default loopback); every endpoint but /health, "
                         "/metrics and /docs needs an API key or OAuth token (docs/api.md)")
    sv.add_argument("--port", type=int, default=8080, help="port to listen on")
    sv.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="migrate the store to the latest schema")
    db.add_argument("action", choices=["upgrade"], help="upgrade: migrate to the latest schema")
    db.set_defaults(func=cmd_db)
