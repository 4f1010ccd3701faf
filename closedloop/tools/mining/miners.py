"""The miners behind ``discovery``: IMd with IMf's noise filter, IMf, heuristics, and the model.

- ``imd_model``: pm4py's DFG-based inductive miner with IMf's filter-when-stuck
  step (``filter_dfg``; see ``discovery``'s module docstring);
- ``imf_model``: pm4py's log-based infrequent inductive miner;
- ``heuristics_model``: pm4py's heuristics miner;
- ``DiscoveredModel``: what any of them found (size, settings, PNML), with the
  pm4py objects attached (``petri_net``, ``process_tree``).
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, Field, PrivateAttr

from closedloop.tools.log.columns import ACTIVITY, CASE, TIMESTAMP
from closedloop.tools.log.pm4pylazy import submodule
from closedloop.tools.mining import performance as perf

__all__ = [
    "TREE_CHARS",
    "CandidateScore",
    "DiscoveredModel",
    "dfg_object",
    "filter_dfg",
    "heuristics_model",
    "imd_model",
    "imf_model",
    "petri_net",
    "process_tree",
]

TREE_CHARS = 2000


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
    missing_activities: list[str] = Field(
        default_factory=list,
        description="activities of the log the model leaves out (noise filter); shown, never silent",
    )
    notes: list[str] = Field(default_factory=list, description="what discovery changed, and why")

    _net: tuple[Any, Any, Any] | None = PrivateAttr(default=None)
    _tree: Any = PrivateAttr(default=None)


def petri_net(model: DiscoveredModel) -> tuple[Any, Any, Any]:
    """The pm4py ``(net, initial_marking, final_marking)`` of a discovered model."""
    if model._net is None:
        pnml = submodule("objects.petri_net.importer.variants.pnml")
        model._net = pnml.import_net_from_string(model.pnml.encode("utf-8"))
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
    """IMf-style noise filter on a directly-follows graph (see ``discovery``'s docstring).

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


def dfg_object(frame: pd.DataFrame) -> Any:
    """pm4py's DFG object of a canonical frame (counts, start and end activities)."""
    edges, starts, ends = perf.dfg(perf.instance_times(frame))
    return submodule("objects.dfg.obj").DFG(
        {(e.source, e.target): e.count for e in edges}, starts, ends
    )


def imd_model(frame: pd.DataFrame, noise_threshold: float, graph: Any = None) -> DiscoveredModel:
    """IMd with the filter-when-stuck step at ``noise_threshold`` (``graph``: a ``dfg_object``)."""
    InductiveDFG = submodule("algo.discovery.inductive.dtypes.im_dfg").InductiveDFG
    IMDataStructureDFG = submodule("algo.discovery.inductive.dtypes.im_ds").IMDataStructureDFG
    generic = submodule("objects.process_tree.utils.generic")

    graph = dfg_object(frame) if graph is None else graph
    miner = _infrequent_dfg_miner()(noise_threshold)
    tree = generic.fold(miner.apply(IMDataStructureDFG(InductiveDFG(dfg=graph, skip=False))))
    generic.tree_sort(tree)
    return _from_tree(tree, "imd", {"noise_threshold": noise_threshold})


def _infrequent_dfg_miner() -> type:
    """pm4py's DFG-based inductive miner (IMd) with IMf's filter-when-stuck step.

    Built on pm4py's documented extension point (InductiveMinerFramework
    subclasses); imported lazily because pm4py is a heavy import.
    """
    InductiveDFG = submodule("algo.discovery.inductive.dtypes.im_dfg").InductiveDFG
    IMDataStructureDFG = submodule("algo.discovery.inductive.dtypes.im_ds").IMDataStructureDFG
    EmptyTracesDFG = submodule("algo.discovery.inductive.fall_through.empty_traces").EmptyTracesDFG
    IMD = submodule("algo.discovery.inductive.variants.imd").IMD
    DFG = submodule("objects.dfg.obj").DFG

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


def imf_model(frame: pd.DataFrame, noise_threshold: float) -> DiscoveredModel:
    """pm4py's log-based infrequent inductive miner (IMf) on the frame's case/activity/time.

    As ``pm4py.discover_process_tree_inductive`` (plain IM at noise 0), without
    pm4py's package start-up (``pm4pylazy``).
    """
    keys = submodule("util.constants")
    inductive = submodule("algo.discovery.inductive.algorithm")
    parameters = {
        keys.PARAMETER_CONSTANT_ACTIVITY_KEY: ACTIVITY,
        keys.PARAMETER_CONSTANT_ATTRIBUTE_KEY: ACTIVITY,
        keys.PARAMETER_CONSTANT_TIMESTAMP_KEY: TIMESTAMP,
        keys.PARAMETER_CONSTANT_CASEID_KEY: CASE,
        "noise_threshold": noise_threshold,
        "multiprocessing": False,
        "disable_fallthroughs": False,
    }
    variant = inductive.Variants.IMf if noise_threshold > 0 else inductive.Variants.IM
    tree = inductive.apply(frame, variant=variant, parameters=parameters)
    return _from_tree(tree, "imf", {"noise_threshold": noise_threshold})


def heuristics_model(
    frame: pd.DataFrame, dependency: float, and_threshold: float, loop_two: float
) -> DiscoveredModel:
    """pm4py's heuristics miner with the given thresholds (not guaranteed sound)."""
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
    converter = submodule("objects.conversion.process_tree.converter")
    return _model(converter.apply(tree), "inductive", variant, params, tree)


def _model(
    net_im_fm: tuple[Any, Any, Any],
    algorithm: Literal["inductive", "heuristics"],
    variant: str,
    params: dict[str, float],
    tree: Any,
) -> DiscoveredModel:
    export_petri_as_string = submodule(
        "objects.petri_net.exporter.variants.pnml"
    ).export_petri_as_string
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
