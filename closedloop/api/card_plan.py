"""An approval's plan in words: the change, its predicted effect, who it reaches and for how
long, the guardrails that abort it and how it is undone (no raw JSON)."""

from __future__ import annotations

import re
from typing import Any

from closedloop.api.card_text import (
    escape_markdown,
    facts,
    is_num,
    num,
    text_block,
    value_words,
    words,
)
from closedloop.store.models import Plan

_COMPENSATION = re.compile(r"^([A-Z]+) (\S+) \(([^)]*)\)$")


def change_title(plan: Plan) -> str:
    """The change in plain words, e.g. ``Set staffing: queue L1, agents 4``."""
    actions = [a for a in (plan.actions or []) if isinstance(a, dict)]
    if not actions:
        return "No change to the system"
    first = actions[0]
    name = words(first.get("action", "change")).capitalize()
    params = first.get("params") or {}
    detail = (
        ", ".join(
            f"{words(k)} {value_words(v, 80)}"
            for k, v in list(params.items())[:4]
            if not isinstance(v, dict)
        )
        if isinstance(params, dict)
        else ""
    )
    more = f" (+{len(actions) - 1} more)" if len(actions) > 1 else ""
    return escape_markdown(f"{name}: {detail}{more}" if detail else f"{name}{more}", 160)


def action_lines(plan: Plan) -> list[dict[str, Any]]:
    blocks = []
    for action in (plan.actions or [])[:3]:
        if not isinstance(action, dict):
            continue
        params = action.get("params") or {}
        pairs = (
            [(words(k).capitalize(), value_words(v)) for k, v in list(params.items())[:8]]
            if isinstance(params, dict)
            else [("Parameters", value_words(params))]
        )
        blocks.append(
            text_block(f"{words(action.get('action', '?')).capitalize()}:", spacing="Small")
        )
        if pairs:
            blocks.append(facts(pairs))
    return blocks


def effect_lines(predicted: dict[str, Any]) -> list[dict[str, Any]]:
    if not predicted or not is_num(predicted.get("delta_pct")):
        return [text_block("Predicted effect: not available (no simulation backs this plan).")]
    kpi = words(predicted.get("kpi", "cycle_time_hours")).replace(" hours", "")
    head = (
        f"{kpi.capitalize()}: {num(predicted.get('delta_pct'), '+.1f')} % "
        f"({num(predicted.get('delta_hours'), '+.2f')} h per case on "
        f"{num(predicted.get('baseline_hours'), '.2f')} h), 95 % interval "
        f"{num(predicted.get('ci_low_pct'), '+.1f')} % to {num(predicted.get('ci_high_pct'), '+.1f')} %"
    )
    blocks = [text_block(head)]
    if is_num(predicted.get("p90_pct")):
        blocks.append(
            text_block(
                f"Cautious estimate (9 chances in 10 of doing at least this well): "
                f"{predicted['p90_pct']:+.1f} %",
                isSubtle=True,
                spacing="None",
            )
        )
    assumptions = [a for a in predicted.get("assumptions") or [] if isinstance(a, dict)][:4]
    if assumptions:
        said = "; ".join(
            f"{words(a.get('name', '?'))} between {num(a.get('low'), '.3g')} and "
            f"{num(a.get('high'), '.3g')} ({escape_markdown(a.get('source', 'declared'), 40)})"
            for a in assumptions
        )
        blocks.append(
            text_block(f"Assumptions that widen it: {said}", isSubtle=True, spacing="None")
        )
    else:
        blocks.append(
            text_block(
                "Assumptions that widen it: none declared (simulation noise and case "
                "resampling only).",
                isSubtle=True,
                spacing="None",
            )
        )
    return blocks


def share(value: Any) -> str:
    """A 0..1 share as a whole percentage (``unknown`` when it is not a number)."""
    return f"{value:.0%}" if is_num(value) else "unknown"


def days_in_words(days: float) -> str:
    """A span such as ``14 days``, ``1 day`` or ``12 hours`` (under a day)."""
    if days < 1:
        hours = round(days * 24, 1)
        return f"{hours:g} hour{'' if hours == 1 else 's'}"
    rounded = round(days, 1)
    return f"{rounded:g} day{'' if rounded == 1 else 's'}"


