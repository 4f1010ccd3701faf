"""The ``mine`` tool: frequency, performance, bottlenecks, rework and a discovered model.

Statistics are vectorised pandas (``closedloop.tools.mining.performance``). The
model is the one every surface reports: ``discovery.discover_from_frame`` with
``discover_petri_net``'s defaults (automatic selection on logs within the IMf
budget, IMd at noise 0.2 above), measured by ``replay.replay_conformance``
(token-replay fitness, escaping-edges precision, F1) with a bounded replay
budget (``max_replay_steps``: beyond it a seeded random sample of cases is
replayed). ``diagnose`` builds on this and never discovers again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from closedloop.settings import get_settings
from closedloop.tools.base import read_tool
from closedloop.tools.errors import ToolError
from closedloop.tools.log import ColumnMapping, as_canonical, event_counts, load_event_log
from closedloop.tools.log.columns import ACTIVITY, CASE, CASE_PREFIX, RESOURCE, START, TIMESTAMP
from closedloop.tools.mining import performance as perf
from closedloop.tools.mining import workload as work
from closedloop.tools.mining.conformance import model_name
from closedloop.tools.mining.discovery import (
    TREE_CHARS,
    DiscoveredModel,
    discover_from_frame,
    miner_options,
    petri_net,
)
from closedloop.tools.mining.performance import (
    ActivityStats,
    Bottleneck,
    CycleTimeStats,
    DfgEdge,
    ReworkStats,
    VariantStats,
)
from closedloop.tools.mining.queues import ExcludedWait, rank_bottlenecks
from closedloop.tools.mining.replay import (
    DEFAULT_MAX_REPLAY_STEPS,
    ConformanceReport,
    replay_conformance,
)
from closedloop.tools.mining.workload import (
    Handoff,
    HandoffStats,
    ResourceWorkload,
    SlaActivityWait,
    SlaStats,
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
    "resolve_threshold",
]


class ProcessModelSummary(BaseModel):
    """The discovered Petri net: size, settings and how well it describes the log."""

    algorithm: str = Field(
        description="miner and settings, e.g. 'inductive miner (imf, noise_threshold=0.2)'"
    )
    variant: str = Field(default="", description="imd, imf or heuristics")
    parameters: dict[str, float] = Field(default_factory=dict, description="miner thresholds")
    places: int
    transitions: int
    silent_transitions: int
    arcs: int
    fitness: float | None = Field(
        default=None, description="token-based replay log fitness 0..1 (None when not computed)"
    )
    precision: float | None = Field(
        default=None, description="escaping-edges precision 0..1 (None when not computed)"
    )
    f1: float | None = Field(default=None, description="harmonic mean of fitness and precision")
    exact: bool | None = Field(
        default=None, description="False: fitness/precision estimated on a sample of cases"
    )
    fitting_cases_share: float | None = Field(
        default=None, description="share of the replayed cases that fit perfectly, 0..1"
    )
    fitness_case_coverage: float | None = Field(
        default=None, description="share of cases whose variants were replayed for fitness"
    )
    process_tree: str = Field(description=f"process tree, cut at {TREE_CHARS} characters")
    missing_activities: list[str] = Field(
        default_factory=list, description="activities of the log the model leaves out"
    )

    @classmethod
    def of(
        cls, model: DiscoveredModel, conformance: ConformanceReport | None
    ) -> ProcessModelSummary:
        """The summary of a discovered model and (when measured) its conformance on the log."""
        summary = cls(
            algorithm=model_name(model).removeprefix("discovered model: "),
            variant=model.variant,
            parameters=model.parameters,
            places=model.places,
            transitions=model.transitions,
            silent_transitions=model.silent_transitions,
            arcs=model.arcs,
            process_tree=model.process_tree or "",
            missing_activities=model.missing_activities,
        )
        if conformance is not None:
            summary.fitness = conformance.fitness
            summary.precision = conformance.precision
            summary.f1 = conformance.f1
            summary.exact = conformance.exact
            summary.fitting_cases_share = conformance.fitting_cases_share
            summary.fitness_case_coverage = conformance.sample_cases_share
        return summary


class TimeRange(BaseModel):
    """First start and last completion of the log."""

    first: datetime | None = Field(description="earliest start (UTC)")
    last: datetime | None = Field(description="latest completion (UTC)")


class MiningReport(BaseModel):
    """What ``mine`` found in an event log. Durations are hours unless named ``_s``."""

    source: str = ""
    events: int = Field(
        description="events analysed: events read minus those dropped (each lifecycle "
        "transition is one event; see events_dropped)"
    )
    activity_instances: int = Field(description="rows after pairing start/complete events")
    events_read: int = Field(default=0, description="events in the source before any cleaning")
    events_dropped: dict[str, int] = Field(
        default_factory=dict, description="events not analysed, by reason (duplicates, ...)"
    )
    cases: int
    has_start_times: bool = Field(
        description="False: waiting = gap between completions, processing = 0"
    )
    activities: list[ActivityStats]
    variant_count: int
    variants: list[VariantStats]
    bottleneck_threshold_hours: float = Field(
        description="mean waiting a bottleneck reaches (relative rule: the log's mean waiting)"
    )
    bottleneck_rule: str = Field(default="", description="how bottlenecks were chosen")
    bottlenecks: list[Bottleneck]
    bottlenecks_excluded: list[ExcludedWait] = Field(
        default_factory=list,
        description="long waits not ranked: too few cases, no resource, planned date, "
        "or independent of workload",
    )
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
    bottleneck_threshold_hours: float | None = None,
    top_variants: int = 20,
    compute_fitness: bool = True,
    max_replay_steps: int = DEFAULT_MAX_REPLAY_STEPS,
    sla_hours: float | None = None,
    seed: int = 0,
) -> MiningReport:
    """Mine an event log: how work flows, where it waits, what is repeated.

    Returns a MiningReport with:
    - events (events analysed: read minus dropped), events_read, events_dropped
      (by reason), activity_instances (rows after pairing start and complete
      events), cases, variant_count, time_range (UTC);
    - activities: per activity the execution count, distinct cases, mean/median
      waiting hours (from the previous activity's completion in the same case to
      this one's start) and mean/median processing hours (start to completion);
    - bottlenecks: queues, largest total_delay_hours (summed waiting) first, with
      cases_affected (cases that waited at least the threshold there). With
      bottleneck_threshold_hours (or CLOSEDLOOP_BOTTLENECK_HOURS set) an activity
      qualifies when its mean waiting reaches it; by default (None) when it holds
      >= 5 % of all waiting and waits longer than the log's mean. Either way it
      must wait in enough cases, be performed by resources (when the log has
      them), not start on a planned date and wait longer when more cases wait
      ahead; the rest are in bottlenecks_excluded with the reason
      (bottleneck_rule says which rule ran);
    - rework: activities repeated inside a case (cases_with_rework, extra_executions);
    - variants: the top_variants most frequent activity sequences with count,
      share of cases (0..1) and mean cycle time hours;
    - dfg: directly-follows edges with count and mean hours between them;
      start_activities / end_activities with case counts;
    - cycle_time_hours: mean, median, p90, max of case durations;
    - model: the Petri net ``discover_petri_net`` finds with its defaults, its
      size and (compute_fitness) its token-replay fitness, precision and F1
      (0..1; estimated on a seeded sample of cases when replay would take more
      than max_replay_steps steps);
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
        max_replay_steps=max_replay_steps,
        sla_hours=sla_hours,
        seed=seed,
    ).report


