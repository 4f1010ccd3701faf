"""Process discovery: the directly-follows graph and Petri nets (inductive or heuristics miner).

Fronts pm4py's discovery algorithms over the canonical event frame:
- ``discover_dfg``: directly-follows graph with frequencies and waiting times;
- ``discover_petri_net``: a Petri net with initial and final marking, from
  * the infrequent inductive miner on the directly-follows graph (``imd``:
    about a second even on BPIC 2012),
  * the log-based infrequent inductive miner (``imf``, pm4py IMf: fits logs with
    concurrency better, but takes ~25 s on BPIC 2012),
  * ``auto`` (the default): imf while the log's distinct variants are small
    (IMF_BUDGET_EVENTS), imd above,
  * or the heuristics miner with its dependency / AND / length-two-loop thresholds.

With ``noise_threshold="auto"`` (the default) a log within IMF_BUDGET_EVENTS that
shows no sign of noise (every start and end activity begins / ends at least
NOISE_FREE_SHARE of the cases) is mined with plain IM, no filter; any other log
within the budget is mined with every setting of SELECTION_GRID and the model
with the best F1 of fitness and precision on the log is kept (``_select``);
larger logs use imd at DEFAULT_NOISE_THRESHOLD.

Noise handling of ``imd`` follows IMf (Leemans et al. 2013) on the graph
alone: at each step the miner first looks for a cut in the unfiltered sub-graph;
only when there is none it drops every edge ``a -> b`` (ending the case counts
as an edge ``a -> end``) rarer than ``noise_threshold`` times the strongest
outgoing edge of ``a``, and every start activity rarer than ``noise_threshold``
times the most frequent one, and tries again before falling through. Filtering
once up front instead removes the rare interleavings that reveal concurrency
and yields flower models (see benchmarks/bench_discovery_quality.py).
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ToolError
from closedloop.tools.log import as_canonical
from closedloop.tools.log.columns import ACTIVITY, CASE, START, TIMESTAMP
from closedloop.tools.mining import performance as perf
from closedloop.tools.mining.miners import (
    TREE_CHARS,
    CandidateScore,
    DiscoveredModel,
    dfg_object,
    filter_dfg,
    heuristics_model,
    imd_model,
    imf_model,
    petri_net,
    process_tree,
)
from closedloop.tools.mining.performance import ActivityStats, DfgEdge
from closedloop.tools.mining.replay import replay_conformance

__all__ = [
    "DEFAULT_NOISE_THRESHOLD",
    "IMF_BUDGET_EVENTS",
    "MINERS",
    "SELECTION_GRID",
    "TREE_CHARS",
    "CandidateScore",
    "DfgModel",
    "DiscoveredModel",
    "TimedDfgEdge",
    "discover_dfg",
    "discover_from_frame",
    "discover_petri_net",
    "filter_dfg",
    "miner_options",
    "petri_net",
    "process_tree",
]

DEFAULT_NOISE_THRESHOLD = 0.2
# variant="auto": log-based IMf up to this many events in the distinct variants (a42: ~32k,
# under a second), DFG-based IMd above (BPIC 2012: ~110k; IMf ~25 s there, IMd ~0.5 s)
IMF_BUDGET_EVENTS = 50_000
# noise_threshold="auto" mines these (variant, threshold) pairs and keeps the best F1 on the log
# (pm4py's token replay, at most SELECTION_REPLAY_STEPS steps per candidate: a sample of cases
# beyond that).
# imd is cheap at any threshold; imf below 0.2 is slow on logs with much concurrency (a42: ~14 s
# at 0) and did not win on the synthetic logs (benchmarks/results/discovery.md).
SELECTION_GRID: tuple[tuple[str, float], ...] = (
    ("imd", 0.0),
    ("imd", 0.1),
    ("imd", 0.2),
    ("imd", 0.3),
    ("imd", 0.4),
    ("imd", 0.5),
    ("imf", 0.2),
    ("imf", 0.4),
)
SELECTION_REPLAY_STEPS = 5_000
# Lower thresholds tried, in order, when the requested one drops an activity of the log.
COMPLETE_STEPS = (0.15, 0.1, 0.05, 0.0)
SELECTION_FITTING = 0.99  # a candidate this fit wins if within SELECTION_F1_SLACK of the best F1
SELECTION_F1_SLACK = 0.1
# A log whose every start and end activity begins / ends at least this share of its cases shows
# no sign of noise (noise makes cases start or end anywhere): plain IM, no filter (``_select``).
NOISE_FREE_SHARE = 0.01


MINERS = ("auto", "imd", "imf", "heuristics")


def miner_options(miner: str = "auto", noise_threshold: float | None = None) -> dict[str, Any]:
    """``discover_from_frame`` keywords for a miner named on a surface (CLI ``--miner``).

    "auto": the automatic selection; "imd" / "imf": that inductive variant at
    ``noise_threshold`` (default 0.2); "heuristics": the heuristics miner.
    """
    if miner not in MINERS:
        raise ToolError(f"miner must be one of {', '.join(MINERS)}, got {miner!r}")
    if miner == "heuristics":
        return {"algorithm": "heuristics"}
    noise: float | str = "auto" if noise_threshold is None else noise_threshold
    if miner == "auto":
        return {"noise_threshold": noise}
    return {
        "variant": miner,
        "noise_threshold": DEFAULT_NOISE_THRESHOLD if noise == "auto" else noise,
    }


class TimedDfgEdge(DfgEdge):
    """Directly-follows edge with the median waiting beside the mean (hours)."""

    median_hours: float = Field(
        description="median waiting from source's completion to target's start"
    )


class DfgModel(BaseModel):
    """Directly-follows graph: who follows whom, how often, after how long (hours)."""

    cases: int
    has_start_times: bool = Field(
        description="False: waiting = gap between completions (includes processing)"
    )
    activities: list[ActivityStats] = Field(description="most frequent first")
    edges: list[TimedDfgEdge] = Field(description="most frequent first")
    start_activities: dict[str, int] = Field(description="activity -> cases starting with it")
    end_activities: dict[str, int] = Field(description="activity -> cases ending with it")


@read_tool
def discover_dfg(log: pd.DataFrame) -> DfgModel:
    """Directly-follows graph of an event log, with frequencies and waiting times.

    Returns a DfgModel with:
    - activities: per activity the execution count, cases, mean/median waiting and
      processing hours (as in ``mine``);
    - edges: every pair (source, target) where target directly follows source in a
      case, with count and mean/median hours from source's completion to target's start;
    - start_activities / end_activities: how many cases start / end with each activity.
    """
    frame = as_canonical(log, "discover_dfg")
    times = perf.instance_times(frame)
    edges, starts, ends = perf.dfg(times)
    pairs = times[times["prev"].notna()]
    medians = pairs.groupby(["prev", "activity"], sort=False)["waiting"].median()
    return DfgModel(
        cases=int(frame[CASE].nunique()),
        has_start_times=bool((frame[START] != frame[TIMESTAMP]).any()),
        activities=perf.activity_stats(times),
        edges=[
            TimedDfgEdge(
                **e.model_dump(),
                median_hours=round(float(medians.get((e.source, e.target), 0.0)), 4),
            )
            for e in edges
        ],
        start_activities=starts,
        end_activities=ends,
    )


@read_tool
def discover_petri_net(
    log: pd.DataFrame,
    algorithm: Literal["inductive", "heuristics"] = "inductive",
    variant: Literal["auto", "imd", "imf"] = "auto",
    noise_threshold: float | Literal["auto"] = "auto",
    dependency_threshold: float = 0.5,
    and_threshold: float = 0.65,
    loop_two_threshold: float = 0.5,
) -> DiscoveredModel:
    """Discover a process model (Petri net) from an event log.

    algorithm="inductive" (default) builds a sound, block-structured model:
    variant="imd" mines the directly-follows graph (fast on any log size);
    variant="imf" mines the log itself (fits better where activities run in
    parallel, but takes seconds to minutes on large logs); variant="auto"
    (default) uses imf while the distinct variants hold at most 50,000 events
    and imd above (the model's `variant` says which ran). noise_threshold
    (0..1) drops behaviour rarer than that share of the strongest alternative;
    0 keeps everything (with imf every observed case then fits, but noise makes
    the model permissive). noise_threshold="auto" (default): on logs within the
    imf budget without rare start or end activities (under 1 % of the cases:
    the mark of noise), plain imf at 0; on other logs within the budget, mine
    every candidate in SELECTION_GRID and keep the one with
    the best F1 of token-replay fitness and precision on the log itself (the
    scores are in the model's `selection`); on larger logs use 0.2.
    algorithm="heuristics" runs the heuristics miner with dependency_threshold,
    and_threshold and loop_two_threshold (not guaranteed sound).
    Returns the model's size, its activities, the settings, and the net as PNML.
    """
    return discover_from_frame(
        as_canonical(log, "discover_petri_net"),
        algorithm=algorithm,
        variant=variant,
        noise_threshold=noise_threshold,
        dependency_threshold=dependency_threshold,
        and_threshold=and_threshold,
        loop_two_threshold=loop_two_threshold,
    )


def discover_from_frame(
    frame: pd.DataFrame,
    cases: pd.DataFrame | None = None,
    algorithm: Literal["inductive", "heuristics"] = "inductive",
    variant: Literal["auto", "imd", "imf"] = "auto",
    noise_threshold: float | Literal["auto"] = "auto",
    dependency_threshold: float = 0.5,
    and_threshold: float = 0.65,
    loop_two_threshold: float = 0.5,
) -> DiscoveredModel:
    """``discover_petri_net`` on a canonical frame (``as_canonical``), not sorted again.

    ``cases`` may pass ``performance.case_table(frame)`` when the caller has it
    (``mine`` does), so the automatic selection does not build it again.
    """
    if noise_threshold == "auto":
        if algorithm == "inductive" and variant == "auto" and _fits_imf_budget(frame, cases):
            return _select(frame, cases)
        noise_threshold = DEFAULT_NOISE_THRESHOLD
    if not isinstance(noise_threshold, int | float):
        raise ToolError(f"noise_threshold must be a number or 'auto', got {noise_threshold!r}")
    for name, value in (
        ("noise_threshold", noise_threshold),
        ("dependency_threshold", dependency_threshold),
        ("and_threshold", and_threshold),
        ("loop_two_threshold", loop_two_threshold),
    ):
        if not 0.0 <= value <= 1.0:
            raise ToolError(f"{name} must be between 0 and 1, got {value}")
    columns = frame[[CASE, ACTIVITY, TIMESTAMP]]  # pm4py needs no more
    if algorithm == "heuristics":
        return heuristics_model(columns, dependency_threshold, and_threshold, loop_two_threshold)
    if algorithm != "inductive":
        raise ToolError(f"algorithm must be 'inductive' or 'heuristics', got {algorithm!r}")
    if variant == "auto":
        variant = "imf" if _fits_imf_budget(frame, cases) else "imd"
    if variant not in ("imd", "imf"):
        raise ToolError(f"variant must be 'auto', 'imd' or 'imf', got {variant!r}")
    return _complete(frame, variant, float(noise_threshold))


def _complete(frame: pd.DataFrame, variant: str, noise_threshold: float) -> DiscoveredModel:
    """The inductive model at ``noise_threshold``; when its noise filter drops one of the
    log's activities, the next lower threshold of ``COMPLETE_STEPS`` that keeps every
    activity (noted in ``notes``); any activity still missing is listed, never silent."""
    columns = frame[[CASE, ACTIVITY, TIMESTAMP]]
    graph = dfg_object(frame) if variant == "imd" else None

    def mined(threshold: float) -> DiscoveredModel:
        if variant == "imd":
            return imd_model(frame, threshold, graph)
        return imf_model(columns, threshold)

    activities = set(frame[ACTIVITY].unique())
    model = mined(noise_threshold)
    missing = sorted(activities - set(model.activities))
    if not missing:
        return model
    for lower in (t for t in COMPLETE_STEPS if t < noise_threshold):
        candidate = mined(lower)
        if activities <= set(candidate.activities):
            candidate.notes.append(
                f"noise threshold {noise_threshold:g} left out {', '.join(missing)}; "
                f"lowered to {lower:g} so every activity of the log is in the model"
            )
            return candidate
    model.missing_activities = missing
    model.notes.append(f"the noise filter left out {', '.join(missing)}")
    return model


def _fits_imf_budget(frame: pd.DataFrame, cases: pd.DataFrame | None = None) -> bool:
    """Whether the distinct trace variants hold at most IMF_BUDGET_EVENTS events."""
    if len(frame) <= IMF_BUDGET_EVENTS:  # the variants cannot hold more: skip the pass
        return True
    cases = perf.case_table(frame) if cases is None else cases
    keys = cases["variant"].drop_duplicates()
    return int(keys.str.count(perf.SEP).sum()) + len(keys) <= IMF_BUDGET_EVENTS


def _select(frame: pd.DataFrame, cases: pd.DataFrame | None = None) -> DiscoveredModel:
    """Plain IM on a log without sign of noise (``_looks_noise_free``), else the
    SELECTION_GRID candidate with the best F1 on the log (ties: fitter, then first).

    Candidates that leave out one of the log's activities (IMf may filter a rare
    one away) only win when every candidate does. A candidate that fits the log
    (fitness >= SELECTION_FITTING) is preferred to a better-scoring one that
    does not when it gives up at most SELECTION_F1_SLACK of F1: on a log without
    noise the F1 optimum may drop real behaviour for precision (a22: imd fits
    0.905 of the log with F1 0.83, imf all of it with F1 0.78).
    """
    cases = perf.case_table(frame) if cases is None else cases
    graph = dfg_object(frame)
    columns = frame[[CASE, ACTIVITY, TIMESTAMP]]
    activities = set(frame[ACTIVITY].unique())
    if _looks_noise_free(graph):
        plain = imf_model(columns, 0.0)
        plain.selection = [_score(frame, cases, plain, "imf", 0.0)]
        plain.notes.append(
            f"every start and end activity begins or ends at least {NOISE_FREE_SHARE:.0%} of "
            "the cases (no sign of noise): the inductive miner ran without noise filter"
        )
        return plain
    models: list[DiscoveredModel] = []
    scores: list[CandidateScore] = []
    for variant, threshold in SELECTION_GRID:
        model = (
            imd_model(frame, threshold, graph)
            if variant == "imd"
            else imf_model(columns, threshold)
        )
        models.append(model)
        scores.append(_score(frame, cases, model, variant, threshold))
    complete = [activities <= set(m.activities) for m in models]

    def rank(i: int) -> tuple[bool, float, float, int]:
        return complete[i], scores[i].f1, scores[i].fitness, -i

    top = max(range(len(models)), key=rank)
    fitting = [
        i
        for i in range(len(models))
        if complete[i] == complete[top]
        and scores[i].fitness >= SELECTION_FITTING
        and scores[i].f1 >= scores[top].f1 - SELECTION_F1_SLACK
    ]
    best = models[max(fitting or [top], key=rank)]
    best.selection = scores
    best.missing_activities = sorted(activities - set(best.activities))
    if best.missing_activities:
        best.notes.append(f"every candidate left out {', '.join(best.missing_activities)}")
    return best


def _looks_noise_free(graph: Any) -> bool:
    """Whether every start and every end activity covers at least NOISE_FREE_SHARE of the cases.

    Noise (a missing, extra or swapped event) lets a case start or end with an activity
    that otherwise never does, in a handful of cases; a log without such rare starts and
    ends gives the noise filter nothing it can tell from real behaviour, and filtering it
    drops real but infrequent paths (the synthetic a42: F1 0.73 against the true model with
    the best-scoring filter, 0.97 without). Plain IM on a noisy log whose starts and ends
    happen to be clean is still pm4py's default model.
    """
    total = sum(graph.start_activities.values())
    if not total:
        return False
    least = min(*graph.start_activities.values(), *graph.end_activities.values())
    return least >= NOISE_FREE_SHARE * total


def _score(
    frame: pd.DataFrame, cases: pd.DataFrame, model: DiscoveredModel, variant: str, threshold: float
) -> CandidateScore:
    """A candidate's token-replay fitness, precision and F1 on the log (bounded replay)."""
    report = replay_conformance(
        frame,
        *petri_net(model),
        cases=cases,
        max_replay_steps=SELECTION_REPLAY_STEPS,
        confirm=False,
    )
    return CandidateScore(
        variant=variant,
        noise_threshold=threshold,
        fitness=report.fitness,
        precision=report.precision,
        f1=report.f1,
    )