def trial_in_words(plan: Plan) -> str:
    """How long the change is watched before the Watchdog's verdict, and beside which cohort."""
    cohort, guard = plan.cohort or {}, plan.guardrails or {}
    days = guard.get("watch_days")
    control = cohort.get("control_share")
    beside = (
        f" beside a control group ({share(control)} of the cases in scope)"
        if is_num(control) and control > 0
        else ""
    )
    least = num(guard.get("min_cases_per_cohort"), "d")
    if is_num(days) and days > 0:
        return (
            f"{days_in_words(days)} live{beside}, then the Watchdog measures and decides "
            f"(it waits longer while a cohort has fewer than {least} finished cases)"
        )
    return f"Live{beside} until each cohort has {least} finished cases, then the Watchdog decides"


def reach_facts(plan: Plan) -> dict[str, Any]:
    """Risk, blast radius, cohorts and the trial's length as facts."""
    blast, cohort = plan.blast_radius or {}, plan.cohort or {}
    reach = f"{share(blast.get('share_of_cases'))} of cases"
    if "reversible" in blast:
        reach += ", reversible" if blast["reversible"] is True else ", NOT reversible"
    split = (
        f"{share(cohort.get('treatment_share', blast.get('treatment_share')))} get the change, "
        f"{share(cohort.get('control_share'))} stay as they are (control)"
    )
    return facts(
        [
            ("Risk", escape_markdown(plan.risk_tier, 40)),
            ("Blast radius", reach),
            ("Cohorts", split),
            ("Trial", trial_in_words(plan)),
        ]
    )


def guardrails_in_words(guard: dict[str, Any]) -> str:
    """The abort conditions of a plan as one sentence."""
    if not guard:
        return "No guardrails recorded: the change is not watched automatically."
    limits = []
    if is_num(guard.get("max_relative_worsening")):
        limits.append(
            f"cycle time worsens by more than {guard['max_relative_worsening']:.0%} against control"
        )
    thresholds = guard.get("thresholds") if isinstance(guard.get("thresholds"), dict) else {}
    for key, phrase in (
        ("max_rework_increase_points", "rework rises by more than {}"),
        ("max_reopen_increase_points", "reopened cases rise by more than {}"),
        ("max_failure_increase_points", "failures rise by more than {}"),
        ("max_sla_drop_points", "SLA attainment drops by more than {}"),
        ("max_cost_increase_pct", "cost per case rises by more than {}"),
    ):
        value = thresholds.get(key)
        if is_num(value):
            unit = " %" if key.endswith("_pct") else (" point" if value == 1 else " points")
            limits.append(phrase.format(f"{value:g}{unit}"))
    text = (
        "Abort and undo automatically if " + "; or ".join(limits) + "."
        if limits
        else "Watched by the Watchdog against control."
    )
    if is_num(guard.get("max_writes")):
        text += f" At most {guard['max_writes']} write(s) to the system."
    if is_num(guard.get("sla_hours")):
        text += f" SLA: {guard['sla_hours']:g} h."
    extra = sorted(
        set(guard)
        - {
            "max_relative_worsening",
            "watch_days",
            "thresholds",
            "max_writes",
            "sla_hours",
            "min_cases_per_cohort",
            "start_activities",
            "end_activities",
            "reopen_activities",
            "failure_activities",
        }
    )
    if extra:
        text += (
            " Also: "
            + ", ".join(f"{words(k)} {value_words(guard[k], 60)}" for k in extra[:4])
            + "."
        )
    return escape_markdown(text, 600)


def compensation_in_words(plan: Plan) -> str:
    """How the change is undone, in words."""
    hows = [c.get("how") for c in plan.compensations or [] if isinstance(c, dict) and c.get("how")]
    if not hows:
        reversible = (plan.blast_radius or {}).get("reversible")
        return (
            "Undone by reversing the change through the connector."
            if reversible is True
            else "No undo recorded for this change."
        )
    out = []
    for how in hows[:3]:
        found = _COMPENSATION.match(str(how))
        if found:
            out.append(
                f"undone by the system's {words(found.group(3))} call "
                f"({found.group(1)} {escape_markdown(found.group(2), 80)})"
            )
        elif str(how).startswith("irreversible"):
            out.append("cannot be undone automatically: the connector declares no undo")
        else:
            out.append(escape_markdown(how, 200))
    text = "; ".join(out)
    return text[0].upper() + text[1:] + "."
