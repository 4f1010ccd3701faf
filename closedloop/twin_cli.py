"""Command line for the digital twin: ``twin fit``, ``twin simulate``, ``whatif``, ``optimize``.

``closedloop.cli`` registers these with :func:`add_twin_commands`. Each
command returns an exit code (0 = done, 1 = the optimisation is infeasible);
errors are raised as ToolError subclasses that the CLI's main turns into one
line on stderr.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from closedloop.tools.errors import ScenarioError

EXIT_INFEASIBLE = 1
KINDS = ("staffing", "shifts", "assignment", "threshold")
OBJECTIVES = {"shifts": ("cost", "waiting"), "assignment": ("waiting", "staff"),
              "threshold": ("cases", "hours_saved")}  # fmt: skip


def _emit(args: argparse.Namespace, model: BaseModel | dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


def _frame(path: Path):
    from closedloop.tools.log.ingest import load_event_log

    return load_event_log(path)


def _twin_file(path: Path):
    from closedloop.tools.twin.simulate import as_twin

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: twin file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"{path}: not a twin JSON file ({exc})") from None
    return as_twin(data)


def _twin_or_log(path: Path, seed: int):
    """A twin from TWIN.json, or fitted on an event log."""
    from closedloop.tools.twin.fit import fit_twin

    if path.suffix.lower() == ".json":
        return _twin_file(path), None
    frame = _frame(path)
    return fit_twin(frame, seed=seed), frame


def parse_scenario(text: str) -> Any:
    """A scenario from JSON text or the path of a JSON file (ScenarioError when invalid)."""
    from closedloop.tools.twin.simulate import as_scenario

    source = text
    path = Path(text)
    if not text.lstrip().startswith(("{", "[")) and path.suffix.lower() == ".json":
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"--scenario {text}: cannot read the file ({exc})") from None
    try:
        data = json.loads(source)
    except json.JSONDecodeError as exc:
        raise ScenarioError(
            f"--scenario is neither a .json file nor valid JSON: {exc.msg} at character {exc.pos}"
        ) from None
    return as_scenario(data)


def cmd_twin_fit(args: argparse.Namespace) -> int:
    from closedloop.tools.twin.fit import fit_twin

    twin = fit_twin(_frame(args.log), seed=args.seed, pooling=args.pooling)
    args.out.write_text(twin.model_dump_json(), encoding="utf-8")
    head = (f"twin of {twin.n_cases} cases, {len(twin.activities)} activities, "
            f"{len(twin.pools)} pools -> {args.out}")  # fmt: skip
    lines = [head]
    for p in sorted(twin.pools.values(), key=lambda p: -p.offered_load)[:10]:
        lines.append(f"  {p.name}: capacity {p.capacity}, utilisation {p.utilisation:.0%}, "
                     f"{p.calendar}")  # fmt: skip
    lines += [f"  warning: {w}" for w in twin.warnings]
    _emit(args, {"out": str(args.out), "cases": twin.n_cases, "pools": len(twin.pools),
                 "warnings": twin.warnings}, "\n".join(lines))  # fmt: skip
    return 0


def _start_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ScenarioError(
            f"--start {text!r} is not an ISO date/time (e.g. 2012-01-09T08:00)"
        ) from None
    return moment


def cmd_twin_simulate(args: argparse.Namespace) -> int:
    from closedloop.tools.twin.simulate import simulate_log

    twin = _twin_file(args.twin)
    scenario = parse_scenario(args.scenario) if args.scenario else None
    log = simulate_log(twin, cases=args.cases, start=_start_time(args.start), seed=args.seed,
                       scenario=scenario)  # fmt: skip
    log.to_csv(args.out, index=False)
    text = f"{log['case_id'].nunique()} cases, {len(log)} activity instances -> {args.out}"
    _emit(args, {"out": str(args.out), "cases": int(log["case_id"].nunique()),
                 "rows": len(log)}, text)  # fmt: skip
    return 0


def _pct(e) -> str:
    return f"{e.mean:+.1f} % [{e.ci_low:+.1f}, {e.ci_high:+.1f}]"


def _hours(e) -> str:
    return f"{e.mean:+.2f} h [{e.ci_low:+.2f}, {e.ci_high:+.2f}]"


def cmd_whatif(args: argparse.Namespace) -> int:
    from closedloop.tools.twin.simulate import simulate

    scenario = parse_scenario(args.scenario)
    twin, _ = _twin_or_log(args.log, args.seed)
    result = simulate(twin, scenario, cases=args.cases, replications=args.replications,
                      seed=args.seed)  # fmt: skip
    a, w, d = result.as_is, result.what_if, result.delta
    lines = [
        f"scenario {scenario.kind}: {args.cases} cases x {args.replications} replications, seed "
        + str(args.seed),
        f"  mean cycle time  {a.cycle_time_mean_hours.mean:.2f} h -> "
        + f"{w.cycle_time_mean_hours.mean:.2f} h  ({_pct(result.predicted_delta_pct)})",
        f"  p90 cycle time   {a.cycle_time_p90_hours.mean:.2f} h -> {w.cycle_time_p90_hours.mean:.2f} h",
        f"  queue waiting    {_hours(d.waiting_mean_hours)} per case",
        f"  throughput       {a.throughput_per_day.mean:.2f} -> {w.throughput_per_day.mean:.2f} per day",
    ]
    if result.treated_share.mean > 0:
        lines.append(f"  automated share  {result.treated_share.mean:.1%}")
    lines += [f"  note: {n}" for n in result.notes]
    _emit(args, result, "\n".join(lines))
    return 0


def _outcomes(pairs: list[str] | None):
    from closedloop.tools.rules.learn import BPI2012_DECISION, OutcomeTarget

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
    if args.objective is None:
        return None
    allowed = OBJECTIVES.get(args.kind, ())
    if args.objective not in allowed:
        raise ScenarioError(f"--objective {args.objective!r} does not apply to --kind {args.kind}; "
                            f"choose from {', '.join(allowed) or '(none)'}")  # fmt: skip
    return args.objective


def _run_optimisation(args: argparse.Namespace):
    from closedloop.tools.optimize import staffing as opt
    from closedloop.tools.twin.fit import fit_twin

    objective = _objective(args)
    common = {"seed": args.seed, "validate": not args.no_validate,
              "replications": args.replications, "cases": args.cases}  # fmt: skip
    frame = _frame(args.log)
    if args.kind == "threshold":
        return opt.optimize_threshold(
            frame, attribute=args.attribute, action=args.action, target=_outcomes(args.outcome),
            direction=args.direction, risk_cap=args.risk_cap, risk_labels=args.risk_label,
            objective=objective or "cases", decide_at=args.decide_at,
            then_activity=args.then, **common)  # fmt: skip
    twin = fit_twin(frame, seed=args.seed)
    if args.kind == "staffing":
        if args.budget is None:
            raise ScenarioError("--kind staffing needs --budget N (extra staff to add, >= 0)")
        if args.budget != int(args.budget):
            raise ScenarioError(f"--budget for staffing is a number of people, got {args.budget}")
        return opt.optimize_staffing(twin, budget_extra_staff=int(args.budget),
                                     max_per_pool=args.max_per_pool, pools=args.pool, **common)  # fmt: skip
    if args.kind == "shifts":
        return opt.optimize_shifts(
            twin, frame, budget_per_week=args.budget, cost_per_staff_hour=args.cost_per_hour,
            block_hours=args.block_hours, shift_hours=args.shift_hours,
            max_utilisation=args.max_utilisation,
            max_wait_hours=None if args.max_wait_hours < 0 else args.max_wait_hours,
            min_staff=args.min_staff, max_staff=args.max_staff, objective=objective or "cost",
            pools=args.pool, **common)  # fmt: skip
    max_moves = None if args.budget is None else int(args.budget)
    return opt.optimize_assignment(
        twin, frame, objective=objective or "waiting", min_skill_share=args.min_skill_share,
        max_moves=max_moves, max_utilisation=args.max_utilisation,
        max_waiting_increase_pct=args.max_waiting_increase_pct, **common)  # fmt: skip


def _plan_text(plan: BaseModel) -> str:
    lines = [plan.message]
    for field in ("extra_staff", "staff_per_shift", "moves", "condition", "sla_violations"):
        value = getattr(plan, field, None)
        if not value:
            continue
        if field == "staff_per_shift":
            lines += [f"  {p}: " + ", ".join(f"{b} {c}" for b, c in blocks.items())
                      for p, blocks in value.items()]  # fmt: skip
        elif field == "moves":
            lines += [f"  move {m.activity}: {m.from_pool} -> {m.to_pool} "
                      f"(skill share {m.skill_share:.0%})" for m in value]  # fmt: skip
        elif field == "sla_violations":
            lines += [f"  SLA: {v}" for v in value]
        elif field == "extra_staff":
            lines.append("  " + ", ".join(f"{p} +{x}" for p, x in value.items()))
    for name in ("simulated_cycle_time_delta_pct",):
        est = getattr(plan, name, None)
        if est is not None:
            lines.append(f"  simulated cycle time {_pct(est)}")
    confirmed = getattr(plan, "confirmed", None)
    if confirmed is not None:
        lines.append(f"  confirmed by simulation: {'yes' if confirmed else 'no'}")
    lines += [f"  note: {n}" for n in getattr(plan, "notes", [])]
    return "\n".join(lines)


def cmd_optimize(args: argparse.Namespace) -> int:
    plan = _run_optimisation(args)
    _emit(args, plan, _plan_text(plan))
    return EXIT_INFEASIBLE if plan.status == "infeasible" else 0


def add_twin_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``twin`` (fit, simulate), ``whatif`` and ``optimize`` to a CLI's sub-parsers."""
    t = subparsers.add_parser("twin", help="fit a process twin or simulate a log from one")
    tsub = t.add_subparsers(dest="twin_command", required=True)
    fit = tsub.add_parser("fit", help="fit a twin from an event log and save it as JSON")
    fit.add_argument("log", type=Path, help="CSV, XES, XES.gz or Parquet event log")
    fit.add_argument("--out", type=Path, required=True, help="where to write TWIN.json")
    fit.add_argument("--pooling", choices=["activity", "profiles"], default="activity",
                     help="one pool per activity, or pools of activities with similar staff")  # fmt: skip
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--json", action="store_true")
    fit.set_defaults(func=cmd_twin_fit)

    sim = tsub.add_parser("simulate", help="simulate an event log (CSV) from a twin")
    sim.add_argument("twin", type=Path, help="TWIN.json from 'closedloop twin fit'")
    sim.add_argument("--cases", type=int, default=500)
    sim.add_argument("--start", required=True, help="ISO time of the first case, UTC if no offset")
    sim.add_argument("--out", type=Path, required=True, help="SIM.csv: case_id, activity, "
                     "start_time, end_time, resource")  # fmt: skip
    sim.add_argument("--scenario", help="optional what-if scenario (JSON or a .json file)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--json", action="store_true")
    sim.set_defaults(func=cmd_twin_simulate)

    w = subparsers.add_parser("whatif", help="simulate a what-if scenario against the as-is process")
    w.add_argument("log", type=Path, help="event log (fits a twin) or TWIN.json")
    w.add_argument("--scenario", required=True, help='JSON, e.g. \'{"kind": "add_capacity", '
                   '"activity_or_pool": "Closed", "extra": 1}\', or a .json file')  # fmt: skip
    w.add_argument("--cases", type=int, default=500)
    w.add_argument("--replications", type=int, default=5)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--json", action="store_true")
    w.set_defaults(func=cmd_whatif)

    o = subparsers.add_parser(
        "optimize", help="optimise staffing, shifts, activity assignment or an auto-decision "
        "threshold; every optimum is checked by simulation (exit 1 when infeasible)")  # fmt: skip
    o.add_argument("log", type=Path, help="CSV, XES, XES.gz or Parquet event log")
    o.add_argument("--kind", choices=KINDS, default="staffing")
    o.add_argument("--budget", type=float, default=None,
                   help="staffing: extra people (required); shifts: max cost per week; "
                   "assignment: max activities moved; threshold: unused")  # fmt: skip
    o.add_argument("--objective", default=None, help="shifts: cost|waiting; assignment: "
                   "waiting|staff; threshold: cases|hours_saved")  # fmt: skip
    o.add_argument("--pool", action="append", help="restrict to this pool (repeatable)")
    o.add_argument("--max-per-pool", type=int, default=5, help="staffing: extra people per pool")
    o.add_argument("--cost-per-hour", type=float, default=1.0, help="shifts: cost per staff hour")
    o.add_argument("--block-hours", type=int, default=4, help="shifts: block length (divides 24)")
    o.add_argument("--shift-hours", type=int, default=None, help="shifts: shift length (default: "
                   "one block)")  # fmt: skip
    o.add_argument("--max-utilisation", type=float, default=0.85)
    o.add_argument("--max-wait-hours", type=float, default=1.0,
                   help="shifts: SLA on queue wait per item (negative: utilisation only)")  # fmt: skip
    o.add_argument("--min-staff", type=int, default=0)
    o.add_argument("--max-staff", type=int, default=None)
    o.add_argument("--min-skill-share", type=float, default=0.5, help="assignment: share of a "
                   "pool's people who must have done an activity")  # fmt: skip
    o.add_argument("--max-waiting-increase-pct", type=float, default=0.0)
    o.add_argument("--attribute", default="AMOUNT_REQ", help="threshold: numeric case attribute")
    o.add_argument("--action", default="auto_approve", help="threshold: auto_<label>")
    o.add_argument("--direction", choices=["below", "above"], default="below")
    o.add_argument("--risk-cap", type=float, default=0.05)
    o.add_argument("--outcome", action="append", metavar="LABEL=ACT[,ACT]",
                   help="threshold: decision labels (default: BPI 2012 approve/decline)")  # fmt: skip
    o.add_argument("--risk-label", action="append", help="threshold: labels that count as harm")
    o.add_argument("--decide-at", default=None, help="threshold: activity the rule skips")
    o.add_argument("--then", default=None, help="threshold: activity cases jump to")
    o.add_argument("--cases", type=int, default=500)
    o.add_argument("--replications", type=int, default=5)
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--no-validate", action="store_true", help="skip the simulation check")
    o.add_argument("--json", action="store_true")
    o.set_defaults(func=cmd_optimize)


def run(argv: list[str]) -> int:
    """Parse ``argv`` with only these commands and run it (for tests and embedding)."""
    parser = argparse.ArgumentParser(prog="closedloop")
    add_twin_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValidationError as exc:  # pydantic models built from CLI values
        raise ScenarioError(str(exc).splitlines()[0]) from None
