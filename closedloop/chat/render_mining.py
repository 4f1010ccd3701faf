"""Markdown of a mined log for the chat: the summary, bottlenecks, rework and log errors."""

from __future__ import annotations

import re

from closedloop.chat.markdown import Md, count, duration, hours, md_table, md_text, pct
from closedloop.tools.mining.mine import MiningReport


def mining_summary_md(
    report: MiningReport, name: str, top: int = 5, seconds: float | None = None
) -> Md:
    """The mining summary: counts, period, cycle time, model, top bottlenecks, rework, notes.

    ``seconds`` is the wall time of reading and mining (default: mining only)."""
    ct = report.cycle_time_hours
    first, last = report.time_range.first, report.time_range.last
    period = f"{first:%Y-%m-%d} to {last:%Y-%m-%d} (UTC)" if first and last else "unknown"
    model = report.model
    quality = [
        f"{label} {value:.2f}"
        for label, value in (
            ("fitness", model.fitness),
            ("precision", model.precision),
            ("F1", model.f1),
        )
        if value is not None
    ]
    quality_text = f", {', '.join(quality)}" if quality else ""
    lines = [
        f"### Mining summary: {md_text(name, 120)}",
        "",
        (
            f"- **{count(report.cases, 'case')}**, {count(report.events, 'event')}, "
            f"{len(report.activities):,} {'activity' if len(report.activities) == 1 else 'activities'}, "
            f"{count(report.variant_count, 'variant')}"
        ),
        f"- Period: {period}",
        f"- Cycle time per case: mean {hours(ct.mean)}, median {hours(ct.median)}, p90 {hours(ct.p90)}",
        (
            f"- Discovered model ({md_text(model.algorithm, 80)}): "
            f"{model.transitions - model.silent_transitions} activities, {model.places} places{quality_text}"
        ),
        f"- Read and mined in {report.duration_s if seconds is None else seconds:.1f} s",
        "",
        bottleneck_section_md(report, top),
    ]
    if report.rework:
        lines += [
            "",
            "#### Rework (activities repeated within a case)",
            "",
            rework_table_md(report, 3),
        ]
    if report.warnings:
        lines += ["", "Notes:"] + [f"- {md_text(w, 300)}" for w in report.warnings[:5]]
    return Md("\n".join(lines))


def bottleneck_section_md(report: MiningReport, top: int = 5) -> Md:
    """Top bottlenecks as a table; without any, the longest average waits instead."""
    threshold = report.bottleneck_threshold_hours
    if report.bottlenecks:
        rows = [
            (
                i,
                b.activity,
                duration(b.waiting_hours),
                duration(b.median_waiting_hours),
                duration(b.total_delay_hours),
                pct(b.share_of_waiting),
                b.cases_affected,
            )
            for i, b in enumerate(report.bottlenecks[:top], start=1)
        ]
        table = md_table(
            [
                "#",
                "Activity",
                "Mean wait",
                "Median wait",
                "Total delay",
                "Share of all waiting",
                "Cases waiting ≥ threshold",
            ],
            rows,
            align="rlrrrrr",
        )
        return Md(f"#### Top bottlenecks (mean wait ≥ {threshold:g} h, by total delay)\n\n{table}")
    waits = sorted(report.activities, key=lambda a: a.mean_waiting_hours, reverse=True)[:top]
    table = md_table(
        ["Activity", "Executions", "Mean wait", "Mean processing"],
        [
            (a.name, a.count, duration(a.mean_waiting_hours), duration(a.mean_processing_hours))
            for a in waits
        ],
        align="lrrr",
    )
    return Md(
        f"#### No bottlenecks: no activity waits {threshold:g} h or more on average\n\n"
        f"Longest average waits:\n\n{table}"
    )


def rework_table_md(report: MiningReport, top: int = 3) -> Md:
    return md_table(
        ["Activity", "Cases with rework", "Share of cases", "Extra executions"],
        [
            (r.activity, r.cases_with_rework, pct(r.share_of_cases), r.extra_executions)
            for r in report.rework[:top]
        ],
        align="lrrr",
    )


# Advice in tool errors meant for Python callers, and what a person in the chat does instead.
_PYTHON_ADVICE = (
    (
        re.compile(r"\s*(?:Looked for .*?)?Name them with a ColumnMapping\.?", re.DOTALL),
        " Map them when I ask (CSV and Parquet uploads; XES needs concept:name and time:timestamp).",
    ),
    (
        re.compile(r"; set ColumnMapping\.timestamp_format"),
        "; save the times as ISO 8601 (2024-01-31 09:00:00)",
    ),
)


def people_error(message: str) -> str:
    """A tool error without advice only a Python caller can follow (ColumnMapping...)."""
    for pattern, instead in _PYTHON_ADVICE:
        message = pattern.sub(instead, message)
    return message


def log_error_md(message: str) -> Md:
    """A tool error as one escaped line (never a traceback)."""
    text = people_error(message.strip().splitlines()[0] if message.strip() else "")
    return Md(f"**Cannot use this log:** {md_text(text, 400)}")


ASK_HINT = Md(
    "Ask me about it in your own words, e.g. *why are cases slow?*, *what if we add two people "
    "to second line?*, *show rework*, *what is pending my approval?*"
)
