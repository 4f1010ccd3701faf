"""Time to a first answer on small logs: ``closedloop mine`` against plain pm4py, same run.

Both sides do the same job: read the log, discover a Petri net, measure token-replay
fitness and precision of it on the log. closedloop's ``mine`` does more (statistics,
bottlenecks, rework, root causes); pm4py does only the three steps with its defaults
(``read_xes`` / ``read_csv`` + ``format_dataframe``, ``discover_petri_net_inductive``,
``fitness_token_based_replay``, ``precision_token_based_replay``).

Measured three ways, each side alternating with the other ``--repeat`` times:
- CLI: ``closedloop mine LOG`` as a subprocess against ``python -c <pm4py job>``
  as a subprocess (interpreter start and imports included);
- cold in process: a fresh interpreter timing from before its first import to the
  answer (``perf_counter`` and ``process_time``);
- warm in process: the job again in the same interpreter (imports already paid).
CPU seconds are user + system of the child (``RUSAGE_CHILDREN``) or ``process_time``.
Medians are reported; the machine has 2 shared cores, so wall seconds are noisy and the
CPU columns are the comparison to read.

    .venv/bin/python benchmarks/bench_small_logs.py [--repeat 5] [--out benchmarks/results/small_logs.md]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOGS = [
    ROOT / "closedloop" / "data" / "running-example.xes",
    ROOT / "closedloop" / "data" / "running-example.csv",
    ROOT / "closedloop" / "data" / "03_repairExample.xes.gz",
]
PYTHON = sys.executable
CLI = str(Path(PYTHON).with_name("closedloop"))

# The job of each side, timed from before the first import; prints {"wall", "cpu"} twice
# (cold, then warm in the same interpreter), once with the argument "once".
TIMING = """
import time, json, sys, os, warnings
t0, c0 = time.perf_counter(), time.process_time()
{job}
job(sys.argv[1])
print(json.dumps({{"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}}))
if sys.argv[2:] == ["once"]:  # the CLI comparison: one answer, like `closedloop mine`
    sys.exit(0)
t0, c0 = time.perf_counter(), time.process_time()
job(sys.argv[1])
print(json.dumps({{"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}}))
"""

PM4PY_JOB = TIMING.format(
    job="""
os.environ["PM4PY_SHOW_PROGRESS_BAR"] = "False"
warnings.filterwarnings("ignore")
import pm4py
def job(path):
    if path.endswith(".csv"):
        import pandas as pd
        df = pd.read_csv(path, sep=None, engine="python")
        case = next(c for c in df.columns if c.lower() in ("case_id", "case", "case:concept:name"))
        act = next(c for c in df.columns if c.lower() in ("activity", "concept:name"))
        ts = next(c for c in df.columns if c.lower() in ("timestamp", "time:timestamp"))
        log = pm4py.format_dataframe(df, case_id=case, activity_key=act, timestamp_key=ts)
    else:
        log = pm4py.read_xes(path)
    net, im, fm = pm4py.discover_petri_net_inductive(log)
    pm4py.fitness_token_based_replay(log, net, im, fm)
    pm4py.precision_token_based_replay(log, net, im, fm)"""
)

OURS_JOB = TIMING.format(
    job="""
from closedloop.tools.log import load_event_log
from closedloop.tools.mining import diagnose
def job(path):
    diagnose(load_event_log(path))"""
)


NOTES = """

Where the time went, and what changed: `import pm4py` costs about 1.2 CPU s here, because
pm4py's package `__init__` files import nearly all of pm4py (readers, matplotlib and
graphviz visualisation, polars statistics, scipy's LP solver). `closedloop mine` now
imports only the pm4py modules it runs (`closedloop/tools/log/pm4pylazy.py`: pm4py's
packages are registered without running their `__init__`, two modules that only
alignments and log conversion use are loaded on first use; the first top-level pm4py
name anyone asks for runs pm4py's `__init__` as usual). Same answers, tested in
tests/test_pm4pylazy.py. Before (same benchmark, previous session): running example
through the CLI 2.19 CPU s against pm4py's 1.76 (0.80x). The pm4py CLI job now answers
once (before it also ran the warm repetition). What is left on our side: interpreter,
pandas, pydantic, polars (rustxes returns a polars frame) and networkx (pm4py's
inductive miner); on the repair log the root-cause tree (scikit-learn) and the
selection's replay make up the rest.
"""


def child(cmd: list[str]) -> tuple[float, float, str]:
    """Wall and CPU seconds (user + system) of one subprocess, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    env = {**os.environ, "PM4PY_SHOW_PROGRESS_BAR": "False", "TQDM_DISABLE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def measure(log: Path, repeat: int) -> dict[str, dict[str, list[float]]]:
    """Every measurement of one log, both sides alternating."""
    out: dict[str, dict[str, list[float]]] = {}

    def add(key: str, wall: float, cpu: float) -> None:
        out.setdefault(key, {"wall": [], "cpu": []})
        out[key]["wall"].append(wall)
        out[key]["cpu"].append(cpu)

    for _ in range(repeat):
        wall, cpu, _text = child([CLI, "mine", str(log)])
        add("cli ours", wall, cpu)
        wall, cpu, _text = child([PYTHON, "-c", PM4PY_JOB, str(log), "once"])
        add("cli pm4py", wall, cpu)
        for side, job in (("ours", OURS_JOB), ("pm4py", PM4PY_JOB)):
            _w, _c, text = child([PYTHON, "-c", job, str(log)])
            cold, warm = (json.loads(line) for line in text.strip().splitlines()[-2:])
            add(f"cold {side}", cold["wall"], cold["cpu"])
            add(f"warm {side}", warm["wall"], warm["cpu"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/small_logs.md")
    args = parser.parse_args()
    rows = []
    load_before = os.getloadavg()
    for log in LOGS:
        data = measure(log, args.repeat)
        med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in data.items()}
        for how in ("cli", "cold", "warm"):
            ours, base = med[f"{how} ours"], med[f"{how} pm4py"]
            rows.append(
                f"| {log.name} | {how} | {ours['cpu']:.2f} | {base['cpu']:.2f} "
                f"| {base['cpu'] / ours['cpu']:.2f}x | {ours['wall']:.2f} | {base['wall']:.2f} "
                f"| {base['wall'] / ours['wall']:.2f}x |"
            )
            print(rows[-1], flush=True)
    load_after = os.getloadavg()[0]
    load_before = load_before[0]
    text = (
        f"""# Small logs: time to a first answer (bench_small_logs)

Reproduce: `.venv/bin/python benchmarks/bench_small_logs.py --repeat {args.repeat}`
(medians of {args.repeat} alternating runs per row; 2 shared cores, so read the CPU
columns). Same job on both sides: read, discover a Petri net, token-replay fitness and
precision on the log; closedloop's `mine` also computes statistics, bottlenecks, rework
and root causes. `cli`: `closedloop mine LOG` against `python -c <pm4py job>`, each a
subprocess (interpreter start and imports included, CPU = user + system of the child).
`cold`: a fresh interpreter timed from before its first import. `warm`: the job again in
the same interpreter. Speed-up > 1x: closedloop is faster. Load average (1 min) of the
machine before / after: {load_before:.1f} / {load_after:.1f} (2 cores: above 2, wall
seconds include waiting for a core).

| log | how | ours CPU s | pm4py CPU s | speed-up (CPU) | ours wall s | pm4py wall s | speed-up (wall) |
|---|---|---:|---:|---:|---:|---:|---:|
"""
        + "\n".join(rows)
        + NOTES
    )
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
