"""Benchmark a canary's measurement of a bot's failure rate, and what it does to the prediction.

Run from the repository root (no shared data needed):

    .venv/bin/python benchmarks/bench_canary.py [--seeds 5] [--regimes a,b] [--write]

For every regime and seed (issue 9: a parameter the log cannot show enters as a declared prior
range; "a canary then measures it and the estimate is updated"):

1. The canary: the sandbox of ``closedloop.evals.counterfactual`` runs ``HISTORY_DAYS`` of
   history, then gets an auto-resolve rule on ``category=password`` for 50 % of matching
   tickets and runs ``OBSERVE_DAYS`` more. ``closedloop.tools.measure.canary``'s
   ``automation_failures`` reads the events since the change (the tickets whose cohort is
   treatment; the work taken over is the activities of the twin pool doing Triage, as the
   Planner's automation candidate has it; the people are those who did them in the history).
   Truth: the regime's hidden failure rate of the bot on password tickets.
2. The full rollout (100 %) of the same rule predicted from the history log as the Planner does
   (``predict`` over its horizon, its bootstrap refits shared by every prediction): with the
   declared prior ranges ("prior"), with the canary's failure rate only ("rate only"), and as
   the loop does after a canary ("measured": its failure rate and how long its failures went
   unnoticed, ``closedloop.tools.act.evidence.automation_assumptions``).
3. Truth of the full rollout: the harness's total effect on mean cycle time (same seed, rule
   at 100 % vs no change, cases started in the observed days followed ``DRAIN_DAYS`` more).

The canary's notice delays are checked against the hours from the bot's step to the
customer's reopen, read with the sandbox's own activity names (benchmark only).

``--write`` writes ``benchmarks/results/canary.md`` and the raw rows to ``canary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from benchmarks.demo_loop import DRAIN_DAYS, HISTORY_DAYS, OBSERVE_DAYS
from closedloop.agents.planner import PLAN_BOOTSTRAP

# run_world returns case outcomes only; the canary needs the event log itself, read at the
# change and at the end of the observed days (as the Planner and the Watchdog read it).
from closedloop.evals.counterfactual import RuleChange, _advance, _apply, _events, true_effect
from closedloop.sandbox.app import create_app
from closedloop.sandbox.params import REGIMES, SandboxParams, with_overrides
from closedloop.settings import Settings
from closedloop.tools.act.evidence import automation_assumptions
from closedloop.tools.act.ranking import contract_prediction, shortfall
from closedloop.tools.log import frame_from_records
from closedloop.tools.log.columns import ACTIVITY, CASE, RESOURCE, TIMESTAMP
from closedloop.tools.measure.canary import FailureCounts, automation_failures
from closedloop.tools.twin import AutomateActivity, Combined, fit_twin, predict
from closedloop.tools.twin.uncertainty import bootstrap_twins

BENCH_REGIMES = ("default", "unreliable-bot", "second-line-bottleneck")
# prior: the declared ranges; rate only: the canary's failure interval instead (the notice
# delay still from the log's rework gaps); measured: what the loop does, both from the canary.
VARIANTS = ("prior", "rate only", "measured")
FIELD, VALUE = "category", "password"
CANARY_SHARE = 0.5
FEED_KEYS = ("case_id", "activity", "timestamp", "resource", "lifecycle", "event_id", "attributes")


def _rule(share: float) -> RuleChange:
    return RuleChange(name=f"auto-resolve {VALUE}", treatment_share=share,
                      condition={"field": FIELD, "op": "eq", "value": VALUE})


def _frame(events: list[dict[str, Any]]) -> Any:
    """The canonical frame of sandbox events (the fields the helpdesk connector maps)."""
    return frame_from_records([{k: e[k] for k in FEED_KEYS if k in e} for e in events])


def canary_world(seed: int, regime: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The history log at the change, and the events of the observed days after a canary of
    the rule (same seed and history as the harness's worlds)."""
    client = TestClient(create_app(seed=seed, regime=regime))
    _advance(client, HISTORY_DAYS * 24)
    history = _events(client)
    _apply(client, _rule(CANARY_SHARE))
    _advance(client, OBSERVE_DAYS * 24)
    return history, _events(client)[len(history):]


def true_rate(regime: str) -> float:
    """The regime's hidden failure rate of the bot on the segment."""
    return with_overrides(SandboxParams(), REGIMES[regime]).auto_resolve_failure[VALUE]


