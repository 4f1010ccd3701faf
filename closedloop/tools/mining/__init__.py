"""The ``mining`` room: from a canonical event frame to statistics, models and diagnoses.

Public API (import from here). Layers, each importing only those below it:
``performance`` / ``workload`` (statistics) and ``petri`` (exact membership) <- ``tokenreplay``
(replay engine) <- ``replay`` (fitness, precision, deviations) <- ``miners`` <-
``discovery`` <- ``conformance`` / ``language`` <- ``mine`` <- ``diagnose``
(+ ``rootcause``); ``export`` and ``visual`` draw what they found; ``opportunities`` <-
``insights`` turn a report's findings into scored insights for triage; ``queues`` ranks
bottlenecks that are queues; ``bpmntidy`` and ``treepaths`` help ``export`` and ``rootcause``.
"""

from __future__ import annotations

from closedloop.tools.mining.conformance import (
    DiscoveredNet,
    check_conformance,
    discovered_net,
    load_reference_model,
    model_name,
)
from closedloop.tools.mining.diagnose import DiagnosisReport, diagnose, diagnose_file
from closedloop.tools.mining.discovery import (
    DEFAULT_NOISE_THRESHOLD,
    IMF_BUDGET_EVENTS,
    MINERS,
    SELECTION_GRID,
    CandidateScore,
    DfgModel,
    DiscoveredModel,
    TimedDfgEdge,
    discover_dfg,
    discover_from_frame,
    discover_petri_net,
    filter_dfg,
    miner_options,
    petri_net,
    process_tree,
)
from closedloop.tools.mining.export import bpmn_xml, write_bpmn, write_models, write_pnml
from closedloop.tools.mining.insights import ScoredInsight, insights_from_report
from closedloop.tools.mining.language import (
    ModelComparison,
    compare_models,
    frame_from_traces,
    read_traces,
)
from closedloop.tools.mining.mine import (
    MinedLog,
    MiningReport,
    ProcessModelSummary,
    TimeRange,
    mine,
    mine_file,
    mine_with_tables,
    resolve_threshold,
)
from closedloop.tools.mining.opportunities import (
    InsightScore,
    Segment,
    fingerprint,
    rescore_insight,
    score_insight,
    segment_profile,
)
from closedloop.tools.mining.performance import (
    ActivityStats,
    Bottleneck,
    CycleTimeStats,
    DfgEdge,
    ReworkStats,
    VariantStats,
)
from closedloop.tools.mining.petri import CompiledNet
from closedloop.tools.mining.queues import BottleneckRanking, ExcludedWait, rank_bottlenecks
from closedloop.tools.mining.replay import (
    DEFAULT_MAX_REPLAY_STEPS,
    CaseDeviation,
    ConformanceReport,
    replay_conformance,
)
from closedloop.tools.mining.rootcause import (
    RootCauseReport,
    RootCauseRule,
    case_features,
    explain_target,
    root_causes,
)
from closedloop.tools.mining.visual import (
    process_map_html,
    render_process_map,
    write_process_map,
)
from closedloop.tools.mining.workload import (
    Handoff,
    HandoffStats,
    ResourceWorkload,
    SlaActivityWait,
    SlaStats,
)

__all__ = [
    "DEFAULT_MAX_REPLAY_STEPS",
    "DEFAULT_NOISE_THRESHOLD",
    "IMF_BUDGET_EVENTS",
    "MINERS",
    "SELECTION_GRID",
    "ActivityStats",
    "Bottleneck",
    "BottleneckRanking",
    "CandidateScore",
    "CaseDeviation",
    "CompiledNet",
    "ConformanceReport",
    "CycleTimeStats",
    "DfgEdge",
    "DfgModel",
    "DiagnosisReport",
    "DiscoveredModel",
    "DiscoveredNet",
    "ExcludedWait",
    "Handoff",
    "HandoffStats",
    "InsightScore",
    "MinedLog",
    "MiningReport",
    "ModelComparison",
    "ProcessModelSummary",
    "ResourceWorkload",
    "ReworkStats",
    "RootCauseReport",
    "RootCauseRule",
    "ScoredInsight",
    "Segment",
    "SlaActivityWait",
    "SlaStats",
    "TimeRange",
    "TimedDfgEdge",
    "VariantStats",
    "bpmn_xml",
    "case_features",
    "check_conformance",
    "compare_models",
    "diagnose",
    "diagnose_file",
    "discover_dfg",
    "discover_from_frame",
    "discover_petri_net",
    "discovered_net",
    "explain_target",
    "filter_dfg",
    "fingerprint",
    "frame_from_traces",
    "insights_from_report",
    "load_reference_model",
    "mine",
    "mine_file",
    "mine_with_tables",
    "miner_options",
    "model_name",
    "petri_net",
    "process_map_html",
    "process_tree",
    "rank_bottlenecks",
    "read_traces",
    "render_process_map",
    "replay_conformance",
    "rescore_insight",
    "resolve_threshold",
    "root_causes",
    "score_insight",
    "segment_profile",
    "write_bpmn",
    "write_models",
    "write_pnml",
    "write_process_map",
]
