"""Discovery quality against known models: fitness, precision and F1 as noise grows.

For each synthetic log in ../shared/data/synthetic (models a12, a22, a32, a42, noise
levels 0-50 %) it discovers a Petri net with closedloop's default settings, with
each inductive variant (imd: on the directly-follows graph, imf: on the log), with
the heuristics miner (pm4py's default thresholds), and with plain pm4py (``pm4py.discover_petri_net_inductive`` defaults: IM, no noise
filter) as the baseline, and scores every model, and the true model for
reference, against the log:
- fitness: token-based replay log fitness (pm4py.fitness_token_based_replay);
- precision: ETConformance on token replay (pm4py.precision_token_based_replay);
- F1 = 2 * fitness * precision / (fitness + precision).
It also times discovery on BPIC 2012 (default vs plain pm4py IM vs IMf).

Models with the same process tree are scored once. Writes a Markdown report:

    .venv/bin/python benchmarks/bench_discovery_quality.py \
        [--models a12,a22,a32,a42] [--noise n00,n05,n10,n20,n50] \
        [--out benchmarks/results/discovery.md] [--skip-bpic]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

os.environ.setdefault("PM4PY_SHOW_PROGRESS_BAR", "False")
warnings.filterwarnings("ignore")

from closedloop.tools.log.ingest import load_event_log
from closedloop.tools.mining.discovery import (
    DEFAULT_NOISE_THRESHOLD,
    discover_petri_net,
    petri_net,
    process_tree,
)
from closedloop.tools.mining.language import frame_from_traces, read_traces

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CONFIGS = ("true", "default", "imd", "imf", "heuristics", "pm4py")
LABELS = {
    "true": "true model",
    "default": "closedloop default",
    "imd": "imd (DFG)",
    "imf": "imf (log)",
    "heuristics": "heuristics defaults",
    "pm4py": "pm4py IM defaults",
}


@dataclass
class Score:
    fitness: float
    precision: float
    seconds: float  # discovery time

    @property
    def f1(self) -> float:
        total = self.fitness + self.precision
        return 2 * self.fitness * self.precision / total if total else 0.0


def synthetic_frame(path: Path) -> pd.DataFrame:
    """Synthetic logs have no timestamps and one case name for all traces: number them."""
    return frame_from_traces(read_traces(path), source=str(path))


def quality(frame: pd.DataFrame, net: Any, im: Any, fm: Any) -> tuple[float, float]:
    import pm4py

    log = frame[["case:concept:name", "concept:name", "time:timestamp"]]
    fitness = pm4py.fitness_token_based_replay(log, net, im, fm)["log_fitness"]
    return float(fitness), float(pm4py.precision_token_based_replay(log, net, im, fm))


def discoverers(model_dir: Path, name: str) -> dict[str, Callable[[pd.DataFrame], tuple[str, Any]]]:
    """Per configuration: frame -> (key identifying the model, (net, im, fm))."""
    import pm4py

    def ours(**kw: Any) -> Callable[[pd.DataFrame], tuple[str, Any]]:
        def run(frame: pd.DataFrame) -> tuple[str, Any]:
            model = discover_petri_net(frame, **kw)
            key = str(process_tree(model)) if model.algorithm == "inductive" else model.pnml
            return key, (petri_net(model), model.variant)

        return run

    def plain(frame: pd.DataFrame) -> tuple[str, Any]:
        log = frame[["case:concept:name", "concept:name", "time:timestamp"]]
        tree = pm4py.discover_process_tree_inductive(log, multi_processing=False)
        return str(tree), (pm4py.convert_to_petri_net(tree), "IM")

    def true(_: pd.DataFrame) -> tuple[str, Any]:
        return f"true:{name}", (pm4py.read_pnml(str(model_dir / f"{name}.pnml")), "-")

    return {
        "true": true,
        "default": ours(),
        "imd": ours(variant="imd"),
        "imf": ours(variant="imf"),
        "heuristics": ours(algorithm="heuristics"),
        "pm4py": plain,
    }


def score_log(model_dir: Path, log_name: str) -> tuple[dict[str, Score], str]:
    frame = synthetic_frame(model_dir / f"{log_name}.xes.gz")
    cache: dict[str, tuple[float, float]] = {}
    scores: dict[str, Score] = {}
    default_variant = "?"
    for config, discover in discoverers(model_dir, model_dir.name).items():
        started = time.perf_counter()
        key, ((net, im, fm), variant) = discover(frame)
        seconds = time.perf_counter() - started
        if config == "default":
            default_variant = variant
        if key not in cache:
            cache[key] = quality(frame, net, im, fm)
        scores[config] = Score(*cache[key], seconds)
        print(
            f"{log_name} {config:8s} F1={scores[config].f1:.3f} "
            f"fit={cache[key][0]:.3f} prec={cache[key][1]:.3f}",
            file=sys.stderr,
            flush=True,
        )
    return scores, default_variant


def bpic_timings(path: Path) -> list[tuple[str, float, str]]:
    import pm4py

    frame = load_event_log(path)
    log = frame[["case:concept:name", "concept:name", "time:timestamp"]]
    runs: list[tuple[str, Callable[[], Any]]] = [
        ("closedloop default", lambda: discover_petri_net(frame)),
        ("imd (DFG)", lambda: discover_petri_net(frame, variant="imd")),
        (
            "pm4py IM defaults",
            lambda: pm4py.discover_petri_net_inductive(log, multi_processing=False),
        ),
        ("imf (log)", lambda: discover_petri_net(frame, variant="imf")),
    ]
    out = []
    for label, run in runs:
        started = time.perf_counter()
        result = run()
        note = getattr(result, "variant", "")
        out.append((label, time.perf_counter() - started, note))
        print(f"bpic2012 {label}: {out[-1][1]:.2f}s", file=sys.stderr, flush=True)
    return out


NOTES = """## Reading the numbers

