"""Backtest of the process twin: predict the mean cycle time of the next 20 % of cases.

For each bundled log (03_repairExample, helpdesk): the cut is the 80 % quantile
of case start times; the twin is fitted on the cases that started before it
(all their events), then ``simulate_log`` runs as many cases as started after
the cut, from the first of those starts, for ``--replications`` seeds. The
prediction is the mean simulated cycle time (first start to last end per
case); the truth is the observed mean cycle time of the later cases. Target:
within 15 %.

Then the twin's own backtest (:func:`closedloop.tools.twin.backtest_twin`):
cut at 80 % of the time span, fit on what was seen by then (open cases
censored, kept as the backlog), simulate forward to the log's end, with a
bootstrap over cases; error, 95 % interval coverage and the training-mean
baseline. The same on the order-to-cash sandbox's log after 21 days, read through its
connector as the loop reads it (``--o2c-seeds``; most orders are still unpaid at the cut).

    .venv/bin/python benchmarks/bench_twin_backtest.py --replications 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import pandas as pd

from closedloop.tools.log.ingest import load_event_log
from closedloop.tools.twin import backtest_twin, fit_twin, simulate_log

DATA = Path(__file__).resolve().parents[1] / "closedloop" / "data"
LOGS = ["03_repairExample.xes.gz", "helpdesk.xes.gz"]
CASE, START, END = "case:concept:name", "start_timestamp", "time:timestamp"
TARGET = 0.15


def split(frame: pd.DataFrame, share: float = 0.8) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cases started before / after the ``share`` quantile of case start times."""
    starts = frame.groupby(CASE)[START].min()
    cut = starts.quantile(share)
    early = starts.index[starts < cut]
    return frame[frame[CASE].isin(early)], frame[~frame[CASE].isin(early)]


def mean_cycle_hours(frame: pd.DataFrame, case: str, start: str, end: str) -> float:
    by_case = frame.groupby(case)
    return float(((by_case[end].max() - by_case[start].min()).dt.total_seconds() / 3600).mean())


def backtest(name: str, replications: int, pooling: str) -> dict:
    frame = load_event_log(DATA / name)
    train, test = split(frame)
    t = time.perf_counter()
    twin = fit_twin(train, seed=0, pooling=pooling)
    fit_s = time.perf_counter() - t
    cases = test[CASE].nunique()
    first = test[START].min().to_pydatetime()
    predictions = [
        mean_cycle_hours(
            simulate_log(twin, cases, first, seed=r), "case_id", "start_time", "end_time"
        )
        for r in range(replications)
    ]
    observed = mean_cycle_hours(test, CASE, START, END)
    predicted = statistics.mean(predictions)
    return {
        "log": name,
        "pooling": twin.pooling,
        "train_cases": twin.n_cases,
        "test_cases": cases,
        "fit_seconds": round(fit_s, 2),
        "observed_train_mean_hours": twin.observed.mean_cycle_time_hours,
        "observed_test_mean_hours": observed,
        "predicted_mean_hours": predicted,
        "predicted_sd_hours": statistics.stdev(predictions) if len(predictions) > 1 else 0.0,
        "error_pct": 100 * (predicted - observed) / observed,
    }


def o2c_frame(seed: int, days: float = 21) -> pd.DataFrame:
    """The o2c sandbox's events after ``days``, read through its connector (as the loop does)."""
    from closedloop.demo import advance_clock
    from closedloop.sandbox.server import SandboxServer
    from closedloop.tools.act import connector_document, fetch_events, load_manifest
    from closedloop.tools.act.system import System
    from closedloop.tools.log import frame_from_records

    with SandboxServer(seed=seed, domain="o2c") as server:
        advance_clock(server.url, days)
        system = System.open(connector_document(load_manifest("o2c"), server.url, {}), server.url, {})
        try:
            return frame_from_records(fetch_events(system).rows)
        finally:
            system.close()


def report(name: str, bt) -> str:
    """One line for a backtest_twin result."""
    p = bt.predicted
    return (
        f"{name} backtest_twin (time cut {bt.cut}): {bt.train_cases} / {bt.test_cases} cases, "
        f"{bt.open_at_cut} open at the cut; realised {bt.realised_hours:.3f} h, predicted "
        f"{p.mean:.3f} h [95 %: {p.low95:.3f}, {p.high95:.3f}]: error {bt.error_pct:+.1f} %, "
        f"{'covered' if bt.covered else 'not covered'}; training mean {bt.baseline_hours:.3f} "
        f"h: error {bt.baseline_error_pct:+.1f} % ({bt.seconds:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=10)
    parser.add_argument("--bootstrap", type=int, default=5, help="refits for backtest_twin")
    parser.add_argument("--o2c-seeds", default="3,7,1", help="o2c sandbox seeds ('' for none)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    rows = []
    for name in LOGS:
        for pooling in ("activity", "profiles"):
            row = backtest(name, args.replications, pooling)
            rows.append(row)
            ok = "ok" if abs(row["error_pct"]) <= 100 * TARGET else "MISSED"
            print(
                f"{name} ({row['pooling']}): train {row['train_cases']} / test "
                f"{row['test_cases']} cases; observed {row['observed_test_mean_hours']:.3f} h "
                f"(train {row['observed_train_mean_hours']:.3f} h), predicted "
                f"{row['predicted_mean_hours']:.3f} ± {row['predicted_sd_hours']:.3f} h: "
                f"error {row['error_pct']:+.1f} % [{ok}]"
            )
    for name in LOGS:
        bt = backtest_twin(load_event_log(DATA / name), bootstrap=args.bootstrap)
        rows.append({"log": name, "backtest_twin": bt.model_dump()})
        print(report(name, bt))
    for seed in [int(x) for x in args.o2c_seeds.split(",") if x.strip()]:
        bt = backtest_twin(o2c_frame(seed), bootstrap=args.bootstrap)
        rows.append({"log": f"o2c seed {seed}", "backtest_twin": bt.model_dump()})
        print(report(f"o2c sandbox (seed {seed}, 21 days)", bt))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
