"""Readable renderings of loop runs and mining reports (CLI and chat share them)."""

from __future__ import annotations

from typing import Any

from closedloop.contracts.measurement import ALL_CASE_DESIGNS


def audit_chain(state: dict[str, Any]) -> dict[str, Any]:
    """The ids that trace a run from data to verdict."""
    steps = {s["step"]: s for s in state.get("steps", [])}
    return {
        "run_id": state.get("run_id"),
        "dataset_id": state.get("dataset_id"),
        "mining_run_id": state.get("mining_run_id"),
        "opportunity_id": (state.get("opportunity_ids") or [None])[0],
        "simulation_id": steps.get("plan", {}).get("simulation_id"),
        "plan_id": state.get("plan_id"),
        "approval_id": state.get("approval_id"),
        "execution_ids": state.get("execution_ids", []),
        "verdict_id": state.get("verdict_id"),
    }


def _fmt_pred(p: dict[str, Any]) -> str:
    text = (f"{p['delta_hours']:+.2f} h ({p['delta_pct']:+.1f}%) on the mean of all cases, 95% CI "
            f"[{p['ci_low_pct']:+.1f}%, {p['ci_high_pct']:+.1f}%], baseline {p['baseline_hours']:.2f} h")
    if p.get("p10_pct") is not None:
        text += f", p10-p90 [{p['p10_pct']:+.1f}%, {p['p90_pct']:+.1f}%]"
    if p.get("treated_share"):
        text += (f"; {p['delta_per_treated_case_hours']:+.2f} h per treated case "
                 f"({p['treated_share']:.0%} of cases treated)")
    return text


def assumption_lines(p: dict[str, Any] | None) -> list[str]:
    """The assumptions a prediction rests on (parameters the log cannot show), one per line."""
    return [f"assumed {a['name']} in [{a['low']:.2f}, {a['high']:.2f}] ({a.get('source', 'declared')})"
            for a in (p or {}).get("assumptions", [])]


def considered_lines(step: dict[str, Any]) -> list[str]:
    """Every candidate the Planner weighed: its prediction, score and verdict (or why it had none)."""
    out = []
    for c in step.get("considered", []):
        p = c.get("predicted")
        pred = (f"{p['delta_pct']:+.1f}% [p10 {p['p10_pct']:+.1f}, p90 {p['p90_pct']:+.1f}; 95% "
                f"{p['ci_low_pct']:+.1f}..{p['ci_high_pct']:+.1f}]" if p and p.get("p10_pct") is not None
                else "not predicted")
        score = f", score {c['score']}" if c.get("score") is not None else ""
        out.append(f"   - {c['verdict']}: {c['label']}: {pred}{score}"
                   + (f"; {c['reason']}" if c["verdict"] not in ("chosen", "cleared") else ""))
    return out


def degraded_steps(state: dict[str, Any]) -> list[str]:
    """The agent steps of a run the offline policy decided because the configured model failed."""
    return [s.get("step", "?") for s in state.get("steps", []) if s.get("fallback")]


def degraded_line(state: dict[str, Any], why: str | None = None) -> str | None:
    """"DEGRADED: ..." when a step fell back from the configured model (``why``: the run's
    ``LoopRun.degraded``, which agent failed how), else None."""
    fell = degraded_steps(state)
    if not fell and not why:
        return None
    text = (f"DEGRADED: the configured model failed; the offline policy decided "
            f"{', '.join(fell) or 'a step'} in its place")
    return text + (f" ({why})" if why else "")