- **Target (noise-free: fitness >= 0.99 and F1 >= 0.9).** The default meets it on a12.
  On a22, a32 and a42 the fitness half is met, but F1 >= 0.9 is out of reach for any
  model that fits the log: the *true* model itself scores only the precision shown in
  its column there, because 1,000 traces do not show every interleaving of the
  concurrent branches, and ETConformance counts each unseen interleaving the model
  allows as imprecision. On those logs the default matches the true model's F1 or
  comes close; compare each row with the `true model` column rather than with 0.9.
- **imd vs imf.** imf (pm4py IMf on the log) fits every noise-free log (imd: fitness
  0.905 on a22, where the directly-follows graph cannot tell which activities loop
  together) and keeps far more precision under noise on the models with concurrency
  (a22, a32, a42). imd is the fast path: about a second on BPIC 2012 against ~25 s
  for imf (table below). Hence the default `auto`: imf while the distinct variants
  hold at most 50,000 events (all synthetic logs, helpdesk, repair, receipt), imd
  above (BPIC 2012).
- **Noise filter on the graph.** imd filters like IMf, only where it finds no cut
  (filtering the whole graph once, the first version, threw away the rare
  interleavings that reveal concurrency and gave flower models: F1 0.17-0.25 on
  a22f0n00). On a12 imd recovers the true model up to 20 % noise.
- **Heuristics miner** (`algorithm="heuristics"`, pm4py defaults) has the best F1 on
  the noisy logs with concurrency, but misses the fitness bar even without noise
  (0.94-0.97) and its nets need not be sound, so it is an option, not the default.
- **Baseline.** Plain pm4py IM (no noise filter) fits every log by construction but
  collapses to flower-like models as soon as there is noise (precision 0.08-0.45).
- Token-based replay is an approximation of alignment-based fitness; the same
  measure is used for every column, so the comparison is fair, and the ranking of
  the configurations is what to read.
