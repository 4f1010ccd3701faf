"""Benchmark the loop's predictions against the sandbox's counterfactual truth.

Run from the repository root (no shared data needed):

    .venv/bin/python benchmarks/bench_counterfactual.py [--seeds 5] [--regimes a,b] [--write]

For every regime and seed: the loop of ``closedloop demo`` runs in-process
(offline policy, approval given) against a fresh sandbox; its chosen action,
the prediction it acted on and the Planner's predictions for every candidate
it simulated are read back. Then ``closedloop.evals.counterfactual`` runs the
same sandbox seed with and without each candidate (the harness's
``standard_candidates`` too, and no change): the true total effect on mean
cycle time of the cases started after the change. Reported: coverage of the
predicted 95 % interval, mean absolute error, and how often the chosen action
was the best candidate ("best" clears ``--min-gain-pct``, by default the loop's
own ``min_predicted_improvement_pct``, else "no change" is best).

Regimes are the sandbox's named worlds (``SandboxServer(regime=...)``, see
``closedloop.sandbox.params.REGIMES``): hidden parameters only, the loop sees
the same API in each. ``--smoke`` runs 2 seeds. ``--write`` writes
``benchmarks/results/counterfactual.md`` (then run ``benchmarks/assemble.py``)
and the raw rows to ``counterfactual.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
os.environ.setdefault("TQDM_DISABLE", "1")

from benchmarks.demo_loop import DRAIN_DAYS, HISTORY_DAYS, OBSERVE_DAYS, demo_loop
from closedloop.evals.counterfactual import (
    NoChange,
    RuleChange,
    best_candidate,
    change_from_action,
    regime_staffing,
    standard_candidates,
)
from closedloop.sandbox.params import REGIMES
from closedloop.settings import Settings

# The chosen action counts as near-best when its true gain is at least this share of the best's:
# candidates within 10 % of each other are ties at the noise of one seed.
NEAR_BEST = 0.9
BENCH_REGIMES = ("default", "second-line-bottleneck", "unreliable-bot", "overload", "nothing-helps")


def run_loop(seed: int, regime: str, tmp: Path) -> dict[str, Any]:
    """``run_demo`` against a sandbox of ``regime`` (approval given); the loop's choices."""
    loop = demo_loop(
        seed, regime, tmp, domain="helpdesk", scope=f"bench-{seed}", predicted=_prediction
    )
    watches = loop.pop("watches")
    return {**loop, "measured": watches[0].get("measured") if watches else None}


def _prediction(result: dict[str, Any]) -> dict[str, float]:
    """The interval the Planner acted on (its stored prediction), else the simulation's own."""
    if "prediction" in result:
        return dict(result["prediction"])
    from closedloop.tools.measure import prediction_summary

    return prediction_summary(result).model_dump()


def _key(change: Any) -> str:
    return change.model_dump_json()


def _full(change: Any) -> Any:
    """The same action rolled out to every matching case (a canary's share is how, not what)."""
    if isinstance(change, RuleChange) and change.treatment_share < 1.0:
        return change.model_copy(update={"treatment_share": 1.0})
    return change


