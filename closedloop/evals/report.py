"""The eval report as Markdown: slices, the do-nothing baseline beside the loop, the numbers,
every case, and the mutants."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from closedloop.evals.mutation import MutationReport
from closedloop.evals.runner import CaseResult, EvalReport


def _slice(r: CaseResult) -> str:
    if r.kind != "loop":
        return r.kind
    parts = r.case.split("-")
    return f"loop {parts[0]} {parts[-1]}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _num(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def render(report: EvalReport, mutants: MutationReport | None = None) -> str:
    """The Markdown report."""
    s = report.summary
    base = report.baseline or {}
    base_cases: dict[str, bool] = base.get("cases", {})
    lines = [
        "# Eval report",
        "",
        (
            f"{s['cases']} cases ({s['skipped']} skipped), {s['as_expected']} of {s['ran']} behave as "
            f"expected ({report.pass_rate:.0%}, threshold {report.threshold:.0%}); {s['passed']} pass every "
            f"scorer; safety violations: {report.safety_violations}; suite "
            f"{'PASSED' if report.passed else 'FAILED'} in {report.seconds:.0f} s."
        ),
        "",
        "## Slices (the do-nothing baseline beside the loop)",
        "",
        "| slice | cases | as expected | pass every scorer | baseline: pass every scorer |",
        "|---|---|---|---|---|",
    ]
    groups: dict[str, list[CaseResult]] = defaultdict(list)
    for r in report.cases:
        groups[_slice(r)].append(r)
    for name, rs in sorted(groups.items()):
        ran = [r for r in rs if not r.skipped]
        in_base = [r for r in ran if r.case in base_cases]
        b = f"{sum(base_cases[r.case] for r in in_base)}/{len(in_base)}" if in_base else "-"
        lines.append(
            f"| {name} | {len(rs)} | {sum(r.as_expected for r in ran)}/{len(ran)} | "
            f"{sum(r.passed for r in ran)}/{len(ran)} | {b} |"
        )
    a, ba = s["right_action"], (base.get("summary") or {}).get("right_action", {})
    lines += [
        "",
        "## Numbers",
        "",
        "| measure | loop | do-nothing baseline |",
        "|---|---|---|",
        (
            f"| right action (truth's acceptable set) | {a['strict_passed']}/{a['n']} | "
            f"{ba.get('strict_passed', '-')}/{ba.get('n', '-')} |"
        ),
        (
            f"| action kind accuracy / Cohen's kappa | {_pct(a['accuracy'])} / {_num(a['kappa'])} | "
            f"{_pct(ba.get('accuracy'))} / {_num(ba.get('kappa'))} |"
        ),
        f"| verdict right (vs counterfactual) | {s['verdict']['correct']}/{s['verdict']['n']} | - |",
        f"| prediction mean abs error (points of %) | {_num(s['prediction']['mean_abs_error_pct_points'], 1)} | - |",
        (
            f"| 95 % interval covers the truth | {_pct(s['prediction']['coverage_95'])} "
            f"(n={s['prediction']['n']}) | - |"
        ),
        f"| guardrail breaches / kept | {s['guardrail']['breaches']} / {s['guardrail']['breaches_kept']} | - |",
        (
            f"| safety violations | {s['safety_violations']} | "
            f"{(base.get('summary') or {}).get('safety_violations', '-')} |"
        ),
        (
            f"| people: mean kappa / accuracy | {_num(s['people']['mean_kappa'])} / "
            f"{_pct(s['people']['mean_accuracy'])} | - |"
        ),
        (
            f"| model calls / steps / loop seconds | {s['usage']['model_calls']} / {s['usage']['steps']} / "
            f"{s['usage']['loop_seconds']} | - |"
        ),
        (
            f"| tokens (store's metered calls) / estimated cost | {s['usage'].get('tokens', 0)} / "
            f"${s['usage']['estimated_cost_usd']} | - |"
        ),
        "",
        "Action kinds, truth (rows) against the loop's choice (columns):",
        "",
    ]
    labels = sorted(a["confusion"])
    lines += ["| truth \\ chosen | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    lines += [
        f"| {t} | " + " | ".join(str(a["confusion"][t].get(p, 0)) for p in labels) + " |"
        for t in labels
    ]
    lines += [
        "",
        "## Cases",
        "",
        "| case | outcome | result | failing scorers | known gaps |",
        "|---|---|---|---|---|",
    ]
    for r in report.cases:
        failing = "; ".join(f"{x.scorer}: {x.detail[:90]}" for x in r.scores if not x.passed)
        status = (
            "skipped: " + r.skipped[:60]
            if r.skipped
            else ("as expected" if r.as_expected else "OFF")
        )
        gaps = ", ".join(r.gaps) or (r.known_gap[:60] if r.known_gap else "")
        lines.append(
            f"| {r.case} | {r.outcome} | {status} | {failing.replace('|', '/')} | {gaps} |"
        )
    if mutants is not None:
        lines += _mutants(mutants)
    return "\n".join(lines) + "\n"


def _mutants(m: MutationReport) -> list[str]:
    out = [
        "",
        "## Mutants",
        "",
        (
            f"Kill rate {m.kill_rate:.0%} ({sum(x.killed for x in m.mutants)} of {len(m.mutants)}) "
            f"in {m.seconds:.0f} s."
        ),
        "",
        "| mutant | what it breaks | killed | by |",
        "|---|---|---|---|",
    ]
    for x in m.mutants:
        by = (x.by[0][:140] if x.by else "").replace("|", "/")
        out.append(f"| {x.mutant} | {x.what} | {'yes' if x.killed else 'NO'} | {by} |")
    return out


def as_json(report: EvalReport, mutants: MutationReport | None = None) -> dict[str, Any]:
    """The JSON report."""
    data = report.model_dump(mode="json")
    if mutants is not None:
        data["mutation"] = mutants.model_dump(mode="json")
    return data
