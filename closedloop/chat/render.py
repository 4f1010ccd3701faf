"""Markdown for the chat: mining summaries, plans and verdicts, with log text escaped.

Text that comes from event logs, file names, APIs or the agents is data. It is
escaped so Markdown or HTML inside it (``[x](https://evil)``, ``<img onerror>``,
a bare ``https://`` link, a table pipe, a newline) shows as the literal text and
can never become a link, an image, a script or a new table row. Only strings
built here (wrapped in ``Md``) are emitted as Markdown.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError

from closedloop.contracts import Prediction
from closedloop.report import audit_chain
from closedloop.tools.mining.mine import MiningReport

WORD_JOINER = "\u2060"  # invisible; breaks GFM autolink literals (http://, www., a@b.c)
ASCII_PUNCTUATION = frozenset(
    string.punctuation
)  # CommonMark lets all of these be backslash-escaped
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Zero-width spots where GFM would start an autolink: "www|.", "scheme:|//", "user@|domain".
_AUTOLINK_TRIGGERS = re.compile(r"(?i)(?<=www)(?=\.)|(?<=:)(?=//)|(?<=@)")


class Md(str):
    """A string that is already safe Markdown (built by this module, not taken from data)."""


def clean_text(value: Any, limit: int | None = 160) -> str:
    """One line of plain text: control and bidi characters become spaces, runs of
    whitespace collapse, and text longer than ``limit`` characters is cut with an ellipsis."""
    text = "" if value is None else str(value)
    text = "".join(
        " " if ch in BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
        for ch in text
    )
    text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)].rstrip() + "\u2026"
    return text


def md_text(value: Any, limit: int | None = 160) -> Md:
    """Plain text (an activity name, a file name, an error) as inert Markdown.

    Every ASCII punctuation character is backslash-escaped, so no Markdown or HTML
    construct can start; autolink triggers get an invisible word joiner so
    ``https://...``, ``www.`` and e-mail addresses stay text.
    """
    text = clean_text(value, limit)
    text = _AUTOLINK_TRIGGERS.sub(WORD_JOINER, text)
    return Md("".join("\\" + ch if ch in ASCII_PUNCTUATION else ch for ch in text))


def md_code_block(text: str, language: str = "text") -> Md:
    """A fenced code block that ``text`` cannot close early (the fence outgrows any backtick run)."""
    body = "".join(
        " "
        if ch in BIDI_CONTROLS or (unicodedata.category(ch) == "Cc" and ch not in "\n\t")
        else ch
        for ch in str(text).replace("\r\n", "\n").replace("\r", "\n")
    )
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return Md(f"{fence}{language}\n{body}\n{fence}")


def md_cell(value: Any) -> Md:
    """One table cell: Md as it is, integers with thousands separators, floats with one decimal,
    everything else escaped text."""
    if isinstance(value, Md):
        return Md(value.replace("\n", " "))
    if isinstance(value, bool):
        return Md("yes" if value else "no")
    if isinstance(value, int):
        return Md(f"{value:,}")
    if isinstance(value, float):
        return Md(f"{value:,.1f}")
    return md_text(value)


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> Md:
    """A GFM table; ``align`` holds one of ``l``/``r``/``c`` per column (default: left)."""
    align = align or "l" * len(headers)
    if len(align) != len(headers):
        raise ValueError(f"align {align!r} must give one letter per column ({len(headers)})")
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(md_cell(h) for h in headers) + " |",
        "|" + "|".join(marks[a] for a in align) + "|",
    ]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, expected {len(headers)}")
        lines.append("| " + " | ".join(md_cell(c) for c in row) + " |")
    return Md("\n".join(lines))


def hours(value: float) -> Md:
    """Hours with one decimal, plus days when it is two days or more."""
    text = f"{value:,.1f} h"
    if abs(value) >= 48:
        text += f" ({value / 24:,.1f} d)"
    return Md(text)


def count(n: int, noun: str) -> Md:
    """``1 case``, ``4,580 cases`` (plural by adding ``s``)."""
    return Md(f"{n:,} {noun}{'' if n == 1 else 's'}")


def duration(value: float) -> Md:
    """Compact hours for tables: hours below two days, days from there."""
    if abs(value) < 48:
        return Md(f"{value:,.1f} h")
    days = value / 24
    return Md(f"{days:,.1f} d" if abs(days) < 100 else f"{days:,.0f} d")


def pct(share: float) -> Md:
    """A 0..1 share as a percentage."""
    return Md(f"{share:.0%}")


# --------------------------------------------------------------------------- mining
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


# --------------------------------------------------------------------------- loop runs
def last_step(state: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The latest step of ``kind`` in a run's state, or None."""
    found = [s for s in state.get("steps", []) if s.get("step") == kind]
    return found[-1] if found else None


