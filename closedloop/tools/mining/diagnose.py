"""One full diagnosis of an event log: mining, conformance and root causes in one report.

``diagnose`` = ``mine`` (frequencies, waiting, bottlenecks, rework, variants,
hand-offs, workload, SLA, and the discovered model with its fitness, precision
and F1: one pipeline, the model is not discovered again here) + the
conformance of a reference model when one is given + decision-tree root causes
of slow, reworked and SLA-breaching cases. Every stage's seconds are reported in
``timings_s``, so slow parts are visible in the report itself.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field

from closedloop.tools.base import read_tool
from closedloop.tools.errors import EventLogError, ToolError
from closedloop.tools.log import ColumnMapping, load_event_log
from closedloop.tools.log.columns import ACTIVITY, CASE
from closedloop.tools.mining.conformance import load_reference_model
from closedloop.tools.mining.mine import MiningReport, mine_with_tables
from closedloop.tools.mining.replay import (
    DEFAULT_MAX_REPLAY_STEPS,
    ConformanceReport,
    replay_conformance,
)
from closedloop.tools.mining.rootcause import RootCauseReport, case_features, explain_target

__all__ = ["DiagnosisReport", "diagnose", "diagnose_file"]


class DiagnosisReport(MiningReport):
    """Everything ``mine`` reports, plus conformance, root causes and stage timings."""

    reworked_cases: int = Field(description="cases in which some activity is repeated")
    reworked_cases_share: float = Field(description="reworked_cases / cases, 0..1")
    conformance: ConformanceReport = Field(
        description="of the reference model when one was given, else of the discovered model"
    )
    discovered_model_conformance: ConformanceReport | None = Field(
        default=None, description="the discovered model's, when conformance is a reference model's"
    )
    root_causes: list[RootCauseReport] = Field(
        description="rules for slow cases, reworked cases (if any) and SLA breaches (if sla_hours)"
    )
    timings_s: dict[str, float] = Field(description="seconds per stage (read, mine, ...)")


@read_tool
def diagnose(
    frame: pd.DataFrame,
    reference_model: str | Path | None = None,
    sla_hours: float | None = None,
    seed: int = 0,
    bottleneck_threshold_hours: float | None = None,
    top_variants: int = 20,
    slow_percentile: float = 75.0,
    min_support: float = 0.05,
    max_rules: int = 5,
    max_deviations: int = 20,
    max_replay_steps: int = DEFAULT_MAX_REPLAY_STEPS,
    miner: str = "auto",
    noise_threshold: float | None = None,
) -> DiagnosisReport:
    """Diagnose an event log in one call: how it flows, where it waits, whether it
    follows the model, and which kinds of cases are slow or reworked.

    Returns a DiagnosisReport with everything ``mine`` returns (activities,
    bottlenecks, rework, variants, directly-follows graph, cycle times, hand-offs,
    resource workload, SLA breaches when sla_hours is given) and:
    - model: the Petri net ``mine`` discovered (``discover_petri_net``'s defaults)
      with its token-replay fitness, precision and F1;
    - conformance: fitness, precision and F1 (0..1, with 95% intervals when
      estimated from a sample) of reference_model (a .bpmn or .pnml file) when
      given, else of the discovered model, and the most frequent deviating cases;
    - root_causes: decision-tree rules (support, confidence, lift) for slow cases
      (cycle time above slow_percentile), reworked cases and SLA-breaching cases;
    - timings_s: seconds per stage.
    bottleneck_threshold_hours None means the configured one when
    CLOSEDLOOP_BOTTLENECK_HOURS is set, else the rule relative to the log.
    miner ("auto", "imd", "imf", "heuristics") and noise_threshold choose discovery.
    All randomness (sampling, trees) follows seed.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(stage: str, since: float) -> float:
        now = time.perf_counter()
        timings[stage] = round(now - since, 3)
        return now

    if not 0 < slow_percentile < 100 or not 0 < min_support < 1 or max_rules < 0:
        raise ToolError(
            "slow_percentile must be in (0, 100), min_support in (0, 1), max_rules >= 0"
        )
    if max_replay_steps < 1 or max_deviations < 0:
        raise ToolError("max_replay_steps must be >= 1 and max_deviations >= 0")
    reference = load_reference_model(reference_model) if reference_model is not None else None
    mined = mine_with_tables(
        frame,
        bottleneck_threshold_hours=bottleneck_threshold_hours,
        top_variants=top_variants,
        sla_hours=sla_hours,
        seed=seed,
        max_replay_steps=max_replay_steps,
        max_deviations=max_deviations,
        miner=miner,
        noise_threshold=noise_threshold,
    )
    timings.update(mined.timings_s)
    own = mined.conformance
    assert own is not None  # compute_fitness is on
    t = time.perf_counter()
    checked = own
    if reference is not None:
        replay = {
            "seed": seed,
            "max_replay_steps": max_replay_steps,
            "max_deviations": max_deviations,
            "cases": mined.cases,
        }
        checked = replay_conformance(
            mined.frame, *reference, f"reference model {Path(reference_model).name}", **replay
        )
        t = lap("conformance_reference", t)

    features = case_features(mined.frame)
    rules = {
        "seed": seed,
        "min_support": min_support,
        "max_rules": max_rules,
        "cases": mined.cases,
        "features": features,
    }
    causes = [explain_target(mined.frame, "slow", slow_percentile=slow_percentile, **rules)]
    repeated = mined.frame.duplicated([CASE, ACTIVITY])
    reworked = int(mined.frame.loc[repeated, CASE].nunique())
    if reworked:
        causes.append(explain_target(mined.frame, "rework", **rules))
    if sla_hours is not None:
        causes.append(explain_target(mined.frame, "sla", sla_hours=sla_hours, **rules))
    lap("root_causes", t)
    timings["total"] = round(time.perf_counter() - started, 3)
    base = mined.report.model_dump(exclude={"duration_s"})
    return DiagnosisReport(
        **base,
        duration_s=timings["total"],
        reworked_cases=reworked,
        reworked_cases_share=round(reworked / mined.report.cases, 4),
        conformance=checked,
        discovered_model_conformance=own if reference is not None else None,
        root_causes=causes,
        timings_s=timings,
    )


def diagnose_file(
    path: str | Path,
    mapping: ColumnMapping | None = None,
    cache_dir: str | Path | None = None,
    **kw: Any,
) -> DiagnosisReport:
    """Load an event log file (``load_event_log``) and ``diagnose`` it.

    With ``cache_dir`` the parsed log is kept there as Parquet (keyed by the file's
    path, size and modification time) and read from there next time.
    """
    started = time.perf_counter()
    frame, cached = _load(Path(path), mapping, cache_dir)
    read_s = round(time.perf_counter() - started, 3)
    report = diagnose(frame, **kw)
    report.timings_s = {"read_cached" if cached else "read": read_s, **report.timings_s}
    report.timings_s["total"] = round(report.timings_s["total"] + read_s, 3)
    return report


def _load(
    path: Path, mapping: ColumnMapping | None, cache_dir: str | Path | None
) -> tuple[pd.DataFrame, bool]:
    if cache_dir is None:
        return load_event_log(path, mapping), False
    if not path.is_file():
        raise EventLogError(f"{path}: file not found")
    stat = path.stat()
    settings = mapping.model_dump_json() if mapping else ""
    ident = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{settings}"
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    cached = Path(cache_dir) / f"{path.name}.{digest}.parquet"
    if cached.is_file():
        return pd.read_parquet(cached), True
    frame = load_event_log(path, mapping)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(cached, index=False)
    except (OSError, ValueError, TypeError) as exc:
        raise ToolError(f"{cached}: cannot write the Parquet cache: {exc}") from None
    return frame, False
