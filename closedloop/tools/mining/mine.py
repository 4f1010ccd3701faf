"""The ``mine`` tool: frequency, performance, bottlenecks, rework and a discovered model.

Statistics are vectorised pandas (``closedloop.tools.mining.performance``); discovery
wraps pm4py's simplified interface: the inductive miner on the directly-follows
graph (IMd, milliseconds even on BPIC 2012) and token-based replay fitness,
replayed once per variant and weighted by the variant's frequency.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.base import read_tool
from closedloop.tools.errors import EventLogError, ToolError
from closedloop.tools.log.ingest import (
    ACTIVITY,
    CASE,
    RESOURCE,
    START,
    TIMESTAMP,
    ColumnMapping,
    load_event_log,
    raw_event_count,
    to_canonical,
)
from closedloop.tools.mining import performance as perf
from closedloop.tools.mining.performance import (
    ActivityStats,
    Bottleneck,
    CycleTimeStats,
    DfgEdge,
    Handoff,
    HandoffStats,
    ResourceWorkload,
    ReworkStats,
    SlaActivityWait,
    SlaStats,
    VariantStats,
)

__all__ = [
    "ActivityStats",
    "Bottleneck",
    "CycleTimeStats",
    "DfgEdge",
    "Handoff",
    "HandoffStats",
    "MinedLog",
    "MiningReport",
    "ProcessModelSummary",
    "ResourceWorkload",
    "ReworkStats",
    "SlaActivityWait",
    "SlaStats",
    "TimeRange",
    "VariantStats",
    "mine",
    "mine_file",
    "mine_with_tables",
]

TREE_CHARS = 2000


class ProcessModelSummary(BaseModel):
    """Size and quality of the discovered Petri net."""

    algorithm: str = "inductive miner on the directly-follows graph (IMd)"
    places: int
    transitions: int
    silent_transitions: int
    arcs: int
    fitness: float | None = Field(
        default=None, description="token-based replay log fitness 0..1 (None when not computed)"
    )
    fitting_cases_share: float | None = Field(
        default=None, description="share of the replayed cases that fit perfectly, 0..1"
    )
    fitness_case_coverage: float | None = Field(
        default=None, description="share of cases whose variants were replayed for fitness"
    )
    process_tree: str = Field(description=f"process tree, cut at {TREE_CHARS} characters")


class TimeRange(BaseModel):
    first: datetime | None = Field(description="earliest start (UTC)")
    last: datetime | None = Field(description="latest completion (UTC)")


class MiningReport(BaseModel):
    """What ``mine`` found in an event log. Durations are hours unless named ``_s``."""

    source: str = ""
    events: int = Field(description="raw events read (before start/complete pairing)")
    activity_instances: int = Field(description="rows after pairing start/complete events")
    cases: int
    has_start_times: bool = Field(
        description="False: waiting = gap between completions, processing = 0"
    )
    activities: list[ActivityStats]
    variant_count: int
    variants: list[VariantStats]
    bottleneck_threshold_hours: float
    bottlenecks: list[Bottleneck]
    rework: list[ReworkStats]
    dfg: list[DfgEdge]
    start_activities: dict[str, int]
    end_activities: dict[str, int]
    cycle_time_hours: CycleTimeStats
    model: ProcessModelSummary
    case_attributes: list[str] = Field(description="case attribute columns (case:<name>)")
    event_attributes: list[str]
    time_range: TimeRange
    warnings: list[str]
    duration_s: float
    handoffs: HandoffStats | None = Field(
        default=None, description="work passed between resources (None: no resources in the log)"
    )
    resource_workload: list[ResourceWorkload] | None = Field(
        default=None, description="per resource, busiest first (None: no resources in the log)"
    )
    sla: SlaStats | None = Field(
        default=None, description="SLA breaches (only when sla_hours given)"
    )


@read_tool
def mine(
    log: pd.DataFrame,
    bottleneck_threshold_hours: float = 2.0,
    top_variants: int = 20,
    compute_fitness: bool = True,
    fitness_budget_events: int = 5_000,
    sla_hours: float | None = None,
) -> MiningReport:
    """Mine an event log: how work flows, where it waits, what is repeated.

    Returns a MiningReport with:
    - events (raw events read), activity_instances (rows after pairing start and
      complete events), cases, variant_count, time_range (UTC);
    - activities: per activity the execution count, distinct cases, mean/median
      waiting hours (from the previous activity's completion in the same case to
      this one's start) and mean/median processing hours (start to completion);
    - bottlenecks: activities whose mean waiting is at least
      bottleneck_threshold_hours, largest total_delay_hours (summed waiting) first,
      with cases_affected (cases that waited at least the threshold there);
    - rework: activities repeated inside a case (cases_with_rework, extra_executions);
    - variants: the top_variants most frequent activity sequences with count,
      share of cases (0..1) and mean cycle time hours;
    - dfg: directly-follows edges with count and mean hours between them;
      start_activities / end_activities with case counts;
    - cycle_time_hours: mean, median, p90, max of case durations;
    - model: size of the Petri net discovered by the inductive miner and its
      token-replay fitness (0..1);
    - case_attributes / event_attributes: the other columns you can segment by;
    - handoffs: how often work passes between resources and the waiting it causes,
      with the most frequent resource pairs; resource_workload: per resource the
      activity instances, busy (processing) hours and cases;
    - sla (only when sla_hours is given): the share of cases whose cycle time
      exceeds sla_hours and the activities those cases wait longest at.
    All durations are in hours. When has_start_times is false the log only has
    completion times: waiting then includes processing and processing is 0.
    """
    return mine_with_tables(
        log,
        bottleneck_threshold_hours=bottleneck_threshold_hours,
        top_variants=top_variants,
        compute_fitness=compute_fitness,
        fitness_budget_events=fitness_budget_events,
        sla_hours=sla_hours,
    ).report


@dataclass
class MinedLog:
    """A MiningReport with the tables it was computed from (for tools that go further)."""

    report: MiningReport
    frame: pd.DataFrame  # canonical, sorted by case then completion
    times: pd.DataFrame  # performance.instance_times(frame)
    cases: pd.DataFrame  # performance.case_table(frame)


def mine_with_tables(
    log: pd.DataFrame,
    bottleneck_threshold_hours: float = 2.0,
    top_variants: int = 20,
    compute_fitness: bool = True,
    fitness_budget_events: int = 5_000,
    sla_hours: float | None = None,
) -> MinedLog:
    """``mine`` that also returns the canonical frame and its per-row and per-case tables."""
    started = time.perf_counter()
    if bottleneck_threshold_hours < 0 or top_variants < 0 or fitness_budget_events < 0:
        raise ToolError(
            "bottleneck_threshold_hours, top_variants and fitness_budget_events must be >= 0"
        )
    if sla_hours is not None and not sla_hours > 0:
        raise ToolError(f"sla_hours must be > 0 hours, got {sla_hours}")
    frame = _as_canonical(log)
    warnings = list(frame.attrs.get("warnings", []))
    has_start = bool((frame[START] != frame[TIMESTAMP]).any())
    if not has_start:
        warnings.append("no start times: waiting hours include processing; processing is 0")

    times = perf.instance_times(frame)
    cases = perf.case_table(frame)
    edges, start_acts, end_acts = perf.dfg(times)
    top, variant_counts = perf.variants(cases, top_variants)
    model = _discover(
        edges, start_acts, end_acts, variant_counts, compute_fitness, fitness_budget_events
    )
    handoffs = perf.handoffs(frame, times)
    workload = perf.resource_workload(frame, times)
    sla = None if sla_hours is None else perf.sla(times, cases, sla_hours)
    known = {CASE, ACTIVITY, TIMESTAMP, START, RESOURCE}
    others = [c for c in frame.columns if c not in known]
    report = MiningReport(
        source=str(frame.attrs.get("source", "")),
        events=raw_event_count(frame),
        activity_instances=len(frame),
        cases=len(cases),
        has_start_times=has_start,
        activities=perf.activity_stats(times),
        variant_count=len(variant_counts),
        variants=top,
        bottleneck_threshold_hours=bottleneck_threshold_hours,
        bottlenecks=perf.bottlenecks(times, bottleneck_threshold_hours),
        rework=perf.rework(frame),
        dfg=edges,
        start_activities=start_acts,
        end_activities=end_acts,
        cycle_time_hours=perf.cycle_time(cases),
        model=model,
        case_attributes=[c for c in others if c.startswith("case:")],
        event_attributes=[c for c in others if not c.startswith("case:")],
        time_range=TimeRange(first=frame[START].min(), last=frame[TIMESTAMP].max()),
        warnings=warnings,
        duration_s=round(time.perf_counter() - started, 3),
        handoffs=handoffs,
        resource_workload=workload,
        sla=sla,
    )
    return MinedLog(report=report, frame=frame, times=times, cases=cases)


def mine_file(path: str | Path, mapping: ColumnMapping | None = None, **kw: Any) -> MiningReport:
    """Load an event log file (see ``load_event_log``) and ``mine`` it."""
    return mine(load_event_log(path, mapping), **kw)


def _as_canonical(log: pd.DataFrame) -> pd.DataFrame:
    """The canonical frame, sorted; raw frames go through ``to_canonical`` first."""
    if not isinstance(log, pd.DataFrame):
        raise EventLogError(
            f"mine expects an event frame (pandas DataFrame), got {type(log).__name__}"
        )
    if log.empty:
        raise EventLogError(f"{log.attrs.get('source', 'event log')}: no events to mine")
    canonical = {CASE, ACTIVITY, TIMESTAMP, START} <= set(log.columns) and all(
        pd.api.types.is_datetime64_any_dtype(log[c]) for c in (TIMESTAMP, START)
    )
    if not canonical:
        return to_canonical(log, source=str(log.attrs.get("source", "dataframe")))
    frame = log.sort_values([CASE, TIMESTAMP], kind="stable").reset_index(drop=True)
    frame.attrs = dict(log.attrs)
    return frame


def _discover(
    edges: list[DfgEdge],
    starts: dict[str, int],
    ends: dict[str, int],
    variant_counts: pd.Series,
    compute_fitness: bool,
    budget_events: int,
) -> ProcessModelSummary:
    import pm4py
    from pm4py.objects.dfg.obj import DFG

    graph = {(e.source, e.target): e.count for e in edges}
    tree = pm4py.discover_process_tree_inductive(DFG(graph, starts, ends), multi_processing=False)
    net, im, fm = pm4py.convert_to_petri_net(tree)
    text = str(tree)
    summary = ProcessModelSummary(
        places=len(net.places),
        transitions=len(net.transitions),
        silent_transitions=sum(t.label is None for t in net.transitions),
        arcs=len(net.arcs),
        process_tree=text if len(text) <= TREE_CHARS else text[: TREE_CHARS - 3] + "...",
    )
    if compute_fitness:
        _fitness(summary, net, im, fm, variant_counts, budget_events)
    return summary


def _fitness(
    summary: ProcessModelSummary,
    net: Any,
    im: Any,
    fm: Any,
    variant_counts: pd.Series,
    budget_events: int,
) -> None:
    """Token-based replay once per variant, weighted by its cases.

    Replays the most frequent variants until their events would exceed
    ``budget_events`` (deterministic cost cap; replay of looping models is slow),
    and records which share of the cases they cover.
    """
    from pm4py.algo.conformance.tokenreplay.variants import token_replay

    ranked = variant_counts.sort_values(ascending=False, kind="stable")
    variants: list[tuple[str, ...]] = []
    counts: list[int] = []
    spent = 0
    for key, n in ranked.items():
        acts = tuple(str(key).split(perf.SEP))
        if variants and spent + len(acts) > budget_events:
            break
        variants.append(acts)
        counts.append(int(n))
        spent += len(acts)
    results = token_replay.apply_variants_list(
        list(zip(variants, counts, strict=True)),
        net,
        im,
        fm,
        parameters={"show_progress_bar": False},
    )
    tot = {
        k: sum(w * r[k] for w, r in zip(counts, results, strict=True))
        for k in ("missing_tokens", "consumed_tokens", "remaining_tokens", "produced_tokens")
    }
    if tot["consumed_tokens"] and tot["produced_tokens"]:
        summary.fitness = round(
            0.5 * (1 - tot["missing_tokens"] / tot["consumed_tokens"])
            + 0.5 * (1 - tot["remaining_tokens"] / tot["produced_tokens"]),
            4,
        )
    covered = sum(counts)
    fit = sum(w for w, r in zip(counts, results, strict=True) if r["trace_is_fit"])
    summary.fitting_cases_share = round(fit / covered, 4) if covered else None
    summary.fitness_case_coverage = round(covered / int(variant_counts.sum()), 4)
