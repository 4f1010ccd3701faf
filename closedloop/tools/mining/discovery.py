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

With ``noise_threshold="auto"`` (the default) a log within IMF_BUDGET_EVENTS is
mined with every setting of SELECTION_GRID and the model with the best F1 of
fitness and precision on the log is kept (``_select``); larger logs use imd at
DEFAULT_NOISE_THRESHOLD.

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
from pydantic import BaseModel, Field, PrivateAttr

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ToolError
from closedloop.tools.log.ingest import ACTIVITY, CASE, START, TIMESTAMP
from closedloop.tools.mining import performance as perf
from closedloop.tools.mining.performance import ActivityStats, DfgEdge

__all__ = [
    "DEFAULT_NOISE_THRESHOLD",
    "IMF_BUDGET_EVENTS",
    "SELECTION_GRID",
    "CandidateScore",
    "DfgModel",
    "DiscoveredModel",
    "TimedDfgEdge",
    "discover_dfg",
    "discover_petri_net",
    "filter_dfg",
    "petri_net",
    "process_tree",
]

TREE_CHARS = 2000
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
SELECTION_FITTING = 0.99  # a candidate this fit wins if within SELECTION_F1_SLACK of the best F1
SELECTION_F1_SLACK = 0.1


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


class CandidateScore(BaseModel):
    """One candidate of the automatic selection and how well it describes the log."""

    variant: str
    noise_threshold: float
    fitness: float
    precision: float
    f1: float