@dataclass
class MinedLog:
    """A MiningReport with what it was computed from (for tools that go further)."""

    report: MiningReport
    frame: pd.DataFrame  # canonical, sorted by case then completion
    times: pd.DataFrame  # performance.instance_times(frame)
    cases: pd.DataFrame  # performance.case_table(frame)
    discovered: DiscoveredModel  # the model behind report.model (pm4py objects attached)
    conformance: ConformanceReport | None  # its conformance (None: compute_fitness=False)
    timings_s: dict[str, float] = field(default_factory=dict)  # seconds per stage


def resolve_threshold(bottleneck_threshold_hours: float | None) -> float | None:
    """The absolute bottleneck threshold to use: the given hours; for None the configured
    one when it is set (env CLOSEDLOOP_BOTTLENECK_HOURS), else None: the rule relative to
    the log (``queues.rank_bottlenecks``)."""
    if bottleneck_threshold_hours is None:
        settings = get_settings()
        if "bottleneck_threshold_hours" not in settings.model_fields_set:
            return None
        return float(settings.bottleneck_threshold_hours)
    return float(bottleneck_threshold_hours)


def mine_with_tables(
    log: pd.DataFrame,
    bottleneck_threshold_hours: float | None = None,
    top_variants: int = 20,
    compute_fitness: bool = True,
    max_replay_steps: int = DEFAULT_MAX_REPLAY_STEPS,
    sla_hours: float | None = None,
    seed: int = 0,
    max_deviations: int = 20,
    miner: str = "auto",
    noise_threshold: float | None = None,
) -> MinedLog:
    """``mine`` that also returns the canonical frame, its tables, the model and its conformance.

    ``max_deviations`` caps the deviating sequences kept in ``MinedLog.conformance``;
    ``miner`` / ``noise_threshold`` choose the discovery (``discovery.miner_options``).
    """
    options = miner_options(miner, noise_threshold)
    started = time.perf_counter()
    threshold = resolve_threshold(bottleneck_threshold_hours)
    if (threshold is not None and threshold < 0) or top_variants < 0:
        raise ToolError("bottleneck_threshold_hours and top_variants must be >= 0")
    if max_replay_steps < 1 or max_deviations < 0:
        raise ToolError("max_replay_steps must be >= 1 and max_deviations >= 0")
    if sla_hours is not None and not sla_hours > 0:
        raise ToolError(f"sla_hours must be > 0 hours, got {sla_hours}")
    frame = as_canonical(log, "mine")
    warnings = list(frame.attrs.get("warnings", []))
    has_start = bool((frame[START] != frame[TIMESTAMP]).any())
    if not has_start:
        warnings.append("no start times: waiting hours include processing; processing is 0")

    times = perf.instance_times(frame)
    cases = perf.case_table(frame)
    edges, start_acts, end_acts = perf.dfg(times)
    top, variant_counts = perf.variants(cases, top_variants)
    handoffs = work.handoffs(frame, times)
    workload = work.resource_workload(frame, times)
    sla = None if sla_hours is None else work.sla(times, cases, sla_hours)
    timings = {"mine": round(time.perf_counter() - started, 3)}

    t = time.perf_counter()
    discovered = discover_from_frame(frame, cases, **options)
    timings["discover"] = round(time.perf_counter() - t, 3)
    warnings += [f"discovered model: {note}" for note in discovered.notes]
    ranking = rank_bottlenecks(frame, times, threshold)
    conformance = None
    if compute_fitness:
        t = time.perf_counter()
        conformance = replay_conformance(
            frame,
            *petri_net(discovered),
            model_name(discovered),
            seed=seed,
            max_replay_steps=max_replay_steps,
            max_deviations=max_deviations,
            cases=cases,
        )
        timings["conformance_discovered"] = round(time.perf_counter() - t, 3)

    counts = event_counts(frame)
    known = {CASE, ACTIVITY, TIMESTAMP, START, RESOURCE}
    others = [c for c in frame.columns if c not in known]
    report = MiningReport(
        source=str(frame.attrs.get("source", "")),
        events=counts.events,
        activity_instances=len(frame),
        events_read=counts.events_read,
        events_dropped=counts.dropped,
        cases=len(cases),
        has_start_times=has_start,
        activities=perf.activity_stats(times),
        variant_count=len(variant_counts),
        variants=top,
        bottleneck_threshold_hours=ranking.threshold_hours,
        bottleneck_rule=ranking.rule,
        bottlenecks=ranking.bottlenecks,
        bottlenecks_excluded=ranking.excluded,
        rework=perf.rework(frame),
        dfg=edges,
        start_activities=start_acts,
        end_activities=end_acts,
        cycle_time_hours=perf.cycle_time(cases),
        model=ProcessModelSummary.of(discovered, conformance),
        case_attributes=[c for c in others if c.startswith(CASE_PREFIX)],
        event_attributes=[c for c in others if not c.startswith(CASE_PREFIX)],
        time_range=TimeRange(first=frame[START].min(), last=frame[TIMESTAMP].max()),
        warnings=warnings,
        duration_s=round(time.perf_counter() - started, 3),
        handoffs=handoffs,
        resource_workload=workload,
        sla=sla,
    )
    return MinedLog(
        report=report,
        frame=frame,
        times=times,
        cases=cases,
        discovered=discovered,
        conformance=conformance,
        timings_s=timings,
    )


def mine_file(path: str | Path, mapping: ColumnMapping | None = None, **kw: Any) -> MiningReport:
    """Load an event log file (see ``load_event_log``) and ``mine`` it."""
    return mine(load_event_log(path, mapping), **kw)
