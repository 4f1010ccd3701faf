"""``closedloop optimize``: staffing, shifts, activity assignment or an auto-decision threshold.

Every optimum is checked by simulation unless ``--no-validate``; an infeasible
problem prints its reason and exits 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from closedloop.cli.common import EXIT_FAILED, add_json, emit
from closedloop.cli.twin import load_frame, pct

KINDS = ("staffing", "shifts", "assignment", "threshold")
OBJECTIVES = {"shifts": ("cost", "waiting"), "assignment": ("waiting", "staff"),
              "threshold": ("cases", "hours_saved")}


def _outcomes(pairs: list[str] | None) -> Any:
    from closedloop.tools.errors import ScenarioError
    from closedloop.tools.rules import BPI2012_DECISION, OutcomeTarget

    if not pairs:
        return BPI2012_DECISION
    outcomes: dict[str, list[str]] = {}
    for pair in pairs:
        label, sep, acts = pair.partition("=")
        if not sep or not label.strip() or not acts.strip():
            raise ScenarioError(f"--outcome {pair!r} must look like LABEL=ACTIVITY[,ACTIVITY...]")
        outcomes[label.strip()] = [a.strip() for a in acts.split(",") if a.strip()]
    return OutcomeTarget(outcomes=outcomes)


def _objective(args: argparse.Namespace) -> str | None:
    from closedloop.tools.errors import ScenarioError

    if args.objective is None:
        return None
    allowed = OBJECTIVES.get(args.kind, ())
    if args.objective not in allowed:
        raise ScenarioError(f"--objective {args.objective!r} does not apply to --kind {args.kind}; "
                            f"choose from {', '.join(allowed) or '(none)'}")
    return args.objective


def run_optimisation(args: argparse.Namespace) -> Any:
    """The plan of the optimisation ``args`` describe (ScenarioError for bad options)."""
    from closedloop.tools import optimize as opt
    from closedloop.tools.errors import ScenarioError
    from closedloop.tools.twin import fit_twin

    objective = _objective(args)
    common = {"seed": args.seed, "validate": not args.no_validate,
              "replications": args.replications, "cases": args.cases}
    frame = load_frame(args.log)
    if args.kind == "threshold":
        return opt.optimize_threshold(
            frame, attribute=args.attribute, action=args.action, target=_outcomes(args.outcome),
            direction=args.direction, risk_cap=args.risk_cap, risk_labels=args.risk_label,
            objective=objective or "cases", decide_at=args.decide_at,
            then_activity=args.then, **common)
    twin = fit_twin(frame, seed=args.seed)
    if args.kind == "staffing":
        if args.budget is None:
            raise ScenarioError("--kind staffing needs --budget N (extra staff to add, >= 0)")
        if args.budget != int(args.budget):
            raise ScenarioError(f"--budget for staffing is a number of people, got {args.budget}")
        return opt.optimize_staffing(twin, budget_extra_staff=int(args.budget),
                                     max_per_pool=args.max_per_pool, pools=args.pool, **common)
    if args.kind == "shifts":
        return opt.optimize_shifts(
            twin, frame, budget_per_week=args.budget, cost_per_staff_hour=args.cost_per_hour,
            block_hours=args.block_hours, shift_hours=args.shift_hours,
            max_utilisation=args.max_utilisation,
            max_wait_hours=None if args.max_wait_hours < 0 else args.max_wait_hours,
            min_staff=args.min_staff, max_staff=args.max_staff, objective=objective or "cost",
            pools=args.pool, **common)
    max_moves = None if args.budget is None else int(args.budget)
    return opt.optimize_assignment(
        twin, frame, objective=objective or "waiting", min_skill_share=args.min_skill_share,
        max_moves=max_moves, max_utilisation=args.max_utilisation,
        max_waiting_increase_pct=args.max_waiting_increase_pct, **common)


# The simulated change each plan kind reports (with its interval), in order of preference.
SIMULATED_DELTA_FIELDS = ("simulated_waiting_delta_hours", "simulated_waiting_per_case_delta_hours",
                          "simulated_cycle_time_delta_hours")


def plan_text(plan: Any) -> str:
    """A readable summary of an optimisation plan."""
    lines = [plan.message]
    for field in ("extra_staff", "staff_per_shift", "moves", "condition", "sla_violations"):
        value = getattr(plan, field, None)
        if not value:
            continue
        if field == "staff_per_shift":
            lines += [f"  {p}: " + ", ".join(f"{b} {c}" for b, c in blocks.items())
                      for p, blocks in value.items()]
        elif field == "moves":
            lines += [f"  move {m.activity}: {m.from_pool} -> {m.to_pool} "
                      f"(skill share {m.skill_share:.0%})" for m in value]
        elif field == "sla_violations":
            lines += [f"  SLA: {v}" for v in value]
        elif field == "extra_staff":
            lines.append("  " + ", ".join(f"{p} +{x}" for p, x in value.items()))
    est = getattr(plan, "simulated_cycle_time_delta_pct", None)
    if est is not None:
        lines.append(f"  simulated cycle time {pct(est)}")
    for field in SIMULATED_DELTA_FIELDS:
        delta = getattr(plan, field, None)
        if delta is not None:
            lines.append(f"  simulated {field.removeprefix('simulated_').removesuffix('_delta_hours')}"
                         f" change {delta.mean:+.3g} h [{delta.ci_low:+.3g}, {delta.ci_high:+.3g}]")
            break
    confirmed = getattr(plan, "confirmed", None)
    why = getattr(plan, "confirmation", "")
    if confirmed is None:
        lines += [f"  {why}"] if why else []
    else:
        lines.append(f"  confirmed by simulation: {'yes' if confirmed else 'no'}"
                     + (f" - {why}" if why else ""))
    lines += [f"  note: {n}" for n in getattr(plan, "notes", [])]
    return "\n".join(lines)


def cmd_optimize(args: argparse.Namespace) -> int:
    """Optimise and print the plan; exit 1 when the problem is infeasible."""
    plan = run_optimisation(args)
    emit(args, plan, plan_text(plan))
    return EXIT_FAILED if plan.status == "infeasible" else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``optimize``."""
    o = sub.add_parser(
        "optimize", help="optimise staffing, shifts, activity assignment or an auto-decision "
        "threshold; every optimum is checked by simulation (exit 1 when infeasible)")
    o.add_argument("log", type=Path, help="CSV, XES, XES.gz or Parquet event log")
    o.add_argument("--kind", choices=KINDS, default="staffing", help="what to optimise")
    o.add_argument("--budget", type=float, default=None,
                   help="staffing: extra people (required); shifts: max cost per week; "
                        "assignment: max activities moved; threshold: unused")
    o.add_argument("--objective", default=None,
                   help="shifts: cost|waiting; assignment: waiting|staff; "
                        "threshold: cases|hours_saved")
    o.add_argument("--pool", action="append", help="restrict to this pool (repeatable)")
    o.add_argument("--max-per-pool", type=int, default=5, help="staffing: extra people per pool")
    o.add_argument("--cost-per-hour", type=float, default=1.0, help="shifts: cost per staff hour")
    o.add_argument("--block-hours", type=int, default=4,
                   help="shifts: block length (divides 24)")
    o.add_argument("--shift-hours", type=int, default=None,
                   help="shifts: shift length (default: one block)")
    o.add_argument("--max-utilisation", type=float, default=0.85,
                   help="shifts, assignment: highest utilisation of a pool")
    o.add_argument("--max-wait-hours", type=float, default=1.0,
                   help="shifts: SLA on queue wait per item (negative: utilisation only)")
    o.add_argument("--min-staff", type=int, default=0, help="shifts: fewest staff on duty per block")
    o.add_argument("--max-staff", type=int, default=None, help="shifts: most staff on duty per block "
                   "(default: the people seen in the pool)")
    o.add_argument("--min-skill-share", type=float, default=0.5,
                   help="assignment: share of a pool's people who must have done an activity")
    o.add_argument("--max-waiting-increase-pct", type=float, default=0.0,
                   help="assignment: how much longer queues may get, in percent")
    o.add_argument("--attribute", default="AMOUNT_REQ", help="threshold: numeric case attribute")
    o.add_argument("--action", default="auto_approve", help="threshold: auto_<label>")
    o.add_argument("--direction", choices=["below", "above"], default="below",
                   help="threshold: the rule applies below or above the threshold")
    o.add_argument("--risk-cap", type=float, default=0.05,
                   help="threshold: highest share of automated cases people decided as harm")
    o.add_argument("--outcome", action="append", metavar="LABEL=ACT[,ACT]",
                   help="threshold: decision labels (default: BPI 2012 approve/decline)")
    o.add_argument("--risk-label", action="append", help="threshold: labels that count as harm")
    o.add_argument("--decide-at", default=None, help="threshold: activity the rule skips")
    o.add_argument("--then", default=None, help="threshold: activity cases jump to")
    o.add_argument("--cases", type=int, default=500, help="cases per validation replication")
    o.add_argument("--replications", type=int, default=5, help="validation replications")
    o.add_argument("--seed", type=int, default=0, help="random seed")
    o.add_argument("--no-validate", action="store_true", help="skip the simulation check")
    add_json(o)
    o.set_defaults(func=cmd_optimize)
