"""Observe: collect the enterprise system's event log through its connector, mine it, store insights."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from closedloop.agents.context import LoopContext
from closedloop.agents.runtime import AuditTrail
from closedloop.contracts import Bottleneck, ObserveStep
from closedloop.crashpoints import crash_point
from closedloop.store.db import transaction
from closedloop.store.models import Dataset, Insight, LoopRun, MiningRun, utcnow
from closedloop.tools.act import fetch_events
from closedloop.tools.log import frame_from_records, load_event_log
from closedloop.tools.log.snapshot import configured_key, write_snapshot
from closedloop.tools.mining.insights import insights_from_report
from closedloop.tools.mining.mine import mine


def observe(
    ctx: LoopContext, run_id: str, api_url: str, scope: str, catalog_version: str,
    history: str | None = None,
) -> dict[str, Any]:
    """Read the whole event history through the connector (or from the ``history`` log file),
    mine it and store dataset, mining run and insights; returns where the feed stopped (the
    next incremental read starts there)."""
    audit = AuditTrail(run_id)
    started = time.perf_counter()
    system = ctx.system(catalog_version, api_url)
    batch = fetch_events(system)
    records = batch.rows
    if history is not None:  # the history comes from a file; the feed only says where it stands
        frame = load_event_log(history)
        records = json.loads(frame.to_json(orient="records", date_format="iso"))
        batch = batch.model_copy(update={"source": f"file {Path(history).name}"})
    audit.add(
        "observe",
        "tool_call",
        {
            "tool": "fetch_events",
            "args": {"position": None},
            "connector": system.name,
            "events": len(records),
            "position": batch.position.model_dump(mode="json"),
        },
    )
    frame = frame_from_records(records)
    report = mine(frame, bottleneck_threshold_hours=ctx.settings.bottleneck_threshold_hours)
    if history is not None:
        audit.add("observe", "tool_call", {"tool": "load_event_log", "args": {"path": history},
                                            "events": len(records)})
    report_json = report.model_dump(mode="json")
    audit.add(
        "observe",
        "tool_call",
        {
            "tool": "mine",
            "args": {"events": len(records)},
            "bottlenecks": report_json["bottlenecks"][:5],
        },
    )
    digest = hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()
    artifact = write_snapshot(
        frame, ctx.settings.home / "datasets", digest, configured_key(ctx.settings)
    )
    crash_point("observe")
    ctx.cache[f"frame:{digest}"] = frame
    insights = insights_from_report(report_json, frame)
    with transaction(ctx.engine) as session:
        dataset = Dataset(
            name=f"{scope} events",
            source=batch.source,
            format=f"connector:{system.name}" if history is None else "file",
            events=report.events,
            cases=report.cases,
            sha256=digest,
            artifact=str(artifact),
        )
        session.add(dataset)
        session.flush()
        mining = MiningRun(
            dataset_id=dataset.id,
            run_id=run_id,
            report=report_json,
            duration_s=round(time.perf_counter() - started, 3),
        )
        session.add(mining)
        session.flush()
        for item in insights:
            session.add(Insight(mining_run_id=mining.id, **item.model_dump()))
        run = session.get(LoopRun, run_id)
        run.dataset_id, run.updated_at = dataset.id, utcnow()
        audit.save(session)
    top = sorted(report_json["bottlenecks"], key=lambda b: -b["total_delay_hours"])[:3]
    step = ObserveStep(
        events=report.events,  # events analysed, the word every surface uses
        cases=report.cases,
        activities=len(report_json["activities"]),
        variants=len(report_json["variants"]),
        mean_cycle_time_hours=round(report_json["cycle_time_hours"]["mean"], 2),
        top_bottlenecks=[
            Bottleneck(
                activity=b["activity"],
                waiting_hours=round(b["waiting_hours"], 2),
                total_delay_hours=round(b["total_delay_hours"], 1),
            )
            for b in top
        ],
        dataset_id=dataset.id,
        mining_run_id=mining.id,
    )
    return {
        "dataset_id": dataset.id,
        "mining_run_id": mining.id,
        "events_position": batch.position.model_dump(mode="json"),
        "steps": [step.model_dump()],
    }
