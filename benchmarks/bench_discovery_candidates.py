"""Every candidate of the automatic selection on the noisy synthetic logs, against the truth.

For each noisy log it mines IMd at noise 0-0.5 and IMf at 0.2 / 0.4 (the selection's
candidates, with IMd 0.05 / 0.15 in between) and plain pm4py IM, and writes one JSON line
per model: F1 on the log (token replay, as the selection scores it), F1 against the true
model (``language.compare_models``), the process tree and the net as PNML, so other
selection scores can be tried on the same models without mining again. Lines already in
the output file are skipped (the run can be resumed).

    .venv/bin/python benchmarks/bench_discovery_candidates.py a42 [a12 ...] \
        [--out candidates.jsonl] [--traces 400]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")
warnings.filterwarnings("ignore")

import pm4py
from pm4py.objects.petri_net.exporter.variants.pnml import export_petri_as_string

from closedloop.tools.mining import performance as perf
from closedloop.tools.mining.language import compare_models, frame_from_traces, read_traces
from closedloop.tools.mining.miners import dfg_object, imd_model, imf_model, petri_net
from closedloop.tools.mining.replay import replay_conformance

SYNTHETIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "synthetic"
GRID = [("imd", t) for t in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)] + [
    ("imf", 0.2),
    ("imf", 0.4),
    ("pm4py", 0.0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--out", type=Path, default=Path("candidates.jsonl"))
    parser.add_argument("--traces", type=int, default=400)
    args = parser.parse_args()
    done = set()
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["log"], r["variant"], r["t"]))
    for model in args.models:
        truth = pm4py.read_pnml(str(SYNTHETIC / model / f"{model}.pnml"))
        for noise in ("n05", "n10", "n20", "n50"):
            log = f"{model}f0{noise}"
            frame = frame_from_traces(read_traces(SYNTHETIC / model / f"{log}.xes.gz"))
            cases = perf.case_table(frame)
            graph = dfg_object(frame)
            for variant, t in GRID:
                if (log, variant, t) in done:
                    continue
                started = time.perf_counter()
                tree = None
                if variant == "imd":
                    found = imd_model(frame, t, graph)
                    net, tree = petri_net(found), found.process_tree
                elif variant == "imf":
                    found = imf_model(frame, t)
                    net, tree = petri_net(found), found.process_tree
                else:
                    columns = ["case:concept:name", "concept:name", "time:timestamp"]
                    net = pm4py.discover_petri_net_inductive(frame[columns])
                mine_s = time.perf_counter() - started
                on_log = replay_conformance(
                    frame, *net, cases=cases, max_replay_steps=5000, confirm=False
                )
                versus = compare_models(net, truth, traces=args.traces)
                row = {
                    "log": log,
                    "variant": variant,
                    "t": t,
                    "fit": on_log.fitness,
                    "prec": on_log.precision,
                    "f1": on_log.f1,
                    "tr": versus.recall,
                    "tp": versus.precision,
                    "tf1": versus.f1,
                    "mine_s": mine_s,
                    "tree": tree,
                    "pnml": export_petri_as_string(*net).decode(),
                }
                with args.out.open("a") as out:
                    out.write(json.dumps(row) + "\n")
                print(log, variant, t, round(on_log.f1, 3), round(versus.f1, 3), flush=True)


if __name__ == "__main__":
    main()
