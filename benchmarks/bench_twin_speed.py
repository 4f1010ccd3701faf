"""Speed of the process twin: discovery time and simulated cases per second per core.

On BPIC 2012 W (the shared simulation split): time to fit the twin on
``BPIC_2012_W_train.csv.gz`` (target <= 60 s), then cases simulated per
second of CPU time (``time.process_time``, so other load on the machine does
not count against us) by

- the twin's engine writing an event log (``simulate_log``) and computing
  KPIs only (``simulate`` as-is), and
- Prosimos on the Simod-discovered model of the same process
  (``BPIC_2012_W.bpmn`` + ``.json``), with and without its event log,

for the test log's 2,976 cases from its first start, in the same run.
Target: >= 10,000 cases/s per core and >= 6x Prosimos. Needs the ``bench``
extra (see bench_twin_fidelity.py)::

    /tmp/twin-bench/bin/python benchmarks/bench_twin_speed.py --replications 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_twin_fidelity import DATA, MAPPING, read_log

from closedloop.tools.log.ingest import load_event_log
from closedloop.tools.twin import AsIs, fit_twin, simulate, simulate_log

CASES = 2976


def cpu_rate(run, replications: int) -> float:
    """Cases per CPU second over ``replications`` calls of ``run(seed)``."""
    spent = 0.0
    for r in range(replications):
        t = time.process_time()
        run(r)
        spent += time.process_time() - t
    return CASES * replications / spent


def prosimos_run(seed: int, start: str, with_log: bool) -> None:
    from prosimos.simulation_engine import run_simulation

    random.seed(seed)
    np.random.seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.csv") if with_log else None
        run_simulation(
            str(DATA / "BPIC_2012_W.bpmn"), str(DATA / "BPIC_2012_W.json"), CASES,
            os.path.join(tmp, "stats.csv"), log, start,
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    start = read_log(DATA / "BPIC_2012_W_test.csv.gz")["start_time"].min()

    t_wall, t_cpu = time.perf_counter(), time.process_time()
    frame = load_event_log(DATA / "BPIC_2012_W_train.csv.gz", MAPPING)
    read_s = time.perf_counter() - t_wall
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    twin = fit_twin(frame, seed=0)
    fit_wall, fit_cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    print(
        f"discovery on BPIC_2012_W_train ({len(frame)} activity instances): fit {fit_wall:.1f} s "
        f"wall, {fit_cpu:.1f} s CPU (+ {read_s:.1f} s reading the CSV)"
    )
    when = start.to_pydatetime()
    rates = {
        "twin, event log (simulate_log)": cpu_rate(
            lambda r: simulate_log(twin, CASES, when, seed=r), args.replications
        ),
        "twin, KPIs only (simulate as-is)": cpu_rate(
            lambda r: simulate(twin, AsIs(), cases=CASES, replications=1, seed=r),
            args.replications,
        ),
        "Prosimos, event log": cpu_rate(
            lambda r: prosimos_run(r, start.isoformat(), True), args.replications
        ),
        "Prosimos, statistics only": cpu_rate(
            lambda r: prosimos_run(r, start.isoformat(), False), args.replications
        ),
    }
    for name, rate in rates.items():
        print(f"{name}: {rate:,.0f} cases per CPU second")
    speedup = rates["twin, event log (simulate_log)"] / rates["Prosimos, event log"]
    speedup_kpi = rates["twin, KPIs only (simulate as-is)"] / rates["Prosimos, statistics only"]
    print(f"speed-up over Prosimos: {speedup:.1f}x with event logs, {speedup_kpi:.1f}x without")
    if args.json:
        numbers = {
            "fit_wall_s": fit_wall, "fit_cpu_s": fit_cpu, "read_s": read_s,
            "cases_per_cpu_second": rates, "speedup_log": speedup, "speedup_kpi": speedup_kpi,
        }  # fmt: skip
        args.json.write_text(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