"""


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def cell(score: Score) -> str:
    return f"{score.f1:.3f} ({score.fitness:.3f} / {score.precision:.3f})"


def report(
    results: dict[str, dict[str, tuple[dict[str, Score], str]]],
    timings: list[tuple[str, float, str]],
    load_before: str,
    load_after: str,
    command: str,
) -> str:
    import pm4py

    lines = [
        "# Discovery quality and speed",
        "",
        (
            f"- Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs, "
            f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
            f"pm4py {pm4py.__version__}"
        ),
        f"- Load before: `{load_before}`",
        f"- Load after: `{load_after}`",
        f"- Command: `{command}`",
        (
            "- closedloop default: `discover_petri_net(frame)` = inductive miner, variant `auto`, "
            f"noise_threshold {DEFAULT_NOISE_THRESHOLD}"
        ),
        "- Baseline: `pm4py.discover_petri_net_inductive(log)` with its defaults (IM, no noise filter)",
        (
            "- Fitness: token-based replay log fitness; precision: ETConformance (token replay); "
            "F1 = 2FP/(F+P). Logs: ../shared/data/synthetic (1,000 traces each)."
        ),
        "",
        "Cells: **F1 (fitness / precision)**. `default ran` is the variant `auto` chose.",
        "",
    ]
    for model, by_noise in results.items():
        lines += [f"## {model}", ""]
        lines.append("| log | default ran | " + " | ".join(LABELS[c] for c in CONFIGS) + " |")
        lines.append("|---|---|" + "---|" * len(CONFIGS))
        for log_name, (scores, variant) in by_noise.items():
            lines.append(
                f"| {log_name} | {variant} | " + " | ".join(cell(scores[c]) for c in CONFIGS) + " |"
            )
        lines.append("")
    lines += ["## Target on the noise-free logs (fitness >= 0.99 and F1 >= 0.9)", ""]
    lines.append("| log | " + " | ".join(LABELS[c] for c in CONFIGS) + " |")
    lines.append("|---|" + "---|" * len(CONFIGS))
    for model, by_noise in results.items():
        clean = next((v for k, v in by_noise.items() if k.endswith("n00")), None)
        if clean is None:
            continue
        marks = [
            (
                "met"
                if s.fitness >= 0.99 and s.f1 >= 0.9
                else "fitness met"
                if s.fitness >= 0.99
                else "missed"
            )
            + f" ({s.f1:.3f})"
            for s in (clean[0][c] for c in CONFIGS)
        ]
        lines.append(f"| {model}f0n00 | " + " | ".join(marks) + " |")
    lines.append("")
    mean_f1 = {
        c: sum(s[0][c].f1 for by in results.values() for s in by.values())
        / max(1, sum(len(by) for by in results.values()))
        for c in CONFIGS
    }
    lines += ["## Mean F1 over all logs", ""]
    lines += ["| " + " | ".join(LABELS[c] for c in CONFIGS) + " |", "|" + "---|" * len(CONFIGS)]
    lines += ["| " + " | ".join(f"{mean_f1[c]:.3f}" for c in CONFIGS) + " |", ""]
    if timings:
        lines += ["## Discovery time on BPIC 2012 (164,506 activity instances, 13,087 cases)", ""]
        lines += ["| configuration | seconds | ran |", "|---|---|---|"]
        lines += [f"| {label} | {sec:.2f} | {note} |" for label, sec, note in timings]
        lines.append("")
    lines.append(NOTES)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="a12,a22,a32,a42")
    parser.add_argument("--noise", default="n00,n05,n10,n20,n50")
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/discovery.md"))
    parser.add_argument("--skip-bpic", action="store_true")
    args = parser.parse_args()
    if not (SHARED / "synthetic").is_dir():
        sys.exit(f"synthetic logs not found under {SHARED}")
    load_before = uptime()
    results: dict[str, dict[str, tuple[dict[str, Score], str]]] = {}
    for model in args.models.split(","):
        for noise in args.noise.split(","):
            log_name = f"{model}f0{noise}"
            results.setdefault(model, {})[log_name] = score_log(
                SHARED / "synthetic" / model, log_name
            )
    timings = [] if args.skip_bpic else bpic_timings(SHARED / "logs" / "bpic2012.xes.gz")
    command = ".venv/bin/python benchmarks/bench_discovery_quality.py " + " ".join(sys.argv[1:])
    text = report(results, timings, load_before, uptime(), command.strip())
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