def render_run(state: dict[str, Any], degraded: str | None = None) -> str:
    """A step-by-step text report of a run with its numbers and the audit chain (``degraded``:
    the run's ``LoopRun.degraded``, shown when a step fell back to the offline policy)."""
    lines = [f"closedloop run {state.get('run_id')} (scope {state.get('scope')})", ""]
    outage = degraded_line(state, degraded)
    if outage:
        lines += [outage, ""]
    for s in state.get("steps", []):
        kind = s["step"]
        if kind == "observe":
            lines.append(f"1. OBSERVE  {s['events']} events, {s['cases']} cases, {s['activities']} activities, "
                         f"{s['variants']} variants; mean cycle time {s['mean_cycle_time_hours']} h")
            for b in s["top_bottlenecks"]:
                lines.append(f"   bottleneck {b['activity']!r}: waits {b['waiting_hours']} h on average, "
                             f"{b['total_delay_hours']} h in total")
        elif kind == "triage":
            lines.append(f"2. TRIAGE   [{s['agent_model']}] {s['summary']}")
            for o in s["opportunities"]:
                lines.append(f"   opportunity #{o['id']}: {o['kind']} at {o['activity']!r}, priority {o['priority']}")
            for m in s["missing_data"]:
                lines.append(f"   missing data: {m}")
        elif kind == "plan":
            if s.get("dropped"):
                lines.append(f"3. PLAN     [{s['agent_model']}] no plan: {s['dropped']}")
                lines += ["   candidates considered:"] * bool(s.get("considered")) + considered_lines(s)
            else:
                lines.append(f"3. PLAN     [{s['agent_model']}] plan #{s['plan_id']}: {s['action']} {s['params']}")
                lines.append(f"   hypothesis: {s['hypothesis']}")
                lines.append(f"   predicted (simulation #{s['simulation_id']}): {_fmt_pred(s['predicted'])}")
                lines += [f"   {a}" for a in assumption_lines(s["predicted"])]
                lines.append(f"   risk tier {s['risk_tier']}, blast radius {s['blast_radius']['share_of_cases']:.0%} "
                             "of cases; candidates considered:")
                lines += considered_lines(s)
        elif kind == "gate":
            lines.append(f"4. GATE     mode {s['mode']}, kill switch {'ON' if s['kill_switch'] else 'off'} -> {s['route']}")
        elif kind == "approval":
            lines.append(f"5. APPROVAL #{s['approval_id']}: {s['decision']} by {s['by']}")
        elif kind == "execute":
            lines.append(f"6. EXECUTE  [{s['agent_model']}] {s['summary']}")
            for e in s["executions"]:
                lines.append(f"   execution #{e['id']} {e['action']}: {e['status']} after {e['attempts']} attempt(s), "
                             f"key {e['idempotency_key']}")
        elif kind == "switch":
            state_word = {True: "ON", False: "OFF", None: "end"}[s["on"]]
            lines.append(f"   switchback block {s['block']} {state_word} at {s['at']}"
                         + (f" (execution #{s['execution_id']})" if s.get("execution_id") else "")
                         + (f": {s['note']}" if s.get("note") else ""))
        elif kind == "watch":
            m = s["measured"]
            if "delta" in m:
                arms = {"switchback": ("on-blocks", "off-blocks"),
                        "before_after_with_counterfactual": ("after", "counterfactual")}
                a, b = arms.get(m.get("design") or "", ("treatment", "control"))
                lines.append(f"7. WATCH    [{s['agent_model']}] from the system's own events ({m['events']} new): "
                             f"{a} {m['treatment']['mean']:.2f} h (n={m['treatment_n']}) vs {b} "
                             f"{m['control']['mean']:.2f} h (n={m['control_n']})")
                # A corrected (total) effect includes other cases' speed-up: a share of one
                # cohort's mean would mislead, so the percentage is shown only for plain designs.
                unit = "on the mean of all cases" if m.get("design") in ALL_CASE_DESIGNS \
                    else "per treated case"
                share = (f" ({m['relative_pct']:+.1f}%)" if m.get("design") in (None, "treatment_control")
                         and m.get("relative_pct") is not None else "")
                lines.append(f"   realized delta {m['delta']:+.2f} h{share}, "
                             f"95% CI [{m['ci_low']:+.2f}, {m['ci_high']:+.2f}] h {unit}; predicted "
                             f"{s['predicted_delta_hours']:+.2f} h")
                if m.get("design"):
                    lines.append(f"   design: {m['design']} ({m.get('why', '')})")
                check = m.get("guardrail_check") or {}
                if check.get("results"):
                    lines.append("   guardrails " + ("BREACHED: " if check.get("breached") else "held: ") + "; ".join(
                        f"{r['kpi']} worse by {r['worsening']:+.2f} {r['unit']} (limit {r['threshold']:g})"
                        for r in check["results"]))
            else:
                lines.append(f"7. WATCH    [{s['agent_model']}] {s['rationale']}")
            lines.append(f"   decision: {s['decision'].upper()}")
        elif kind == "rollback":
            lines.append(f"8. ROLLBACK {len(s['compensations'])} compensation(s) run")
        elif kind == "learn":
            extra = f"; policy: {s['policy_change']}" if s.get("policy_change") else ""
            lines.append(f"=> OUTCOME  {s['outcome']}{extra}")
    lines += ["", "audit chain: " + ", ".join(f"{k}={v}" for k, v in audit_chain(state).items())]
    return "\n".join(lines)


def render_mining(report: dict[str, Any], top: int = 5) -> str:
    """A short text summary of a mining report."""
    ct = report["cycle_time_hours"]
    lines = [(f"{report['events']} events, {report['cases']} cases, {len(report['activities'])} activities, "
             f"{len(report['variants'])} top variants; cycle time mean {ct['mean']:.1f} h, "
             f"median {ct['median']:.1f} h, p90 {ct['p90']:.1f} h")]
    if report["bottlenecks"]:
        lines.append("bottlenecks (by total delay):")
        for b in report["bottlenecks"][:top]:
            lines.append(f"  {b['activity']}: mean wait {b['waiting_hours']:.1f} h, "
                         f"total {b['total_delay_hours']:.0f} h over {b['cases_affected']} cases")
    else:
        lines.append("no activity waits longer than the bottleneck threshold on average")
    for r in report.get("rework", [])[:top]:
        lines.append(f"rework: {r['activity']} repeated in {r['cases_with_rework']} cases "
                     f"({r['share_of_cases']:.0%}), {r['extra_executions']} extra executions")
    conf = report.get("conformance")
    if conf:
        lines.append(f"conformance ({conf.get('model', 'model')}): fitness {_num(conf.get('fitness'))}, "
                     f"precision {_num(conf.get('precision'))}, F1 {_num(conf.get('f1'))}")
    for rc in report.get("root_causes", [])[:3]:
        for rule in rc.get("rules", [])[:2]:
            lines.append(f"root cause ({rc['target']}): {rule.get('text', rule)}")
    if "duration_s" in report:
        lines.append(f"diagnosed in {report['duration_s']:.2f} s")
    return "\n".join(lines)


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"
