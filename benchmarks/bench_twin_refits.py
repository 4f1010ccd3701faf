"""What the twin's bootstrap costs: refits that inherit the parent's delay readings against
refits that choose them again (three replays of the log each), in the same run.

Prediction intervals refit the twin on resampled cases (``bootstrap_twins``). Since the twin
chooses, per activity, how to read extraneous delays by replaying the log's own arrivals,
a refit that chose again would pay those replays each time. Refits inherit the parent's
choice instead; this script measures both on the shared logs (skipped where absent)::

    .venv/bin/python benchmarks/bench_twin_refits.py --refits 5 --write
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from closedloop.tools.log.ingest import ColumnMapping, load_event_log
from closedloop.tools.twin import fit_twin
from closedloop.tools.twin.uncertainty import bootstrap_twins, resample_cases

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
W_MAPPING = ColumnMapping(case="case_id", activity="activity", timestamp="end_time",
                          start_timestamp="start_time", resource="resource")  # fmt: skip
LOGS = {
    "BPIC_2012_W_train": (SHARED / "simulation" / "BPIC_2012_W_train.csv.gz", W_MAPPING),
    "BPI 2012 (full)": (SHARED / "logs" / "bpic2012.xes.gz", None),
}


def timed(job):
    """``job()``'s result, wall seconds and CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = job()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def measure(name: str, frame, refits: int) -> dict:
    """Fit once, then ``refits`` refits that inherit and ``refits`` that choose again."""
    twin, fit_wall, fit_cpu = timed(lambda: fit_twin(frame, seed=0))
    _, inh_wall, inh_cpu = timed(lambda: bootstrap_twins(frame, twin, refits, seed=0))
    rng = np.random.default_rng([0, 99])
    again, ch_wall, ch_cpu = timed(
        lambda: [fit_twin(resample_cases(frame, rng), seed=0) for _ in range(refits)]
    )
    same = sum(r.delay_readings == twin.delay_readings for r in again)
    return {"log": name, "events": len(frame), "readings": twin.delay_readings,
            "fit": (fit_wall, fit_cpu), "inherit": (inh_wall, inh_cpu),
            "choose": (ch_wall, ch_cpu), "same_choice": same}  # fmt: skip


def render(rows: list[dict], refits: int) -> str:
    lines = [
        "## Twin bootstrap cost: refits inherit the delay readings",
        "",
        (
            f"`benchmarks/bench_twin_refits.py --refits {refits}`: fit the twin once, then "
            f"{refits} bootstrap refits (resampled cases) that inherit the parent's choice of how "
            "to read each activity's extraneous delay, against the same number of refits that "
            "choose again (three replays of the log's own arrivals each), in the same run. "
            "Seconds are wall / CPU."
        ),
        "",
        (
            "| log | events | delays read on the wall clock / to readiness | fit | refits inheriting "
            "| refits choosing again | CPU saved | refits that chose as the parent |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        readings = ", ".join(f"{a}: {n}" for a, n in r["readings"].items()) or "none"
        saved = 1 - r["inherit"][1] / r["choose"][1]
        lines.append(
            f"| {r['log']} | {r['events']:,} | {readings} | {r['fit'][0]:.1f} / {r['fit'][1]:.1f} "
            f"| {r['inherit'][0]:.1f} / {r['inherit'][1]:.1f} | {r['choose'][0]:.1f} / "
            f"{r['choose'][1]:.1f} | {saved:.0%} | {r['same_choice']} of {refits} |"
        )
    lines += [
        "",
        (
            "The bootstrap's intervals are conditional on the parent's choice of delay reading; the "
            "last column shows how often a refit choosing again would have made the same choice."
        ),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refits", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/")
    args = parser.parse_args()
    rows = []
    for name, (path, mapping) in LOGS.items():
        if path.exists():
            frame = load_event_log(path, mapping=mapping) if mapping else load_event_log(path)
        else:
            print(f"skipped {name}: {path} is absent (../shared/data holds it)")
            continue
        rows.append(measure(name, frame, args.refits))
        print(rows[-1])
    text = render(rows, args.refits)
    print(text)
    if args.write:
        (ROOT / "benchmarks" / "results" / "twin_refits.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