class DiscoveredModel(BaseModel):
    """A discovered Petri net: its size, the settings used, and the net as PNML text.

    The pm4py objects (net, initial and final marking, process tree) stay attached
    to the instance that discovery returned; get them with ``petri_net(model)``
    and ``process_tree(model)``. A model rebuilt from JSON re-reads them from ``pnml``.
    """

    algorithm: Literal["inductive", "heuristics"]
    variant: str = Field(
        description="the miner that ran: imd (DFG-based inductive), imf (log-based), heuristics"
    )
    parameters: dict[str, float] = Field(description="thresholds the miner ran with")
    activities: list[str] = Field(description="visible transition labels, sorted")
    places: int
    transitions: int
    silent_transitions: int
    arcs: int
    process_tree: str | None = Field(
        default=None, description=f"inductive only: process tree, cut at {TREE_CHARS} characters"
    )
    pnml: str = Field(description="the Petri net with initial and final marking, PNML XML")
    selection: list[CandidateScore] = Field(
        default_factory=list,
        description='noise_threshold="auto": every candidate mined and its score on the log',
    )

    _net: tuple[Any, Any, Any] | None = PrivateAttr(default=None)
    _tree: Any = PrivateAttr(default=None)


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
    frame = _canonical(log)
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
    imf budget, mine every candidate in SELECTION_GRID and keep the one with
    the best F1 of token-replay fitness and precision on the log itself (the
    scores are in the model's `selection`); on larger logs use 0.2.
    algorithm="heuristics" runs the heuristics miner with dependency_threshold,
    and_threshold and loop_two_threshold (not guaranteed sound).
    Returns the model's size, its activities, the settings, and the net as PNML.
    """
    frame = _canonical(log)
    if noise_threshold == "auto":
        if algorithm == "inductive" and variant == "auto" and _fits_imf_budget(frame):
            return _select(frame)
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
        return _heuristics(columns, dependency_threshold, and_threshold, loop_two_threshold)
    if algorithm != "inductive":
        raise ToolError(f"algorithm must be 'inductive' or 'heuristics', got {algorithm!r}")
    if variant == "auto":
        variant = "imf" if _fits_imf_budget(frame) else "imd"
    if variant == "imd":
        return _imd(frame, noise_threshold)
    if variant == "imf":
        return _imf(columns, noise_threshold)
    raise ToolError(f"variant must be 'auto', 'imd' or 'imf', got {variant!r}")


def petri_net(model: DiscoveredModel) -> tuple[Any, Any, Any]:
    """The pm4py ``(net, initial_marking, final_marking)`` of a discovered model."""
    if model._net is None:
        from pm4py.objects.petri_net.importer.variants.pnml import import_net_from_string

        model._net = import_net_from_string(model.pnml.encode("utf-8"))
    return model._net


def process_tree(model: DiscoveredModel) -> Any | None:
    """The pm4py process tree behind an inductive model.

    None for heuristics nets and for models rebuilt from JSON (use ``petri_net``).
    """
    return model._tree


def filter_dfg(
    edges: dict[tuple[str, str], int],
    starts: dict[str, int],
    ends: dict[str, int],
    noise_threshold: float,
) -> tuple[dict[tuple[str, str], int], dict[str, int], dict[str, int]]:
    """IMf-style noise filter on a directly-follows graph (see the module docstring).

    Afterwards every activity is still reachable from a start activity and can
    still reach an end activity: where filtering cut it off, the most frequent
    original edge that reconnects it is put back (the inductive miner needs that).
    """
    strongest: dict[str, int] = dict(ends)
    for (source, _), n in edges.items():
        strongest[source] = max(strongest.get(source, 0), n)
    top_start = max(starts.values(), default=0)
    kept = {k: n for k, n in edges.items() if n >= noise_threshold * strongest[k[0]]}
    kept_starts = {a: n for a, n in starts.items() if n >= noise_threshold * top_start}
    kept_ends = {a: n for a, n in ends.items() if n >= noise_threshold * strongest[a]}
    _reconnect(edges, starts, kept, kept_starts, forward=True)
    _reconnect(edges, ends, kept, kept_ends, forward=False)
    return kept, kept_starts, kept_ends


def _reconnect(
    edges: dict[tuple[str, str], int],
    entries: dict[str, int],
    kept: dict[tuple[str, str], int],
    kept_entries: dict[str, int],
    forward: bool,
) -> None:
    """Put back the strongest edges until every activity is reached from the kept entries.

    forward: entries are start activities and edges are followed source -> target;
    backward: entries are end activities and edges are followed target -> source.
    """
    activities = {a for pair in edges for a in pair} | set(entries)
    while True:
        reached = _closure(kept_entries, kept, forward)
        missing = activities - reached
        if not missing:
            return
        bridges = [
            (n, pair)
            for pair, n in edges.items()
            if (pair if forward else pair[::-1])[0] in reached
            and (pair if forward else pair[::-1])[1] in missing
        ]
        entry = max(((n, a) for a, n in entries.items() if a in missing), default=None)
        best = max(bridges, default=None)
        if entry is not None and (best is None or entry[0] >= best[0]):
            kept_entries[entry[1]] = entry[0]
        elif best is not None:
            kept[best[1]] = best[0]
        else:  # unreachable in the unfiltered graph too: nothing to put back
            return


def _closure(entries: dict[str, int], edges: dict[tuple[str, str], int], forward: bool) -> set[str]:
    following: dict[str, list[str]] = {}
    for source, target in edges:
        a, b = (source, target) if forward else (target, source)
        following.setdefault(a, []).append(b)
    reached = set(entries)
    stack = list(entries)
    while stack:
        for nxt in following.get(stack.pop(), ()):
            if nxt not in reached:
                reached.add(nxt)
                stack.append(nxt)
    return reached


def _canonical(log: pd.DataFrame) -> pd.DataFrame:
    # imported here: mine may one day discover through this module
    from closedloop.tools.mining.mine import _as_canonical

    return _as_canonical(log)


def _fits_imf_budget(frame: pd.DataFrame) -> bool:
    """Whether the distinct trace variants hold at most IMF_BUDGET_EVENTS events."""
    if len(frame) <= IMF_BUDGET_EVENTS:  # the variants cannot hold more: skip the pass
        return True
    keys = perf.case_table(frame)["variant"].drop_duplicates()
    return int(keys.str.count(perf.SEP).sum()) + len(keys) <= IMF_BUDGET_EVENTS


def _select(frame: pd.DataFrame) -> DiscoveredModel:
    """The SELECTION_GRID candidate with the best F1 on the log (ties: fitter, then first).

    Candidates that leave out one of the log's activities (IMf may filter a rare
    one away) only win when every candidate does. A candidate that fits the log
    (fitness >= SELECTION_FITTING) is preferred to a better-scoring one that
    does not when it gives up at most SELECTION_F1_SLACK of F1: on a log without
    noise the F1 optimum may drop real behaviour for precision (a22: imd fits
    0.905 of the log with F1 0.83, imf all of it with F1 0.78).
    """
    from closedloop.tools.mining.conformance import replay_conformance

    cases = perf.case_table(frame)
    graph = _dfg(frame)
    columns = frame[[CASE, ACTIVITY, TIMESTAMP]]
    activities = set(frame[ACTIVITY].unique())
    models: list[DiscoveredModel] = []
    scores: list[CandidateScore] = []
    for variant, threshold in SELECTION_GRID:
        model = _imd(frame, threshold, graph) if variant == "imd" else _imf(columns, threshold)
        report = replay_conformance(
            frame,
            *petri_net(model),
            cases=cases,
            max_replay_steps=SELECTION_REPLAY_STEPS,
            confirm=False,
        )
        models.append(model)
        scores.append(
            CandidateScore(
                variant=variant,
                noise_threshold=threshold,
                fitness=report.fitness,
                precision=report.precision,
                f1=report.f1,
            )
        )
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
    return best


def _dfg(frame: pd.DataFrame) -> Any:
    from pm4py.objects.dfg.obj import DFG

    edges, starts, ends = perf.dfg(perf.instance_times(frame))
    return DFG({(e.source, e.target): e.count for e in edges}, starts, ends)


def _imd(frame: pd.DataFrame, noise_threshold: float, graph: Any = None) -> DiscoveredModel:
    from pm4py.algo.discovery.inductive.dtypes.im_dfg import InductiveDFG
    from pm4py.algo.discovery.inductive.dtypes.im_ds import IMDataStructureDFG
    from pm4py.objects.process_tree.utils.generic import fold, tree_sort

    graph = _dfg(frame) if graph is None else graph
    miner = _infrequent_dfg_miner()(noise_threshold)
    tree = fold(miner.apply(IMDataStructureDFG(InductiveDFG(dfg=graph, skip=False))))
    tree_sort(tree)
    return _from_tree(tree, "imd", {"noise_threshold": noise_threshold})


def _infrequent_dfg_miner() -> type:
    """pm4py's DFG-based inductive miner (IMd) with IMf's filter-when-stuck step.

    Built on pm4py's documented extension point (InductiveMinerFramework
    subclasses); imported lazily because pm4py is a heavy import.
    """
    from pm4py.algo.discovery.inductive.dtypes.im_dfg import InductiveDFG
    from pm4py.algo.discovery.inductive.dtypes.im_ds import IMDataStructureDFG
    from pm4py.algo.discovery.inductive.fall_through.empty_traces import EmptyTracesDFG
    from pm4py.algo.discovery.inductive.variants.imd import IMD
    from pm4py.objects.dfg.obj import DFG

    class InfrequentDfgMiner(IMD):
        def __init__(self, noise_threshold: float) -> None:
            super().__init__({"multiprocessing": False})
            self.noise_threshold = noise_threshold

        def apply(self, obj: Any, parameters: Any = None, filtered: bool = False) -> Any:
            empty = EmptyTracesDFG.apply(obj, parameters=parameters)
            if empty is not None:
                return self._recurse(empty[0], empty[1], parameters)
            tree = self.apply_base_cases(obj, parameters)
            if tree is None:
                cut = self.find_cut(obj, parameters)
                if cut is not None:
                    tree = self._recurse(cut[0], cut[1], parameters=parameters)
            if tree is None and not filtered and self.noise_threshold > 0:
                dfg = obj.dfg
                kept = filter_dfg(
                    dict(dfg.graph),
                    dict(dfg.start_activities),
                    dict(dfg.end_activities),
                    self.noise_threshold,
                )
                if len(kept[0]) < len(dfg.graph) or len(kept[1]) < len(dfg.start_activities):
                    smaller = IMDataStructureDFG(
                        InductiveDFG(dfg=DFG(*kept), skip=obj.data_structure.skip)
                    )
                    tree = self.apply(smaller, parameters, filtered=True)
            if tree is None and not filtered:
                ft = self.fall_through(obj, parameters)
                tree = self._recurse(ft[0], ft[1], parameters=parameters)
            return tree

    return InfrequentDfgMiner


def _imf(frame: pd.DataFrame, noise_threshold: float) -> DiscoveredModel:
    import pm4py

    tree = pm4py.discover_process_tree_inductive(
        frame, noise_threshold=noise_threshold, multi_processing=False
    )
    return _from_tree(tree, "imf", {"noise_threshold": noise_threshold})


def _heuristics(
    frame: pd.DataFrame, dependency: float, and_threshold: float, loop_two: float
) -> DiscoveredModel:
    import pm4py

    net, im, fm = pm4py.discover_petri_net_heuristics(
        frame,
        dependency_threshold=dependency,
        and_threshold=and_threshold,
        loop_two_threshold=loop_two,
    )
    params = {
        "dependency_threshold": dependency,
        "and_threshold": and_threshold,
        "loop_two_threshold": loop_two,
    }
    return _model((net, im, fm), "heuristics", "heuristics", params, tree=None)


def _from_tree(tree: Any, variant: str, params: dict[str, float]) -> DiscoveredModel:
    import pm4py

    return _model(pm4py.convert_to_petri_net(tree), "inductive", variant, params, tree)


def _model(
    net_im_fm: tuple[Any, Any, Any],
    algorithm: Literal["inductive", "heuristics"],
    variant: str,
    params: dict[str, float],
    tree: Any,
) -> DiscoveredModel:
    from pm4py.objects.petri_net.exporter.variants.pnml import export_petri_as_string

    net, im, fm = net_im_fm
    text = str(tree) if tree is not None else None
    if text is not None and len(text) > TREE_CHARS:
        text = text[: TREE_CHARS - 3] + "..."
    model = DiscoveredModel(
        algorithm=algorithm,
        variant=variant,
        parameters=params,
        activities=sorted({t.label for t in net.transitions if t.label is not None}),
        places=len(net.places),
        transitions=len(net.transitions),
        silent_transitions=sum(t.label is None for t in net.transitions),
        arcs=len(net.arcs),
        process_tree=text,
        pnml=export_petri_as_string(net, im, fm).decode("utf-8"),
    )
    model._net = (net, im, fm)
    model._tree = tree
    return model
