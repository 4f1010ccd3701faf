"""Fidelity of the process twin vs the Simod/Prosimos baseline on BPIC 2012 W.

Fit the twin on ``BPIC_2012_W_train.csv.gz``, simulate as many cases as the
test log has (2,976) from its first start (2012-01-07 09:04:12), and compare
each simulated log with ``BPIC_2012_W_test.csv.gz`` using the
``log-distance-measures`` package with 1-hour bins: 3-gram distance (3GD),
cycle-time distribution distance (CTD, hours), absolute / circadian /
relative event distribution distances (AED, CED, RED) and case arrival rate
distance (CAR). The baseline, simulated in the same run, is the
Simod-discovered Prosimos model shipped beside the logs (``BPIC_2012_W.bpmn``
+ ``.json``) run by ``prosimos`` for the same cases and start. Means and
standard deviations over the replications.

Needs the ``bench`` extra (prosimos and log-distance-measures pin pandas < 3,
so run it in its own environment)::

    python -m venv /tmp/twin-bench && /tmp/twin-bench/bin/pip install -e '.[bench]'
    /tmp/twin-bench/bin/python benchmarks/bench_twin_fidelity.py --replications 10
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from closedloop.tools.log.ingest import ColumnMapping, load_event_log
from closedloop.tools.twin import ProcessTwin, fit_twin, simulate_log

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "simulation"
MAPPING = ColumnMapping(
    case="case_id", activity="activity", timestamp="end_time", start_timestamp="start_time",
    resource="resource",
)  # fmt: skip
METRICS = ["3GD", "CTD", "AED", "CED", "RED", "CAR"]


def read_log(path: Path) -> pd.DataFrame:
    """A CSV log with case_id, activity, start_time, end_time, resource (UTC)."""
    log = pd.read_csv(path, usecols=["case_id", "activity", "start_time", "end_time", "resource"])
    for col in ("start_time", "end_time"):
        log[col] = pd.to_datetime(log[col], utc=True, format="ISO8601")
    log["case_id"] = log["case_id"].astype(str)
    return log


def distances(test: pd.DataFrame, simulated: pd.DataFrame) -> dict[str, float]:
    """The six log-distance measures (1-hour bins) between the test and a simulated log."""
    from log_distance_measures.absolute_event_distribution import (
        absolute_event_distribution_distance,
    )
    from log_distance_measures.case_arrival_distribution import case_arrival_distribution_distance
    from log_distance_measures.circadian_event_distribution import (
        circadian_event_distribution_distance,
    )
    from log_distance_measures.config import EventLogIDs
    from log_distance_measures.cycle_time_distribution import cycle_time_distribution_distance
    from log_distance_measures.n_gram_distribution import n_gram_distribution_distance
    from log_distance_measures.relative_event_distribution import (
        relative_event_distribution_distance,
    )

    ids = EventLogIDs(
        case="case_id", activity="activity", start_time="start_time", end_time="end_time",
        resource="resource",
    )  # fmt: skip
    return {
        "3GD": n_gram_distribution_distance(test, ids, simulated, ids, n=3),
        "CTD": cycle_time_distribution_distance(
            test, ids, simulated, ids, bin_size=timedelta(hours=1)
        ),
        "AED": absolute_event_distribution_distance(test, ids, simulated, ids),
        "CED": circadian_event_distribution_distance(test, ids, simulated, ids),
        "RED": relative_event_distribution_distance(test, ids, simulated, ids),
        "CAR": case_arrival_distribution_distance(test, ids, simulated, ids),
    }


def twin_logs(twin: ProcessTwin, cases: int, start, replications: int) -> tuple[list, float]:
    logs, elapsed = [], 0.0
    for r in range(replications):
        t = time.perf_counter()
        logs.append(simulate_log(twin, cases, start.to_pydatetime(), seed=r))
        elapsed += time.perf_counter() - t
    return logs, elapsed


def prosimos_logs(cases: int, start, replications: int) -> tuple[list, float]:
    from prosimos.simulation_engine import run_simulation

    logs, elapsed = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(replications):
            random.seed(r)
            np.random.seed(r)
            out = Path(tmp) / f"log{r}.csv"
            t = time.perf_counter()
            run_simulation(
                str(DATA / "BPIC_2012_W.bpmn"), str(DATA / "BPIC_2012_W.json"), cases,
                str(Path(tmp) / "stats.csv"), str(out), start.isoformat(),
            )  # fmt: skip
            elapsed += time.perf_counter() - t
            log = read_log(out)
            logs.append(log)
    return logs, elapsed


def summarise(rows: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    return {
        k: (statistics.mean(r[k] for r in rows),
            statistics.stdev(r[k] for r in rows) if len(rows) > 1 else 0.0)
        for k in METRICS
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=10)
    parser.add_argument("--pooling", default="auto", choices=["auto", "activity", "profiles"])
    parser.add_argument("--skip-prosimos", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    test = read_log(DATA / "BPIC_2012_W_test.csv.gz")
    cases, start = test["case_id"].nunique(), test["start_time"].min()
    t = time.perf_counter()
    train = load_event_log(DATA / "BPIC_2012_W_train.csv.gz", MAPPING)
    twin = fit_twin(train, seed=0, pooling=args.pooling)
    fit_s = time.perf_counter() - t
    print(
        f"twin fitted in {fit_s:.1f} s (incl. reading the CSV); simulating {cases} cases from {start}"
    )
    results = {"cases": cases, "start": str(start), "fit_seconds": fit_s, "engines": {}}
    engines = {"closedloop twin": lambda: twin_logs(twin, cases, start, args.replications)}
    if not args.skip_prosimos:
        engines["Simod model + Prosimos"] = lambda: prosimos_logs(cases, start, args.replications)
    for name, simulate_all in engines.items():
        logs, elapsed = simulate_all()
        rows = [distances(test, log) for log in logs]
        summary = summarise(rows)
        speed = cases * len(logs) / elapsed
        results["engines"][name] = {
            "metrics": summary, "cases_per_second": speed,
            "events_per_case": float(np.mean([len(g) / cases for g in logs])),
        }  # fmt: skip
        shown = ", ".join(f"{k} {m:.3f} ± {s:.3f}" for k, (m, s) in summary.items())
        print(f"{name}: {shown}; {speed:,.0f} cases/s with log output")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
