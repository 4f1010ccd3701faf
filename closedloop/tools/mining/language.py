"""Which traces a Petri net accepts, and how two models' behaviours compare.

Token-based replay (``conformance``) guesses a path through silent transitions
and can report a trace as unfit that the model does accept (on the synthetic
a42 log it scores the true model 0.973). ``accepts`` decides membership
exactly: it tracks every marking the net can be in after each event, closing
over silent transitions, like a non-deterministic automaton.

``compare_models`` judges a discovered model against a reference model (the
true model of a synthetic log, or the model an analyst was given) by their
behaviour rather than by a finite log: recall is how well the candidate fits
traces played out of the reference, precision how well the reference fits
the candidate's traces. ETConformance precision on a log counts every
interleaving the log happens not to show as imprecision, so even the true
model of a log with concurrency scores low there (0.60 on a32); this measure
gives 1.0 to any model with the reference's language.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ToolError

__all__ = ["CompiledNet", "ModelComparison", "compare_models", "frame_from_traces", "read_traces"]

Marking = tuple[int, ...]
DEFAULT_MAX_STATES = 200_000
EXAMPLES = 5


def read_traces(path: str | Path) -> list[tuple[str, ...]]:
    """The traces of an XES log as activity sequences, in file order.

    For logs that only order events (synthetic logs played out of a model carry
    no timestamps and may reuse one case name), which ``load_event_log`` refuses.
    The file passes the same XML safety check first.
    """
    import pm4py

    from closedloop.tools.log.xes import check_xes

    check_xes(Path(path))
    log = pm4py.read_xes(str(path), return_legacy_log_object=True)
    return [tuple(str(e["concept:name"]) for e in trace) for trace in log]


def frame_from_traces(traces: Iterable[Sequence[str]], source: str = "traces") -> pd.DataFrame:
    """A canonical event frame from activity sequences: case ``c00000``, ``c00001``, ...;
    events a minute apart from 2020-01-01 UTC (only their order means anything)."""
    from closedloop.tools.log.ingest import to_canonical

    base = pd.Timestamp("2020-01-01", tz="UTC")
    rows = [
        {"case_id": f"c{i:05d}", "activity": act, "timestamp": base + pd.Timedelta(minutes=j)}
        for i, trace in enumerate(traces)
        for j, act in enumerate(trace)
    ]
    if not rows:
        raise ToolError(f"{source}: no events")
    return to_canonical(pd.DataFrame(rows), source=source)


class CompiledNet:
    """A pm4py Petri net as numbered places and transitions, with exact trace membership."""

    def __init__(self, net: Any, im: Any, fm: Any, max_states: int = DEFAULT_MAX_STATES) -> None:
        places = sorted(net.places, key=lambda p: str(p.name))
        number = {p: i for i, p in enumerate(places)}
        transitions = sorted(net.transitions, key=lambda t: (str(t.name), str(t.label)))
        self.pre = [tuple((number[a.source], a.weight) for a in t.in_arcs) for t in transitions]
        self.post = [tuple((number[a.target], a.weight) for a in t.out_arcs) for t in transitions]
        self.label: list[str | None] = [t.label for t in transitions]
        self.silent = [i for i, label in enumerate(self.label) if label is None]
        self.by_label: dict[str, list[int]] = {}
        for i, label in enumerate(self.label):
            if label is not None:
                self.by_label.setdefault(label, []).append(i)
        self.initial = self._marking(im, number, len(places))
        self.final = self._marking(fm, number, len(places))
        self.max_states = max_states
        self.visited = 0  # markings visited by all searches so far (a measure of work done)
        self._after: dict[tuple[str, ...], frozenset[Marking]] = {}
        self._silent_for: dict[str, dict[int, list[int]]] = {}
        self._to_final = self._consumers(self._feeding({p for p, n in enumerate(self.final) if n}))

    @staticmethod
    def _marking(marking: Any, number: dict[Any, int], size: int) -> Marking:
        tokens = [0] * size
        for place, count in marking.items():
            tokens[number[place]] = int(count)
        return tuple(tokens)

    @property
    def alphabet(self) -> set[str]:
        return set(self.by_label)

    def enabled(self, marking: Marking, candidates: Iterable[int]) -> list[int]:
        return [t for t in candidates if all(marking[p] >= w for p, w in self.pre[t])]

    def fire(self, marking: Marking, t: int) -> Marking:
        tokens = list(marking)
        for p, w in self.pre[t]:
            tokens[p] -= w
        for p, w in self.post[t]:
            tokens[p] += w
        return tuple(tokens)

    def _feeding(self, goal: set[int]) -> list[int]:
        """Silent transitions that can move a token towards the places ``goal``.

        A place feeds the goal if it is in it or in the preset of a silent
        transition that feeds it; only silent transitions putting a token on a
        feeding place can help (the others may wait: firing them later is
        still possible). This keeps the search from interleaving the silent
        steps of unrelated parallel branches.
        """
        cone, relevant, changed = set(goal), set(), True
        while changed:
            changed = False
            for t in self.silent:
                if t not in relevant and any(p in cone for p, _ in self.post[t]):
                    relevant.add(t)
                    cone.update(p for p, _ in self.pre[t])
                    changed = True
        return sorted(relevant)

    def _consumers(self, transitions: list[int]) -> dict[int, list[int]]:
        """place -> the given transitions that take a token from it (enabledness is then
        checked only for transitions next to marked places)."""
        consumers: dict[int, list[int]] = {}
        for t in transitions:
            for p, _ in self.pre[t]:
                consumers.setdefault(p, []).append(t)
        return consumers

    def _enabled_near(self, marking: Marking, consumers: dict[int, list[int]]) -> list[int]:
        candidates = {t for p, n in enumerate(marking) if n for t in consumers.get(p, ())}
        return self.enabled(marking, sorted(candidates))

    def _towards(self, markings: Iterable[Marking], silent: dict[int, list[int]]) -> set[Marking]:
        """``markings`` and every marking reachable from them by the ``silent`` transitions
        (given as ``_consumers``)."""
        seen = set(markings)
        stack = list(seen)
        while stack:
            current = stack.pop()
            for t in self._enabled_near(current, silent):
                nxt = self.fire(current, t)
                if nxt not in seen:
                    if len(seen) >= self.max_states:
                        raise ToolError(
                            f"the net reaches more than {self.max_states} markings through "
                            "silent transitions alone (unbounded or very concurrent net)"
                        )
                    seen.add(nxt)
                    stack.append(nxt)
        self.visited += len(seen)
        return seen

    def _silent_towards(self, label: str) -> dict[int, list[int]]:
        """The silent transitions that can help enable ``label`` (as ``_consumers``)."""
        silent = self._silent_for.get(label)
        if silent is None:
            goal = {p for t in self.by_label.get(label, []) for p, _ in self.pre[t]}
            silent = self._silent_for[label] = self._consumers(self._feeding(goal))
        return silent

    def markings_after(self, prefix: Sequence[str]) -> frozenset[Marking]:
        """The markings right after the net fires the last event of ``prefix`` (silent
        transitions not yet needed left unfired); empty: the prefix is impossible."""
        key = tuple(prefix)
        known = self._after.get(key)
        if known is None:
            before = self.markings_after(key[:-1]) if key else frozenset()
            if not key:
                known = frozenset([self.initial])
            elif not before or key[-1] not in self.by_label:
                known = frozenset()
            else:
                visible = self.by_label[key[-1]]
                known = frozenset(
                    self.fire(m, t)
                    for m in self._towards(before, self._silent_towards(key[-1]))
                    for t in self.enabled(m, visible)
                )
            self._after[key] = known
        return known

    def accepts(self, trace: Sequence[str]) -> bool:
        """Whether the net can replay ``trace`` from the initial to exactly the final marking."""
        after = self.markings_after(trace)
        return bool(after) and self.final in self._towards(after, self._to_final)

    def play_out(self, count: int, seed: int = 0, max_length: int | None = None) -> list[tuple]:
        """``count`` random traces: from the initial marking fire a uniformly chosen enabled
        transition until the final marking; walks that deadlock or exceed ``max_length``
        events are dropped (at most 10 * count attempts)."""
        rng = np.random.default_rng(seed)
        limit = max_length or 20 * len(self.label) + 50
        everything = range(len(self.label))
        traces: list[tuple] = []
        for _ in range(10 * count):
            if len(traces) >= count:
                break
            marking, trace = self.initial, []
            for _ in range(limit * 4):
                if marking == self.final:
                    traces.append(tuple(trace))
                    break
                enabled = self.enabled(marking, everything)
                if not enabled or len(trace) > limit:
                    break
                t = enabled[int(rng.integers(len(enabled)))]
                marking = self.fire(marking, t)
                if self.label[t] is not None:
                    trace.append(self.label[t])
        return traces


class ModelComparison(BaseModel):
    """How the behaviour of a candidate model compares with a reference model."""

    traces: int = Field(description="traces played out of each model")
    recall: float = Field(
        description="fitness of the reference's traces replayed on the candidate (token replay, "
        "accepted traces counted as fitting)"
    )
    precision: float = Field(
        description="fitness of the candidate's traces replayed on the reference"
    )
    f1: float
    recall_exact: float = Field(description="share of the reference's traces the candidate accepts")
    precision_exact: float = Field(
        description="share of the candidate's traces the reference accepts"
    )
    only_in_reference: list[list[str]] = Field(
        description=f"up to {EXAMPLES} reference traces the candidate rejects"
    )
    only_in_candidate: list[list[str]] = Field(
        description=f"up to {EXAMPLES} candidate traces the reference rejects"
    )
    activities_only_in_reference: list[str]
    activities_only_in_candidate: list[str]


@read_tool
def compare_models(
    candidate: tuple[Any, Any, Any],
    reference: tuple[Any, Any, Any],
    traces: int = 2000,
    seed: int = 0,
) -> ModelComparison:
    """Compare two Petri nets ``(net, initial_marking, final_marking)`` by their behaviour.

    Plays ``traces`` random traces out of each model and replays them on the
    other. recall: how well the candidate fits the reference's traces;
    precision: how well the reference fits the candidate's traces (both
    token-replay fitness, 0..1, so a trace off by one step still counts
    mostly), their F1, the shares accepted exactly, and example traces only
    one side accepts.
    """
    from closedloop.tools.mining.conformance import replay_conformance

    if traces < 1:
        raise ToolError(f"traces must be >= 1, got {traces}")
    found, truth = CompiledNet(*candidate), CompiledNet(*reference)
    from_truth = truth.play_out(traces, seed)
    from_found = found.play_out(traces, seed + 1)
    if not from_truth or not from_found:
        side = "reference" if not from_truth else "candidate"
        raise ToolError(f"the {side} model reaches its final marking on no random walk")
    recall = replay_conformance(frame_from_traces(from_truth), *candidate, seed=seed).fitness
    precision = replay_conformance(frame_from_traces(from_found), *reference, seed=seed).fitness
    missed = [t for t in from_truth if not found.accepts(t)]
    extra = [t for t in from_found if not truth.accepts(t)]
    f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
    return ModelComparison(
        traces=traces,
        recall=round(recall, 4),
        precision=round(precision, 4),
        f1=round(f1, 4),
        recall_exact=round(1 - len(missed) / len(from_truth), 4),
        precision_exact=round(1 - len(extra) / len(from_found), 4),
        only_in_reference=[list(t) for t in dict.fromkeys(missed)][:EXAMPLES],
        only_in_candidate=[list(t) for t in dict.fromkeys(extra)][:EXAMPLES],
        activities_only_in_reference=sorted(truth.alphabet - found.alphabet),
        activities_only_in_candidate=sorted(found.alphabet - truth.alphabet),
    )
