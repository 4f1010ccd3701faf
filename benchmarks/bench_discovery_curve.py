"""Fast discovery-quality curve: closedloop's default discovery on the synthetic logs, scored with
closedloop's token-replay conformance (same values as pm4py's, see tests/test_conformance.py) next
to the true model. Prints a Markdown table.

    .venv/bin/python benchmarks/bench_discovery_curve.py   # needs ../shared/data/synthetic
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")
warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).parent))

import pm4py
from bench_discovery_quality import synthetic_frame

from closedloop.tools.conformance import replay_conformance
from closedloop.tools.discovery import discover_petri_net, petri_net

SYNTHETIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthetic"


def main() -> None:
    print("| model | noise | fitness | precision | F1 | true model F1 | exact |")
    print("|---|---|---:|---:|---:|---:|---|")
    for model in ("a12", "a22", "a32", "a42"):
        true_net = pm4py.read_pnml(str(SYNTHETIC / model / f"{model}.pnml"))
        for noise in ("n00", "n05", "n10", "n20", "n50"):
            frame = synthetic_frame(SYNTHETIC / model / f"{model}f0{noise}.xes.gz")
            found = replay_conformance(frame, *petri_net(discover_petri_net(frame)), seed=0)
            truth = replay_conformance(frame, *true_net, seed=0)
            print(f"| {model} | {noise} | {found.fitness:.3f} | {found.precision:.3f} | {found.f1:.3f} "
                  f"| {truth.f1:.3f} | {found.exact} |", flush=True)


if __name__ == "__main__":
    main()