def one_run(regime: str, seed: int, min_gain_pct: float) -> dict[str, Any]:
    """The loop's choice and the truth for it and every candidate, for one regime and seed."""
    with tempfile.TemporaryDirectory(prefix="bench-cf-") as tmp:
        loop = run_loop(seed, regime, Path(tmp))
    changes: dict[str, Any] = {_key(NoChange()): NoChange()}
    predicted: dict[str, dict[str, float]] = {_key(NoChange()): {"delta_hours": 0.0}}
    for ch in standard_candidates(regime_staffing(regime, seed)):
        changes.setdefault(_key(ch), ch)
    for cand in loop["candidates"]:
        ch = change_from_action(cand["action"], cand["params"])
        changes[_key(ch)] = ch
        predicted[_key(ch)] = cand["predicted"]
    chosen = (
        change_from_action(loop["chosen"]["action"], loop["chosen"]["params"])
        if loop["chosen"]
        else NoChange()
    )
    for ch in list(changes.values()):  # each action at full rollout too: the decision's unit
        changes.setdefault(_key(_full(ch)), _full(ch))
    truth = best_candidate(
        seed,
        list(changes.values()),
        HISTORY_DAYS,
        OBSERVE_DAYS,
        DRAIN_DAYS,
        regime=regime,
        min_gain_pct=min_gain_pct,
    )
    by_key = {_key(r.change): r for r in truth.results}
    actions = [r for r in truth.results if _key(_full(r.change)) == _key(r.change)]
    helps = [r for r in actions if r.effect_hours < 0 and r.effect_pct <= -min_gain_pct]
    best_action = min(helps, key=lambda r: r.effect_hours) if helps else None
    mine = by_key[_key(_full(chosen))]
    near = (best_action is None and isinstance(chosen, NoChange)) or (
        best_action is not None and mine.effect_hours <= NEAR_BEST * best_action.effect_hours
    )
    rows = []
    for r in truth.results:
        k = _key(r.change)
        rows.append(
            {
                "change": r.change.label(),
                "true_hours": r.effect_hours,
                "true_pct": r.effect_pct,
                "true_per_treated": r.effect_per_treated_case_hours,
                "treated_share": r.treated_cases / r.cases if r.cases else None,
                "reopen_points": r.reopen_effect_points,
                "censored": r.censored_changed,
                "predicted": predicted.get(k),
                "chosen": k == _key(chosen),
            }
        )
    return {
        "regime": regime,
        "seed": seed,
        "outcome": loop["outcome"],
        "chosen": chosen.label(),
        "best": truth.best_label,
        "rows": rows,
        "chosen_action": _full(chosen).label(),
        "best_action": best_action.change.label() if best_action else "no change",
        "near_best": bool(near),
        "chosen_predicted": loop["chosen"]["predicted"] if loop["chosen"] else None,
        "measured": loop["measured"],
    }


def _covers(pred: dict[str, float], true_hours: float, true_pct: float) -> tuple[bool, bool]:
    return (
        pred["ci_low_hours"] <= true_hours <= pred["ci_high_hours"],
        pred["ci_low_pct"] <= true_pct <= pred["ci_high_pct"],
    )


def _measured_truth(row: dict[str, Any], measured: dict[str, Any]) -> float | None:
    """The true effect the Watchdog's design estimates: on the mean of all cases for a
    switchback or a before/after; per treated case for a treatment vs control split, the total
    (every case's change over the treated share) once corrected for interference, the paired
    change of the treated cases when the cohorts share nothing."""
    design = measured.get("design")
    if design in ("switchback", "before_after_with_counterfactual"):
        return row["true_hours"]
    if design == "treatment_control_corrected":
        share = row.get("treated_share")
        return row["true_hours"] / share if share else None
    return row["true_per_treated"]


