"""Staffing what-if of the twin against the sandbox's own truth (issue 9, item 1).

For each seed the bundled helpdesk sandbox runs twice with that seed on
loopback: as-is, and with one more first-line agent from the start (``PUT
/config/staffing/<queue>``). The twin is fitted on the as-is run's first
``--weeks`` weeks of events only (it sees nothing but the event log); its
prediction is ``simulate(AddCapacity(+1))`` on the pool that does the
first activity handled by the first-line queue (``twin.pool_of``). The
truth is the change in mean cycle time (Register to last event) of the tickets
registered in those weeks, measured after ``--drain`` more weeks so that almost
all of them are closed, between the two sandbox runs.

    .venv/bin/python benchmarks/bench_twin_pools.py --seeds 7 11 23
    .venv/bin/python benchmarks/bench_twin_pools.py --pooling activity   # the old default
    .venv/bin/python benchmarks/bench_twin_pools.py --similarity 1e-9    # connected components
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from closedloop.sandbox.server import SandboxServer
from closedloop.tools.log import frame_from_records
from closedloop.tools.log.columns import ACTIVITY, CASE, COMPLETE, START
from closedloop.tools.twin import AddCapacity, fit_twin, pools, simulate

FIRST_LINE_ACTIVITY = "Triage"  # the benchmark's choice of what "first line" means
HOUR = pd.Timedelta(hours=1)


def _events(c: httpx.Client) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        page = c.get("/events", params={"after_seq": after, "limit": 10000}).json()
        out.extend(page["events"])
        if page["next_after_seq"] is None:
            return out
        after = page["next_after_seq"]


def sandbox_frame(seed: int, hours: float, extra_first_line: int = 0) -> pd.DataFrame:
    """Events of a sandbox run of ``hours`` (optionally with more first-line agents)."""
    with SandboxServer(seed=seed) as server, httpx.Client(base_url=server.url, timeout=120) as c:
        if extra_first_line:
            staffing = c.get("/config").json()["staffing"]
            queue = "L1" if "L1" in staffing else min(staffing)
            r = c.put(
                f"/config/staffing/{queue}",
                json={"agents": staffing[queue] + extra_first_line},
                headers={"Idempotency-Key": f"bench-{seed}"},
            )
            r.raise_for_status()
        c.post("/clock/advance", json={"hours": hours}).raise_for_status()
        return frame_from_records(_events(c))


def window_cycle_hours(frame: pd.DataFrame, until: pd.Timestamp) -> tuple[float, float]:
    """Mean cycle time of cases registered before ``until`` and the share of them closed."""
    by_case = frame.groupby(CASE)
    first = by_case[START].min()
    last = by_case[COMPLETE].max()
    closed = frame[frame[ACTIVITY] == "Close"].groupby(CASE).size().index
    cases = first.index[first < until]
    cycle = (last[cases] - first[cases]) / HOUR
    return float(cycle.mean()), float(cases.isin(closed).mean())


def one_seed(
    seed: int, weeks: float, drain: float, pooling: str | None, reps: int
) -> dict[str, Any]:
    """Predicted vs true effect of one more first-line agent for one sandbox seed."""
    full_as_is = sandbox_frame(seed, (weeks + drain) * 168)
    full_more = sandbox_frame(seed, (weeks + drain) * 168, extra_first_line=1)
    t0 = full_as_is[START].min()
    until = t0 + pd.Timedelta(weeks=weeks)
    log = full_as_is[full_as_is[COMPLETE] < until]  # what an observer has after `weeks`
    t_fit = time.perf_counter()
    twin = fit_twin(log, seed=0) if pooling is None else fit_twin(log, seed=0, pooling=pooling)
    fit_s = time.perf_counter() - t_fit
    pool = twin.pool_of(FIRST_LINE_ACTIVITY)
    result = simulate(
        twin,
        AddCapacity(activity_or_pool=pool, extra=1),
        cases=twin.n_cases,
        replications=reps,
        seed=0,
    )
    true_before, closed_before = window_cycle_hours(full_as_is, until)
    true_after, closed_after = window_cycle_hours(full_more, until)
    return {
        "seed": seed,
        "pooling": twin.pooling,
        "pool": pool,
        "pool_capacity": twin.pools[pool].capacity,
        "pool_members": twin.pools[pool].resource_names,
        "pool_activities": twin.pools[pool].activities,
        "pool_utilisation": round(twin.pools[pool].utilisation, 3),
        "pools": {p: pm.capacity for p, pm in twin.pools.items()},
        "fit_seconds": round(fit_s, 2),
        "observed_log_mean_h": twin.observed.mean_cycle_time_hours,
        "sim_as_is_mean_h": result.as_is.cycle_time_mean_hours.mean,
        "predicted_pct": result.predicted_delta_pct.mean,
        "predicted_pct_ci": [result.predicted_delta_pct.ci_low, result.predicted_delta_pct.ci_high],
        "true_as_is_mean_h": true_before,
        "true_what_if_mean_h": true_after,
        "true_pct": 100 * (true_after - true_before) / true_before,
        "closed_share": [closed_before, closed_after],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 23])
    parser.add_argument("--weeks", type=float, default=3.0)
    parser.add_argument("--drain", type=float, default=3.0)
    parser.add_argument("--pooling", default=None, help="default: fit_twin's default")
    parser.add_argument("--replications", type=int, default=5)
    parser.add_argument(
        "--similarity",
        type=float,
        default=None,
        help="override pools.PROFILE_SIMILARITY (1e-9 = connected components)",
    )
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    if args.similarity is not None:
        pools.PROFILE_SIMILARITY = args.similarity
    rows = []
    for seed in args.seeds:
        row = one_seed(seed, args.weeks, args.drain, args.pooling, args.replications)
        rows.append(row)
        print(
            f"seed {seed} ({row['pooling']}): pool {row['pool']!r} x{row['pool_capacity']} "
            f"(util {row['pool_utilisation']:.0%}, members {row['pool_members']}); "
            f"pools {row['pools']}; as-is mean: log {row['observed_log_mean_h']:.1f} h, "
            f"twin {row['sim_as_is_mean_h']:.1f} h, sandbox {row['true_as_is_mean_h']:.1f} h; "
            f"+1 first-line: predicted {row['predicted_pct']:+.1f} % vs true {row['true_pct']:+.1f} %"
        )
    pred = [r["predicted_pct"] for r in rows]
    true = [r["true_pct"] for r in rows]
    print(
        f"mean predicted {statistics.mean(pred):+.1f} %, mean true {statistics.mean(true):+.1f} %"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
