"""How two models' behaviours compare, and logs given as bare activity sequences.

``compare_models`` judges a discovered model against a reference model (the
true model of a synthetic log, or the model an analyst was given) by their
behaviour rather than by a finite log: recall is how well the candidate fits
traces played out of the reference, precision how well the reference fits
the candidate's traces. ETConformance precision on a log counts every
interleaving the log happens not to show as imprecision, so even the true
model of a log with concurrency scores low there (0.60 on a32); this measure
gives 1.0 to any model with the reference's language. Exact membership
(``CompiledNet``) lives in ``petri``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ToolError
from closedloop.tools.log import check_xes, to_canonical
from closedloop.tools.log.columns import ACTIVITY
from closedloop.tools.mining.petri import CompiledNet
from closedloop.tools.mining.replay import replay_conformance

__all__ = ["CompiledNet", "ModelComparison", "compare_models", "frame_from_traces", "read_traces"]

EXAMPLES = 5


def read_traces(path: str | Path) -> list[tuple[str, ...]]:
    """The traces of an XES log as activity sequences, in file order.

    For logs that only order events (synthetic logs played out of a model carry
    no timestamps and may reuse one case name), which ``load_event_log`` refuses.
    The file passes the same XML safety check first.
    """
    import pm4py  # heavy import, only when reading traces

    check_xes(Path(path))
    log = pm4py.read_xes(str(path), return_legacy_log_object=True)
    return [tuple(str(e[ACTIVITY]) for e in trace) for trace in log]


def frame_from_traces(traces: Iterable[Sequence[str]], source: str = "traces") -> pd.DataFrame:
    """A canonical event frame from activity sequences: case ``c00000``, ``c00001``, ...;
    events a minute apart from 2020-01-01 UTC (only their order means anything)."""
    base = pd.Timestamp("2020-01-01", tz="UTC")
    rows = [
        {"case_id": f"c{i:05d}", "activity": act, "timestamp": base + pd.Timedelta(minutes=j)}
        for i, trace in enumerate(traces)
        for j, act in enumerate(trace)
    ]
    if not rows:
        raise ToolError(f"{source}: no events")
    return to_canonical(pd.DataFrame(rows), source=source)


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