def notice_hours(since: Any, treated: set[str]) -> list[float]:
    """Per failed treated ticket of the canary: hours from the bot's resolution to the
    customer's reopen (how long the failure went unnoticed; sandbox names, benchmark only)."""
    rows = since[since[CASE].isin(treated)]
    bot = rows[rows[ACTIVITY] == "Auto-resolve"].groupby(CASE)[TIMESTAMP].min()
    reopen = rows[rows[ACTIVITY] == "Reopen"].groupby(CASE)[TIMESTAMP].min()
    both = bot.index.intersection(reopen.index)
    return sorted(((reopen[both] - bot[both]) / pd.Timedelta(hours=1)).astype(float).tolist())


def _prediction(twin: Any, frame: Any, acts: list[str], refits: list[Any],
                measured: FailureCounts | None) -> dict[str, Any]:
    """The Planner's prediction of the rule at 100 % (``_automation``'s scenario and ranges)."""
    s = Settings()
    segment = f"{FIELD} == {VALUE!r}"
    changes = [AutomateActivity(activity=a, segment=segment, share=1.0) for a in acts]
    scenario = changes[0] if len(changes) == 1 else Combined(changes=changes)
    ranges, (prior, delay) = automation_assumptions(frame, FIELD, [VALUE], acts,
                                                    measured=measured)
    horizon = s.prediction_days * 24.0 if s.prediction_days > 0 else None
    pred = predict(twin, scenario, frame=frame, assumptions=ranges, refits=refits,
                   cases=s.simulation_cases, replications=s.simulation_replications, seed=s.seed,
                   horizon_hours=horizon)
    c = contract_prediction(pred)
    return {"failure_range": [prior.low, prior.high], "source": prior.source,
            "delay_range": [delay.low, delay.high],
            "delta_hours": c.delta_hours, "ci_low_hours": c.ci_low_hours,
            "ci_high_hours": c.ci_high_hours, "delta_pct": c.delta_pct, "p90_pct": c.p90_pct,
            "p90_hours": c.p90_hours,
            "acts": shortfall(c, s.min_predicted_improvement_pct) is None}


def one_run(regime: str, seed: int) -> dict[str, Any]:
    """Canary measurement, both predictions of the full rollout and its truth, for one seed."""
    wall, cpu = time.perf_counter(), time.process_time()
    history, after = canary_world(seed, regime)
    frame, since = _frame(history), _frame(after)
    twin = fit_twin(frame, seed=Settings().seed)
    acts = [a for a in twin.pools[twin.pool_of("Triage")].activities if a in twin.activities]
    people = sorted(set(frame.loc[frame[ACTIVITY].isin(acts), RESOURCE].astype(str)))
    ends = frame.sort_values(TIMESTAMP).groupby(CASE)[ACTIVITY].last().value_counts()
    treated = {e["case_id"] for e in after
               if str(e["attributes"].get("experiment", "")).endswith(":treatment")}
    m = automation_failures(since, treated, acts, [str(ends.index[0])], people=people)
    # The sample's own failure share (bot runs later reopened), to tell noise from bias.
    bot = {e["case_id"] for e in after if e["activity"] == "Auto-resolve"}
    reopened = {e["case_id"] for e in after if e["activity"] == "Reopen"} & bot
    rate_only = FailureCounts(failed=m.failed, cases=m.cases, plans=[0])
    noticed = (m.notice_q1, m.notice_q3) if m.notice_q1 is not None and m.notice_q3 is not None \
        else None
    counts = rate_only.model_copy(update={"notice_hours": noticed, "notice_n": m.notice_n})
    refits = bootstrap_twins(frame, twin, PLAN_BOOTSTRAP, Settings().seed)
    prior = _prediction(twin, frame, acts, refits, None)
    only = _prediction(twin, frame, acts, refits, rate_only)
    measured = _prediction(twin, frame, acts, refits, counts)
    delays = notice_hours(since, treated)
    q1, q3 = (float(np.quantile(delays, q)) for q in (0.25, 0.75)) if delays else (0.0, 0.0)
    truth = true_effect(seed, _rule(1.0), HISTORY_DAYS, OBSERVE_DAYS, DRAIN_DAYS, regime=regime)
    rate = true_rate(regime)
    min_pct = Settings().min_predicted_improvement_pct
    return {
        "regime": regime, "seed": seed, "true_rate": rate, "taken_over": acts,
        "end_activity": str(ends.index[0]), "people": people,
        "canary": {"treated": len(treated), "failed": m.failed, "cases": m.cases,
                   "pending": m.pending, "rate": m.rate, "low95": m.low95, "high95": m.high95,
                   "enough": counts.enough, "covers": m.low95 <= rate <= m.high95,
                   "sample_rate": len(reopened) / len(bot) if bot else None},
        "prior": prior, "rate only": only, "measured": measured,
        "notice_hours": {"n": len(delays), "q1": q1, "q3": q3,
                         "mean": statistics.mean(delays) if delays else None,
                         "canary_n": m.notice_n, "canary_q1": m.notice_q1,
                         "canary_q3": m.notice_q3},
        "truth": {"effect_hours": truth.effect_hours, "effect_pct": truth.effect_pct,
                  "baseline_hours": truth.baseline_mean_cycle_hours, "cases": truth.cases,
                  "censored": truth.censored_changed,
                  "should_act": truth.effect_pct <= -min_pct},
        "min_improvement_pct": min_pct,
        "seconds_wall": round(time.perf_counter() - wall, 2),
        "seconds_cpu": round(time.process_time() - cpu, 2),
    }