PHASE_LABELS = {
    "approval": "waits for your approval",
    "evidence": "the change is live; waits for evidence",
    "done": "finished",
}


def predicted_md(p: dict[str, Any]) -> Md:
    spread = (
        f"p10-p90 {p['p10_pct']:+.1f}% to {p['p90_pct']:+.1f}%, "
        if p.get("p10_pct") is not None
        else ""
    )
    assumed = "".join(
        f"; assumes {md_text(a['name'], 60)} in [{a['low']:.2f}, {a['high']:.2f}] "
        f"({md_text(a.get('source', 'declared'), 200)})"
        for a in p.get("assumptions", [])
    )
    return Md(
        f"{p['delta_hours']:+.2f} h per case ({p['delta_pct']:+.1f}%), {spread}95% interval "
        f"{p['ci_low_pct']:+.1f}% to {p['ci_high_pct']:+.1f}% on a baseline of "
        f"{p['baseline_hours']:.2f} h{assumed}"
    )


def observed_md(state: dict[str, Any]) -> Md:
    """What the loop saw and how triage ranked it (two bullets)."""
    lines: list[str] = []
    obs = last_step(state, "observe")
    if obs:
        waits = ", ".join(
            f"**{md_text(b['activity'], 80)}** ({b['waiting_hours']:.1f} h)"
            for b in obs.get("top_bottlenecks", [])[:3]
        )
        lines.append(
            f"- Observed {obs['events']:,} events, {obs['cases']:,} cases, mean cycle time "
            f"{obs['mean_cycle_time_hours']:.1f} h"
            + (f"; longest waits before {waits}" if waits else "")
        )
    tri = last_step(state, "triage")
    if tri:
        lines.append(f"- Triage: {md_text(tri.get('summary', ''), 300)}")
        lines += [f"- Missing data: {md_text(m, 300)}" for m in tri.get("missing_data", [])]
    return Md("\n".join(lines))


def params_md(params: dict[str, Any]) -> Md:
    """Action parameters as ``name value`` pairs (nested values as compact JSON), escaped."""
    parts = []
    for key, value in params.items():
        text = (
            value
            if isinstance(value, str)
            else json.dumps(value, ensure_ascii=False, sort_keys=True)
        )
        parts.append(f"{md_text(str(key).replace('_', ' '), 40)} {md_text(text, 200)}")
    return Md("; ".join(parts) if parts else "no parameters")


def plan_prediction(plan: dict[str, Any] | None) -> Prediction | None:
    """The ``Prediction`` stored with a plan step, or None (no plan, or a plan from before the contract)."""
    try:
        return Prediction.model_validate((plan or {}).get("predicted"))
    except ValidationError:
        return None


def agreement_md(measured: dict[str, Any], predicted: Prediction | None) -> Md:
    """How the measured treatment-vs-control delta compares with the predicted change per treated case.

    Both are hours per treated case: the measurement compares treated with
    control cases, so it is set against the per-treated-case interval.
    """
    if predicted is None:
        return Md("")
    low, high = predicted.ci_low_per_treated_case_hours, predicted.ci_high_per_treated_case_hours
    if measured["ci_high"] < low:
        return Md("The realized reduction is larger than predicted (the intervals do not overlap).")
    if measured["ci_low"] > high:
        return Md(
            "The realized effect falls short of the prediction (the intervals do not overlap)."
        )
    return Md("The realized effect is consistent with the prediction (the intervals overlap).")


def plan_md(state: dict[str, Any]) -> Md:
    """The plan waiting for a decision: action, hypothesis, predicted delta with interval, risk, gate."""
    plan = last_step(state, "plan")
    head = f"### Closed loop run {md_text(state.get('run_id'), 60)} (scope {md_text(state.get('scope'), 60)})"
    if plan is None:
        return Md(f"{head}\n\n{observed_md(state)}\n\nThe loop stopped before planning.")
    if plan.get("dropped"):
        return Md(f"{head}\n\n{observed_md(state)}\n\n**No plan:** {md_text(plan['dropped'], 400)}")
    blast = plan.get("blast_radius", {})
    lines = [
        head,
        "",
        observed_md(state),
        "",
        f"#### Plan #{int(plan['plan_id'])}",
        "",
        f"- **Action:** {md_text(plan['action'], 80)}: {params_md(plan.get('params', {}))}",
        f"- **Hypothesis:** {md_text(plan['hypothesis'], 500)}",
        f"- **Predicted:** {predicted_md(plan['predicted'])} (simulation #{int(plan['simulation_id'])})",
        f"- **Risk tier:** {md_text(plan['risk_tier'], 40)}; blast radius "
        f"{pct(blast.get('share_of_cases', 0.0))} of cases"
        + ("" if blast.get("reversible", True) else ", **not reversible**"),
        f"- **Candidates considered:** {md_text(plan.get('rationale', ''), 500)}",
    ]
    gate = last_step(state, "gate")
    if gate:
        lines.append(
            f"- **Gate:** mode {md_text(gate['mode'], 40)}, kill switch "
            f"{'ON' if gate.get('kill_switch') else 'off'} → {md_text(gate['route'], 40)}"
        )
    return Md("\n".join(lines))


