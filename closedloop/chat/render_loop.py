"""Markdown of a loop run for the chat: the plan with its predicted effect, the verdict with
the realized effect next to the prediction, and the audit chain."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from closedloop.chat.markdown import Md, md_table, md_text, pct
from closedloop.contracts import Prediction
from closedloop.contracts.measurement import ALL_CASE_DESIGNS
from closedloop.report import audit_chain


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


def on_measured_scale(measured: dict[str, Any], predicted: Prediction) -> tuple[float, float, float]:
    """The predicted change (mean, 95 % low, high; hours) on the measurement's scale: per treated
    case for a split's cohorts, on the mean of every case for a switchback or a before/after."""
    if measured.get("design") in ALL_CASE_DESIGNS:
        return predicted.delta_hours, predicted.ci_low_hours, predicted.ci_high_hours
    return (predicted.delta_per_treated_case_hours, predicted.ci_low_per_treated_case_hours,
            predicted.ci_high_per_treated_case_hours)


def agreement_md(measured: dict[str, Any], predicted: Prediction | None) -> Md:
    """How the measured change compares with the predicted one, on the same scale (per treated
    case for a split, all cases for a switchback or a before/after)."""
    if predicted is None:
        return Md("")
    _, low, high = on_measured_scale(measured, predicted)
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
            # Compared on the measurement's scale: per treated case for a split, else all cases.
            pred = plan_prediction(last_step(state, "plan"))
            scaled = on_measured_scale(measured, pred) if pred else None
            pred_ci = f"{scaled[1]:+.2f} to {scaled[2]:+.2f} h" if scaled else ""
            scale = "on the mean of all cases" if measured.get("design") in ALL_CASE_DESIGNS \
                else "per treated case"
            pred_pct = f" (all cases {pred.delta_pct:+.1f}%)" if pred else ""
            lines += [
                "",
                md_table(
                    [
                        f"Cycle time change {scale}",
                        "Realized (measured)",
                        "Predicted (simulation)",
                    ],
                    [
                        (
                            "mean delta",
                            Md(f"{measured['delta']:+.2f} h ({measured['relative_pct']:+.1f}%)"),
                            Md(
                                f"{scaled[0] if scaled else watch['predicted_delta_hours']:+.2f} h"
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
