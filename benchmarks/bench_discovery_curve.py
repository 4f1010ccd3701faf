"""Discovery quality on the synthetic logs: closedloop's default discovery against plain pm4py
(inductive miner, its defaults) in the same run, judged two ways:

- on the log: token-replay fitness and ETConformance precision (closedloop's replay: pm4py's
  values, with traces the model provably accepts counted as fitting);
- against the true model that generated the log (``language.compare_models``: each model's
  random traces replayed on the other).

    .venv/bin/python benchmarks/bench_discovery_curve.py [a12 a22 ...]   # needs ../shared/data/synthetic

Prints one Markdown table row per log (all four models without arguments).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")
warnings.filterwarnings("ignore")

import pm4py

from closedloop.tools.mining.conformance import replay_conformance
from closedloop.tools.mining.discovery import discover_petri_net, petri_net
from closedloop.tools.mining.language import compare_models, frame_from_traces, read_traces

SYNTHETIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthetic"
TRACES = 2000  # played out of each model for the comparison with the true model


def main() -> None:
    if not SYNTHETIC.is_dir():
        sys.exit(f"{SYNTHETIC} not found: the synthetic logs live in ../shared/data")
    print(
        "| log | closedloop picks | s | fitness | precision | F1 on log | vs true: recall "
        "| precision | F1 | pm4py IM: F1 on log | vs true F1 | true model: F1 on log |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for model in sys.argv[1:] or ("a12", "a22", "a32", "a42"):
        truth = pm4py.read_pnml(str(SYNTHETIC / model / f"{model}.pnml"))
        for noise in ("n00", "n05", "n10", "n20", "n50"):
            frame = frame_from_traces(read_traces(SYNTHETIC / model / f"{model}f0{noise}.xes.gz"))
            started = time.perf_counter()
            chosen = discover_petri_net(frame)
            seconds = time.perf_counter() - started
            found = replay_conformance(frame, *petri_net(chosen))
            versus = compare_models(petri_net(chosen), truth, traces=TRACES)
            log = frame[["case:concept:name", "concept:name", "time:timestamp"]]
            baseline = pm4py.discover_petri_net_inductive(log)
            base_log = replay_conformance(frame, *baseline)
            base_true = compare_models(baseline, truth, traces=TRACES)
            true_log = replay_conformance(frame, *truth)
            pick = f"{chosen.variant} {chosen.parameters['noise_threshold']:g}"
            if len(chosen.selection) == 1:  # no rare start or end activity: no filter
                pick += " (noise-free)"
            print(
                f"| {model}f0{noise} | {pick} | {seconds:.1f} | {found.fitness:.3f} "
                f"| {found.precision:.3f} | {found.f1:.3f} | {versus.recall:.3f} "
                f"| {versus.precision:.3f} | **{versus.f1:.3f}** | {base_log.f1:.3f} "
                f"| {base_true.f1:.3f} | {true_log.f1:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