def summarise(runs: list[dict[str, Any]]) -> str:
    """The markdown table of coverage, error and choice quality per regime."""
    out = [
        (
            "| regime | runs | chosen = best as rolled out | action = best at full rollout (strict; "
            "within 10 % of the best's gain) | chosen action (count) | true best (count) "
            "| 95 % interval covers truth (chosen; hours / %) | same, every simulated candidate "
            "| 80 % interval (p10-p90) covers truth, every simulated candidate (hours) "
            "| MAE chosen (h; % of mean abs true effect) | Watchdog interval covers the true effect it estimates |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for regime in dict.fromkeys(r["regime"] for r in runs):
        rs = [r for r in runs if r["regime"] == regime]
        best = sum(r["chosen"] == r["best"] for r in rs)
        strict = sum(r.get("chosen_action") == r.get("best_action") for r in rs)
        near = sum(bool(r.get("near_best")) for r in rs)
        chosen_txt = "; ".join(
            f"{c} ({sum(r['chosen'] == c for r in rs)})"
            for c in dict.fromkeys(r["chosen"] for r in rs)
        )
        best_txt = "; ".join(
            f"{c} ({sum(r['best'] == c for r in rs)})" for c in dict.fromkeys(r["best"] for r in rs)
        )
        ch_h = ch_p = all_h = all_p = n_all = n_ch = 0
        errs, rel, watch_ok, watch_n, in80, n80 = [], [], 0, 0, 0, 0
        for r in rs:
            for row in r["rows"]:
                pred = row["predicted"]
                if not pred or "ci_low_hours" not in pred:
                    continue
                h, p = _covers(pred, row["true_hours"], row["true_pct"])
                n_all += 1
                if pred.get("p10_hours") is not None:
                    n80 += 1
                    in80 += pred["p10_hours"] <= row["true_hours"] <= pred["p90_hours"]
                all_h += h
                all_p += p
                if row["chosen"]:
                    n_ch += 1
                    ch_h += h
                    ch_p += p
                    err = abs(pred["delta_hours"] - row["true_hours"])
                    errs.append(err)
                    rel.append(abs(row["true_hours"]))
                    m = r["measured"] or {}
                    truth = _measured_truth(row, m)
                    if truth is not None and m.get("ci_low") is not None:
                        watch_n += 1
                        watch_ok += m["ci_low"] <= truth <= m["ci_high"]
        mae = (
            f"{statistics.mean(errs):.2f} h; {100 * sum(errs) / sum(rel):.0f} %"
            if errs and sum(rel) > 0
            else "n/a (no plan)"
        )
        out.append(
            f"| {regime} | {len(rs)} | {best}/{len(rs)} | {strict}/{len(rs)}; {near}/{len(rs)} "
            f"| {chosen_txt} | {best_txt} "
            f"| {ch_h}/{n_ch} / {ch_p}/{n_ch} | {all_h}/{n_all} / {all_p}/{n_all} "
            f"| {in80}/{n80} | {mae} "
            f"| {watch_ok}/{watch_n} |"
        )
    return "\n".join(out)


def _truths(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[int, dict[str, float]]]]:
    """Each regime's true effects by candidate label and seed."""
    out: dict[str, dict[str, dict[int, dict[str, float]]]] = {}
    for r in runs:
        for row in r["rows"]:
            out.setdefault(r["regime"], {}).setdefault(row["change"], {})[r["seed"]] = row
    return out


def oracle_reference(runs: list[dict[str, Any]], min_gain_pct: float) -> str:
    """What a predictor that knows each world exactly, but not the seed's own draws, reaches.

    The sandbox's hidden parameters are fixed per regime; a seed only changes its random
    draws. So the mean true effect of an action over the regime's *other* seeds is the
    prediction of an oracle that runs the world itself (leave-one-out). Its error and its
    choices are the floor the seed's noise puts under the issue's bars: the truth of one run
    is one draw, and ties between actions are decided by that draw.
    """
    truths = _truths(runs)
    out = [
        (
            "| regime | MAE chosen: oracle / the loop (same runs; % of mean abs true effect) "
            "| oracle's choice within 10 % of the best's gain | the loop's |"
        ),
        "|---|---|---|---|",
    ]
    for regime, by_change in truths.items():
        rs = [r for r in runs if r["regime"] == regime]
        seeds = [r["seed"] for r in rs]
        oracle_err = loop_err = size = 0.0
        for r in rs:
            for row in r["rows"]:
                others = [
                    t["true_hours"] for s, t in by_change[row["change"]].items() if s != r["seed"]
                ]
                if row["chosen"] and row["change"] != "no change" and len(others) >= 3:
                    oracle_err += abs(statistics.mean(others) - row["true_hours"])
                    loop_err += abs(row["predicted"]["delta_hours"] - row["true_hours"])
                    size += abs(row["true_hours"])
        # The oracle chooses among actions at full rollout that every seed of the regime ran.
        common = [
            c for c, by_seed in by_change.items() if len(by_seed) == len(seeds) and "@50%" not in c
        ]
        near = 0
        for r in rs:
            mean_pct = {
                c: statistics.mean(by_change[c][s]["true_pct"] for s in seeds if s != r["seed"])
                for c in common
            }
            pick = min(mean_pct, key=mean_pct.get)
            if mean_pct[pick] > -min_gain_pct:
                pick = "no change"
            actions = [row for row in r["rows"] if "@50%" not in row["change"]]
            helps = [a for a in actions if a["true_hours"] < 0 and a["true_pct"] <= -min_gain_pct]
            best = min(helps, key=lambda a: a["true_hours"]) if helps else None
            mine = by_change[pick][r["seed"]]["true_hours"]
            near += (best is None and pick == "no change") or (
                best is not None and mine <= NEAR_BEST * best["true_hours"]
            )
        mae = (
            f"{100 * oracle_err / size:.0f} % / {100 * loop_err / size:.0f} %" if size else "n/a"
        )
        loop_near = sum(bool(r.get("near_best")) for r in rs)
        out.append(f"| {regime} | {mae} | {near}/{len(rs)} | {loop_near}/{len(rs)} |")
    return "\n".join(out)


def detail(runs: list[dict[str, Any]]) -> str:
    """One line per run and candidate: predicted vs true."""
    out = [
        (
            "| regime | seed | candidate | chosen | predicted (h) [95 %] | predicted % "
            "| true (h) | true % | true per treated case (h) | reopen (points) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        for row in r["rows"]:
            pred = row["predicted"] or {}
            ph = (
                f"{pred['delta_hours']:+.2f} [{pred['ci_low_hours']:+.2f}, "
                f"{pred['ci_high_hours']:+.2f}]"
                if "ci_low_hours" in pred
                else "-"
            )
            pp = f"{pred['delta_pct']:+.1f}" if "delta_pct" in pred else "-"
            pt = "-" if row["true_per_treated"] is None else f"{row['true_per_treated']:+.2f}"
            out.append(
                f"| {r['regime']} | {r['seed']} | {row['change']} "
                f"| {'yes' if row['chosen'] else ''} | {ph} | {pp} "
                f"| {row['true_hours']:+.2f} | {row['true_pct']:+.1f} | {pt} "
                f"| {row['reopen_points']:+.1f} |"
            )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per regime (default 5)")
    parser.add_argument("--smoke", action="store_true", help="2 seeds per regime (a quick check)")
    parser.add_argument(
        "--regimes",
        default=",".join(BENCH_REGIMES),
        help=f"comma-separated sandbox regimes (known: {', '.join(REGIMES)})",
    )
    parser.add_argument(
        "--min-gain-pct",
        type=float,
        default=None,
        help="a best candidate must cut mean cycle time by this %% "
        "(default: the loop's min_predicted_improvement_pct)",
    )
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/")
    parser.add_argument("--note", default="", help="a line for the docs section (e.g. the commit)")
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="re-render the tables from a counterfactual.json of an earlier run",
    )
    args = parser.parse_args()
    regimes = [r.strip() for r in args.regimes.split(",") if r.strip()]
    unknown = [r for r in regimes if r not in REGIMES]
    if unknown:
        parser.error(f"unknown regime(s) {', '.join(unknown)}; known: {', '.join(REGIMES)}")
    if args.smoke:
        args.seeds = 2
    if args.min_gain_pct is None:
        args.min_gain_pct = Settings().min_predicted_improvement_pct
    started = time.perf_counter()
    runs = json.loads(args.from_json.read_text(encoding="utf-8")) if args.from_json else []
    for regime in [] if args.from_json else regimes:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            t = time.perf_counter()
            runs.append(one_run(regime, seed, args.min_gain_pct))
            print(
                f"{regime} seed {seed}: chose {runs[-1]['chosen']}, best {runs[-1]['best']} "
                f"({time.perf_counter() - t:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    table = summarise(runs)
    seconds = time.perf_counter() - started
    print(table)
    if args.write:
        results = ROOT / "results"
        if not args.from_json:
            (results / "counterfactual.json").write_text(
                json.dumps(runs, separators=(",", ":")), encoding="utf-8"
            )
        (results / "counterfactual.md").write_text(
            section(
                table,
                oracle_reference(runs, args.min_gain_pct),
                detail(runs),
                args,
                seconds,
                list(dict.fromkeys(r["regime"] for r in runs)),
            ),
            encoding="utf-8",
        )


def section(
    table: str,
    oracle: str,
    rows: str,
    args: argparse.Namespace,
    seconds: float,
    regimes: list[str],
) -> str:
    """The docs section (benchmarks/assemble.py puts it into docs/benchmarks.md)."""
    names = ", ".join(f"`{r}`" for r in regimes)
    joined = ",".join(regimes)
    regime_notes = "\n".join(f"- `{r}`: {REGIMES[r].summary}" for r in regimes if r in REGIMES)
    return f"""# Predictions against the counterfactual truth

Reproduce: `.venv/bin/python benchmarks/bench_counterfactual.py --seeds {args.seeds} --regimes \
{joined} --write`
then `.venv/bin/python benchmarks/assemble.py` ({seconds / 60:.1f} min on 2 shared cores).
Seeds {args.first_seed}..{args.first_seed + args.seeds - 1} in each regime. {args.note}

The loop of `closedloop demo` (offline policy, plan approved) runs against the sandbox
({HISTORY_DAYS:g} days of history, then the change, {OBSERVE_DAYS:g} days observed). The
harness `closedloop.evals.counterfactual` runs the same seed again with and without each
candidate through the sandbox's own API and follows the cases started in the
{OBSERVE_DAYS:g} observed days for {DRAIN_DAYS:g} more days: the true total effect on their
mean cycle time (same tickets in both worlds). Candidates: the ones the Planner simulated
(their predicted 95 % interval is the Planner's), the harness's standard set (one more agent
on each queue, auto-resolving password or access tickets, routing software tickets to L2) and
no change. "Best" is the candidate with the most negative true effect that shortens mean cycle
time by at least {args.min_gain_pct:g} % (the loop's own bar), or "no change" when none does.
"As rolled out" compares the loop's choice as run (a canary is a rule on 50 % of matching
cases; a route goes to every matching case) with every
candidate as run; "at full rollout" compares actions, each rule at 100 % (the canary's share
is how a change is rolled out, not which change it is), strictly and within
{100 * (1 - NEAR_BEST):.0f} % of the best action's gain (closer than that is a tie at the
noise of one seed).

Regimes are the sandbox's named worlds (`closedloop sandbox --regime NAME`), each a documented
set of overrides of its hidden parameters (`closedloop/sandbox/params.py`): {names}.
The loop sees the same API in each. This is the baseline for issue 9's "Numbers to reach".

{regime_notes}

How to read it: "covers" counts runs whose true effect lies inside the Planner's predicted
95 % interval, in hours of mean cycle time per case and in % of each world's own baseline (and
inside its 80 % interval, the p10-p90 the approver sees, in hours);
the error is |predicted - true| of the chosen action's total effect, as mean hours and as a
share of the mean absolute true effect; the Watchdog column compares its interval with the
true effect its design estimates: for a treatment-vs-control split (a canary) corrected for
interference, the total effect per treated case (the change of mean cycle time of all cases over
the share of cases treated: the treated cases' own gain and the relief the others get); for a
split whose cohorts share nothing, the paired effect per treated case; the change of mean cycle
time of all cases for a switchback (a route, toggled by time blocks) or a before/after against
the twin's counterfactual (staffing).

{table}

The floor under these bars. A regime's hidden parameters are the same for every seed; a seed
only changes the random draws (arrivals, handling times, bot failures). An oracle that knows the
world exactly can predict an action's effect as its mean true effect over the regime's other
seeds (it runs the sandbox itself), and choose the action with the best such mean. It does
not know the seed's own future draws (nor does the loop), and the truth of one run holds
them. It is a reference, not a strict bound: the loop's twin also sees the seed's own history
(its backlog at the change), the oracle does not. Same runs, same scoring as above (the oracle
chooses among the full-rollout actions every seed ran, so a route only some seeds proposed is
out of its reach):

{oracle}

Per run and candidate (hours are the change of mean cycle time per case started after the
change; "per treated case" for rules is the paired mean over treated tickets):

{rows}
"""


if __name__ == "__main__":
    main()
