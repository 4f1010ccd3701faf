"""Digital-twin commands: ``twin fit``, ``twin simulate`` and ``whatif``.

Each command returns an exit code; errors are raised as ToolError subclasses
that :func:`closedloop.cli.main` turns into one line on stderr.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from closedloop.cli.common import add_json, emit


def load_frame(path: Path) -> Any:
    """The event frame of a CSV, XES, XES.gz or Parquet log."""
    from closedloop.tools.log import load_event_log

    return load_event_log(path)


def load_twin(path: Path) -> Any:
    """A twin from TWIN.json (ScenarioError when missing or not a twin)."""
    from closedloop.tools.errors import ScenarioError
    from closedloop.tools.twin import as_twin

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: twin file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"{path}: not a twin JSON file ({exc})") from None
    return as_twin(data)


def twin_or_log(path: Path, seed: int) -> tuple[Any, Any]:
    """A twin from TWIN.json, or fitted on an event log (then with the log's frame)."""
    from closedloop.tools.twin import fit_twin

    if path.suffix.lower() == ".json":
        return load_twin(path), None
    frame = load_frame(path)
    return fit_twin(frame, seed=seed), frame


def parse_scenario(text: str) -> Any:
    """A scenario from JSON text or the path of a JSON file (ScenarioError when invalid)."""
    from closedloop.tools.errors import ScenarioError
    from closedloop.tools.twin import as_scenario

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


def _start_time(text: str) -> datetime:
    from closedloop.tools.errors import ScenarioError

    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ScenarioError(
            f"--start {text!r} is not an ISO date/time (e.g. 2012-01-09T08:00)"
        ) from None


def pct(e: Any) -> str:
    """A percentage estimate with its interval."""
    return f"{e.mean:+.1f} % [{e.ci_low:+.1f}, {e.ci_high:+.1f}]"


def _hours(e: Any) -> str:
    return f"{e.mean:+.2f} h [{e.ci_low:+.2f}, {e.ci_high:+.2f}]"


def backtest_lines(bt: Any) -> list[str]:
    """The twin's backtest in words (error, interval, coverage, training-mean baseline)."""
    from closedloop.tools.twin import twin_passes_backtest

    if bt.status != "ok":
        return [f"  backtest: skipped ({bt.reason})"]
    p = bt.predicted
    head = (
        f"  backtest (fit on the first {bt.train_share:.0%} of the time span, predict the rest): "
        f"{bt.test_cases} later cases, realised mean cycle time {bt.realised_hours:.3g} h, "
        f"predicted {p.mean:.3g} h [95 %: {p.low95:.3g}, {p.high95:.3g}] "
        f"error {bt.error_pct:+.1f} %, {'covered' if bt.covered else 'NOT covered'}; "
        f"training mean {bt.baseline_hours:.3g} h errs {bt.baseline_error_pct:+.1f} %"
    )
    if bt.replayed is not None:
        head += (f"; with the log's own arrivals {bt.replayed.mean:.3g} h "
                 f"({bt.replayed_error_pct:+.1f} %)")  # fmt: skip
    return [head, f"  backtest verdict: {twin_passes_backtest(bt).reason}"]


def cmd_twin_fit(args: argparse.Namespace) -> int:
    """Fit a twin on a log, backtest it (unless --no-backtest) and write it as JSON."""
    from closedloop.tools.twin import backtest_twin, fit_twin

    frame = load_frame(args.log)
    twin = fit_twin(frame, seed=args.seed, pooling=args.pooling)
    if args.backtest:
        twin.backtest = backtest_twin(frame, seed=args.seed, pooling=args.pooling)
    args.out.write_text(twin.model_dump_json(), encoding="utf-8")
    head = (f"twin of {twin.n_cases} cases, {len(twin.activities)} activities, "
            f"{len(twin.pools)} pools -> {args.out}")
    lines = [head]
    for p in sorted(twin.pools.values(), key=lambda p: -p.offered_load)[:10]:
        part = "; ".join(f"{m} only {hours}" for m, hours in p.part_time.items())
        lines.append(f"  {p.name}: capacity {p.capacity}, utilisation {p.utilisation:.0%}, "
                     f"{p.calendar}" + (f" ({part})" if part else ""))
    q = twin.queue_priority
    lines.append(f"  {q.describe()}" if q else "  queues: first come, first served")
    if twin.backtest is not None:
        lines += backtest_lines(twin.backtest)
    lines += [f"  warning: {w}" for w in twin.warnings]
    emit(args, {"out": str(args.out), "cases": twin.n_cases, "pools": len(twin.pools),
                "warnings": twin.warnings,
                "queue_priority": q.model_dump() if q else None,
                "backtest": twin.backtest.model_dump() if twin.backtest else None},
         "\n".join(lines))
    return 0


def cmd_twin_simulate(args: argparse.Namespace) -> int:
    """Simulate a log (CSV) from a twin, optionally under a scenario."""
    from closedloop.tools.log.csvsafe import write_csv
    from closedloop.tools.twin import simulate_log

    twin = load_twin(args.twin)
    scenario = parse_scenario(args.scenario) if args.scenario else None
    log = simulate_log(twin, cases=args.cases, start=_start_time(args.start), seed=args.seed,
                       scenario=scenario)
    write_csv(log, args.out)  # names from the fitted log: no spreadsheet formulas
    text = f"{log['case_id'].nunique()} cases, {len(log)} activity instances -> {args.out}"
    emit(args, {"out": str(args.out), "cases": int(log["case_id"].nunique()),
                "rows": len(log)}, text)
    return 0


def cmd_whatif(args: argparse.Namespace) -> int:
    """Predicted KPI deltas of a scenario against the as-is process."""
    from closedloop.tools.twin import simulate

    scenario = parse_scenario(args.scenario)
    twin, _ = twin_or_log(args.log, args.seed)
    result = simulate(twin, scenario, cases=args.cases, replications=args.replications,
                      seed=args.seed)
    a, w, d = result.as_is, result.what_if, result.delta
    lines = [
        f"scenario {scenario.kind}: {args.cases} cases x {args.replications} replications, seed "
        + str(args.seed),
        f"  mean cycle time  {a.cycle_time_mean_hours.mean:.2f} h -> "
        + f"{w.cycle_time_mean_hours.mean:.2f} h  ({pct(result.predicted_delta_pct)})",
        f"  p90 cycle time   {a.cycle_time_p90_hours.mean:.2f} h -> "
        + f"{w.cycle_time_p90_hours.mean:.2f} h",
        f"  queue waiting    {_hours(d.waiting_mean_hours)} per case",
        f"  throughput       {a.throughput_per_day.mean:.2f} -> "
        + f"{w.throughput_per_day.mean:.2f} per day",
    ]
    if result.treated_share.mean > 0:
        lines.append(f"  automated share  {result.treated_share.mean:.1%}")
    lines += [f"  note: {n}" for n in result.notes]
    emit(args, result, "\n".join(lines))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``twin`` (fit, simulate) and ``whatif``."""
    t = sub.add_parser("twin", help="fit a process twin or simulate a log from one")
    tsub = t.add_subparsers(dest="twin_command", required=True)
    fit = tsub.add_parser("fit", help="fit a twin from an event log and save it as JSON")
    fit.add_argument("log", type=Path, help="CSV, XES, XES.gz or Parquet event log")
    fit.add_argument("--out", type=Path, required=True, help="where to write TWIN.json")
    fit.add_argument("--pooling", choices=["auto", "activity", "profiles"], default="auto",
                     help="auto (shared pools of people who do the same work when the log has "
                          "resources and start times), one pool per activity, or shared pools")
    fit.add_argument("--seed", type=int, default=0, help="random seed")
    fit.add_argument("--no-backtest", dest="backtest", action="store_false",
                     help="skip the backtest (fit on the first 80 %% of the log's time span, "
                          "predict the rest)")
    add_json(fit)
    fit.set_defaults(func=cmd_twin_fit)

    sim = tsub.add_parser("simulate", help="simulate an event log (CSV) from a twin")
    sim.add_argument("twin", type=Path, help="TWIN.json from 'closedloop twin fit'")
    sim.add_argument("--cases", type=int, default=500, help="number of cases to simulate")
    sim.add_argument("--start", required=True,
                     help="ISO time of the first case, UTC if no offset")
    sim.add_argument("--out", type=Path, required=True,
                     help="SIM.csv: case_id, activity, start_time, end_time, resource")
    sim.add_argument("--scenario", help="optional what-if scenario (JSON or a .json file)")
    sim.add_argument("--seed", type=int, default=0, help="random seed")
    add_json(sim)
    sim.set_defaults(func=cmd_twin_simulate)

    w = sub.add_parser("whatif", help="simulate a what-if scenario against the as-is process")
    w.add_argument("log", type=Path, help="event log (fits a twin) or TWIN.json")
    w.add_argument("--scenario", required=True,
                   help='JSON, e.g. \'{"kind": "add_capacity", "activity_or_pool": "Closed", '
                        '"extra": 1}\', or a .json file')
    w.add_argument("--cases", type=int, default=500, help="cases per replication")
    w.add_argument("--replications", type=int, default=5, help="independent replications")
    w.add_argument("--seed", type=int, default=0, help="random seed")
    add_json(w)
    w.set_defaults(func=cmd_whatif)