def verdict_md(state: dict[str, Any]) -> Md:
    """How the run ended: the approval, executions, realized vs predicted delta, decision, outcome."""
    title = "Verdict for run" if last_step(state, "watch") else "Run"
    lines = [
        f"### {title} {md_text(state.get('run_id'), 60)}" + ("" if title != "Run" else " ended"),
        "",
    ]
    approval = last_step(state, "approval")
    if approval:
        lines.append(
            f"- Approval #{int(approval['approval_id'])}: {md_text(approval['decision'], 40)} "
            f"by {md_text(approval['by'], 80)}"
        )
    execute = last_step(state, "execute")
    if execute:
        lines.append(f"- Executed: {md_text(execute.get('summary', ''), 300)}")
    watch = last_step(state, "watch")
    if watch:
        measured = watch["measured"]
        lines.append(f"- Decision: **{md_text(str(watch['decision']).upper(), 20)}**")
        if "delta" in measured:
            # A partial rollout is compared per treated case: the contract carries that interval.
            pred = plan_prediction(last_step(state, "plan"))
            pred_ci = (
                f"{pred.ci_low_per_treated_case_hours:+.2f} to {pred.ci_high_per_treated_case_hours:+.2f} h"
                if pred
                else ""
            )
            pred_pct = f" (all cases {pred.delta_pct:+.1f}%)" if pred else ""
            lines += [
                "",
                md_table(
                    [
                        "Cycle time change per treated case",
                        "Realized (measured)",
                        "Predicted (simulation)",
                    ],
                    [
                        (
                            "mean delta",
                            Md(f"{measured['delta']:+.2f} h ({measured['relative_pct']:+.1f}%)"),
                            Md(
                                f"{pred.delta_per_treated_case_hours if pred else watch['predicted_delta_hours']:+.2f} h"
                                f"{pred_pct}"
                            ),
                        ),
                        (
                            "95% interval",
                            Md(f"{measured['ci_low']:+.2f} to {measured['ci_high']:+.2f} h"),
                            Md(pred_ci or "-"),
                        ),
                        (
                            "treatment vs control",
                            Md(
                                f"{measured['treatment']['mean']:.2f} h (n={measured['treatment_n']:,}) vs "
                                f"{measured['control']['mean']:.2f} h (n={measured['control_n']:,})"
                            ),
                            Md("-"),
                        ),
                    ],
                    align="lrr",
                ),
                "",
                agreement_md(measured, pred),
                "",
                f"Measured from {measured.get('events', 0):,} new events of the system itself; guardrail: "
                f"{md_text(measured.get('guardrail', ''), 200)}"
                + (" (**breached**)" if measured.get("guardrail_breached") else " (not breached)"),
            ]
        else:
            lines.append(f"- {md_text(watch.get('rationale', ''), 400)}")
    rollback = last_step(state, "rollback")
    if rollback:
        lines.append(f"- Rolled back: {len(rollback.get('compensations', []))} compensation(s) run")
    learn = last_step(state, "learn")
    if learn:
        outcome = f"**Outcome:** {md_text(learn['outcome'], 80)}"
        change = learn.get("policy_change")
        if isinstance(change, dict) and "recommend" in change:
            confirm = " (a human must confirm)" if change.get("needs_human_confirmation") else ""
            outcome += (
                f"; recommends mode {md_text(change['recommend'], 40)} for scope "
                f"{md_text(change.get('scope', ''), 60)}{confirm}"
            )
        elif change:
            outcome += f"; policy: {md_text(json.dumps(change, sort_keys=True, default=str), 300)}"
        lines += ["", outcome]
    chain = ", ".join(f"{k}={v}" for k, v in audit_chain(state).items() if v not in (None, []))
    lines += ["", f"Audit chain: {md_text(chain, 600)}"]
    return Md("\n".join(lines))