def _covers(p: dict[str, Any], true_hours: float) -> bool:
    return p["ci_low_hours"] <= true_hours <= p["ci_high_hours"]


def summarise(runs: list[dict[str, Any]]) -> str:
    """The markdown table per regime: the canary's rate, and prior vs measured predictions."""
    out = [("| regime | runs | true rate | canary rate (mean; judged cases) | canary 95 % "
            "covers true rate | mean width (points) | prediction | 95 % interval covers true "
            "effect | mean width (h) | MAE point (h) | act/decline right (p90 bar) | acts "
            "| truth: act |"),
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for regime in dict.fromkeys(r["regime"] for r in runs):
        rs = [r for r in runs if r["regime"] == regime]
        n = len(rs)
        rates = [r["canary"]["rate"] for r in rs if r["canary"]["rate"] is not None]
        cov = sum(r["canary"]["covers"] for r in rs)
        width = statistics.mean(100 * (r["canary"]["high95"] - r["canary"]["low95"]) for r in rs)
        judged = statistics.mean(r["canary"]["cases"] for r in rs)
        should = sum(r["truth"]["should_act"] for r in rs)
        rate_txt = f"{statistics.mean(rates):.1%}; {judged:.0f}" if rates else "n/a"
        for k, kind in enumerate(VARIANTS):
            true_h = [r["truth"]["effect_hours"] for r in rs]
            ps = [r[kind] for r in rs]
            covers = sum(_covers(p, t) for p, t in zip(ps, true_h, strict=True))
            w = statistics.mean(p["ci_high_hours"] - p["ci_low_hours"] for p in ps)
            mae = statistics.mean(abs(p["delta_hours"] - t) for p, t in zip(ps, true_h, strict=True))
            right = sum(p["acts"] == r["truth"]["should_act"] for p, r in zip(ps, rs, strict=True))
            head = (f"| {regime} | {n} | {rs[0]['true_rate']:.0%} | {rate_txt} | {cov}/{n} "
                    f"| {width:.1f} " if k == 0 else "| | | | | | ")
            out.append(f"{head}| {kind} | {covers}/{n} | {w:.1f} | {mae:.2f} | {right}/{n} "
                       f"| {sum(p['acts'] for p in ps)}/{n} | {should}/{n} |")
    return "\n".join(out)


def detail(runs: list[dict[str, Any]]) -> str:
    """One line per run: the canary's counts, both predictions and the truth."""
    out = [("| regime | seed | canary failed/judged (pending) | rate [95 %] | delay h (IQR): "
            "log rework; canary; bot-to-reopen check | prior: pred h [95 %]; p90 % "
            "| rate only: same | measured: same | true h (%) | s wall / cpu |"),
           "|---|---|---|---|---|---|---|---|---|---|"]

    def pred(p: dict[str, Any]) -> str:
        return (f"{p['delta_hours']:+.1f} [{p['ci_low_hours']:+.1f}, {p['ci_high_hours']:+.1f}]; "
                f"{p['p90_pct']:+.1f}{' act' if p['acts'] else ''}")

    for r in runs:
        c, t = r["canary"], r["truth"]
        rate = f"{c['rate']:.1%} [{c['low95']:.1%}, {c['high95']:.1%}]" if c["rate"] is not None \
            else "-"
        lo, hi = r["prior"]["delay_range"]
        d = r["notice_hours"]
        canary = (f"{d['canary_q1']:.1f}-{d['canary_q3']:.1f}" if d["canary_q1"] is not None
                  else "-")
        out.append(f"| {r['regime']} | {r['seed']} | {c['failed']}/{c['cases']} ({c['pending']}) "
                   f"| {rate} | {lo:.1f}-{hi:.1f}; {canary}; {d['q1']:.1f}-{d['q3']:.1f} "
                   f"| {pred(r['prior'])} | {pred(r['rate only'])} | {pred(r['measured'])} "
                   f"| {t['effect_hours']:+.1f} ({t['effect_pct']:+.1f}) "
                   f"| {r['seconds_wall']:.0f} / {r['seconds_cpu']:.0f} |")
    return "\n".join(out)


def section(table: str, rows: str, args: argparse.Namespace, seconds: float,
            regimes: list[str]) -> str:
    """The results document."""
    joined = ",".join(regimes)
    notes = "\n".join(f"- `{r}`: {REGIMES[r].summary}" for r in regimes if r in REGIMES)
    return f"""# A canary measures the bot's failure rate; the prediction of the rollout uses it

Reproduce: `.venv/bin/python benchmarks/bench_canary.py --seeds {args.seeds} --regimes {joined} \
--write` ({seconds / 60:.1f} min on 2 shared cores). Seeds {args.first_seed}..\
{args.first_seed + args.seeds - 1} in each regime. {args.note}

Issue 9: how often a new bot fails on a segment is not in the log, so the Planner predicts an
automation with a declared prior range (0-50 %); a canary then measures it. Here the sandbox
runs {HISTORY_DAYS:g} days of history, then an auto-resolve rule on `{FIELD}={VALUE}` for
{CANARY_SHARE:.0%} of matching tickets for {OBSERVE_DAYS:g} days.
`closedloop.tools.measure.canary.automation_failures` reads the events since the change: a
treated ticket failed when people did the work the bot took over (the activities of the twin
pool doing Triage), was handled when it closed without that; tickets begun in the last 24 h
are not judged. Its 95 % (Wilson) interval is compared with the regime's hidden failure rate.

Then the full rollout (the rule at 100 %) is predicted from the history log as the Planner
does it (`predict` over its {Settings().prediction_days:g}-day horizon, {PLAN_BOOTSTRAP}
bootstrap refits shared by every prediction): with the declared prior ranges ("prior"), with
the canary's failure rate only ("rate only": its interval replaces the prior when it judged at
least 20 tickets; how long a failure goes unnoticed still comes from the history log's rework
gaps), and as the loop does after a canary ("measured": the rate and the interquartile range
of how long its failures went unnoticed, from at least 10 failures;
`automation_assumptions(..., measured=FailureCounts(...))`). Truth: the counterfactual harness's
total effect of the rule at 100 % against no change on mean cycle time of the tickets started
in the {OBSERVE_DAYS:g} observed days, followed {DRAIN_DAYS:g} days more (same seed). "Act"
is the Planner's bar (`closedloop.tools.act.ranking.shortfall`: the p90 of the predicted change
at least {Settings().min_predicted_improvement_pct:g} % shorter); acting is right when the
true effect is at least that much shorter.

The canary's notice delay (the silence before a failed ticket came back to people, read without
any sandbox names) is checked against the hours from the bot's step to the customer's reopen,
read with the sandbox's activity names (benchmark only).

{notes}

{table}

Per run ("act": the prediction clears the bar; s: wall / CPU seconds of the run):

{rows}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per regime (default 5)")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--regimes", default=",".join(BENCH_REGIMES),
                        help=f"comma-separated sandbox regimes (known: {', '.join(REGIMES)})")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/canary.*")
    parser.add_argument("--note", default="", help="a line for the results (e.g. the commit)")
    args = parser.parse_args()
    regimes = [r.strip() for r in args.regimes.split(",") if r.strip()]
    unknown = [r for r in regimes if r not in REGIMES]
    if unknown:
        parser.error(f"unknown regime(s) {', '.join(unknown)}; known: {', '.join(REGIMES)}")
    started = time.perf_counter()
    runs = []
    for regime in regimes:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            runs.append(one_run(regime, seed))
            r = runs[-1]
            print(f"{regime} seed {seed}: canary {r['canary']['failed']}/{r['canary']['cases']}, "
                  f"prior {r['prior']['delta_hours']:+.1f} h, rate only "
                  f"{r['rate only']['delta_hours']:+.1f} h, measured "
                  f"{r['measured']['delta_hours']:+.1f} h, true {r['truth']['effect_hours']:+.1f} h "
                  f"({r['seconds_wall']:.1f} s)", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - started
    table = summarise(runs)
    print(table)
    print(f"\n{seconds:.0f} s wall", file=sys.stderr)
    if args.write:
        results = ROOT / "results"
        (results / "canary.json").write_text(json.dumps(runs, separators=(",", ":")),
                                             encoding="utf-8")
        (results / "canary.md").write_text(section(table, detail(runs), args, seconds, regimes),
                                           encoding="utf-8")


if __name__ == "__main__":
    main()
