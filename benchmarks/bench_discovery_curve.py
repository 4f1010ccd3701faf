"""Discovery quality on the synthetic logs: closedloop's default discovery against plain pm4py
(inductive miner, its defaults) in the same run, judged two ways:

- on the log: token-replay fitness and ETConformance precision (closedloop's replay: pm4py's
  values, with traces the model provably accepts counted as fitting);
- against the true model that generated the log (``language.compare_models``: each model's
  random traces replayed on the other).

    .venv/bin/python benchmarks/bench_discovery_curve.py [a12 a22 ...] [--seeds 0,1,2]
    # needs ../shared/data/synthetic

Prints one Markdown table row per log (all four models without arguments). With several
seeds each comparison with the true model is repeated with other random traces: the mean
is printed, and the range when the seeds differ. Two references calibrate the comparison:
the flower model of the log's activities (any order, any repetition) scored the same way,
and `exact`: the share of a model's random traces the true model accepts.
"""

from __future__ import annotations

import argparse
import os
import statistics
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
from closedloop.tools.mining.miners import petri_net as model_net

SYNTHETIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthetic"
TRACES = 2000  # played out of each model for the comparison with the true model


def flower(frame) -> tuple:
    """The flower model of the log's activities: any of them, in any order, any number of times."""
    from pm4py.objects.process_tree.utils.generic import parse

    acts = sorted(frame["concept:name"].unique())
    return pm4py.convert_to_petri_net(parse(f"*(tau, X({', '.join(repr(a) for a in acts)}))"))


def versus(net: tuple, truth: tuple, seeds: list[int]) -> tuple[str, str]:
    """F1 against the true model (mean over seeds, range if they differ) and exact precision."""
    runs = [compare_models(net, truth, traces=TRACES, seed=s) for s in seeds]
    f1s = [r.f1 for r in runs]
    text = f"{statistics.mean(f1s):.3f}"
    low, high = f"{min(f1s):.3f}", f"{max(f1s):.3f}"
    if low != high:
        text += f" ({low}-{high})"
    return text, f"{statistics.mean(r.precision_exact for r in runs):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["a12", "a22", "a32", "a42"])
    parser.add_argument("--noise", default="n00,n05,n10,n20,n50")
    parser.add_argument("--seeds", default="0", help="seeds of the comparison, e.g. 0,1,2")
    args = parser.parse_args()
    seeds = [int(x) for x in args.seeds.split(",")]
    if not SYNTHETIC.is_dir():
        sys.exit(f"{SYNTHETIC} not found: the synthetic logs live in ../shared/data")
    print(
        "| log | closedloop picks | s | F1 on log | vs true F1 | exact "
        "| pm4py IM: F1 on log | vs true F1 | exact | flower: vs true F1 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for model in args.models:
        truth = pm4py.read_pnml(str(SYNTHETIC / model / f"{model}.pnml"))
        for noise in args.noise.split(","):
            frame = frame_from_traces(read_traces(SYNTHETIC / model / f"{model}f0{noise}.xes.gz"))
            started = time.perf_counter()
            chosen = discover_petri_net(frame)
            seconds = time.perf_counter() - started
            found = replay_conformance(frame, *petri_net(chosen))
            ours, ours_exact = versus(model_net(chosen), truth, seeds)
            log = frame[["case:concept:name", "concept:name", "time:timestamp"]]
            baseline = pm4py.discover_petri_net_inductive(log)
            base_log = replay_conformance(frame, *baseline)
            base, base_exact = versus(baseline, truth, seeds)
            any_order, _ = versus(flower(frame), truth, seeds)
            pick = f"{chosen.variant} {chosen.parameters['noise_threshold']:g}"
            if len(chosen.selection) == 1:  # no rare start or end activity: no filter
                pick += " (noise-free)"
            print(
                f"| {model}f0{noise} | {pick} | {seconds:.1f} | {found.f1:.3f} | **{ours}** "
                f"| {ours_exact} | {base_log.f1:.3f} | {base} | {base_exact} | {any_order} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
