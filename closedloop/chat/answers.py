"""Typed questions answered by the agents' tools, as a list of tool calls plus a renderer.

Each intent about a mined log becomes an :class:`AnswerPlan`: the tool calls to
make (name, arguments, the call itself, a one-line summary of its result) and a
function that turns their results into Markdown. The chat runs each call in a
worker thread inside a Chainlit step, so people see which tool ran with which
arguments; tests run the same plan without a browser (:func:`run_plan`). Every
number shown comes from a tool result.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from closedloop.chat.render import Md, duration, md_table, md_text, pct
from closedloop.tools.errors import ToolError
from closedloop.tools.mining import MiningReport, RootCauseReport, explain_target
from closedloop.tools.twin import AddCapacity, Prediction, ProcessTwin, fit_twin, predict

WHAT_IF_BOOTSTRAP = 5
WHAT_IF_REPLICATIONS = 5
WHAT_IF_CASES = 600


@dataclass
class LogAnalysis:
    """A mined log held by one chat session: its frame, report and (once fitted) twin."""

    name: str
    frame: pd.DataFrame
    report: MiningReport
    seed: int = 0
    twin: ProcessTwin | None = None


@dataclass
class ToolCall:
    """One tool call of an answer: ``run(results so far)`` returns the result, ``summary`` says it in a line."""

    name: str
    args: dict[str, Any]
    run: Callable[[list[Any]], Any]
    summary: Callable[[Any], str]


@dataclass
class AnswerPlan:
    """The tool calls answering one question and how to show their results."""

    calls: list[ToolCall]
    render: Callable[[list[Any]], Md]
    elements: list[Any] = field(default_factory=list)


def run_plan(plan: AnswerPlan) -> tuple[Md, list[Any]]:
    """Run every call in order (no UI) and render; returns the Markdown and the results."""
    results: list[Any] = []
    for call in plan.calls:
        results.append(call.run(results))
    return plan.render(results), results


# --------------------------------------------------------------------------- why slow
def rules_md(report: RootCauseReport, top: int = 3) -> Md:
    """Root-cause rules as a table (or a sentence when no rule clears support and lift)."""
    if not report.rules:
        return Md(
            f"No group of cases stands out ({md_text(report.target, 200)}; base rate "
            f"{pct(report.base_rate)})."
        )
    rows = [
        (
            md_text(" AND ".join(r.conditions), 300),
            pct(r.support),
            pct(r.confidence),
            Md(f"{r.lift:.1f}x"),
        )
        for r in report.rules[:top]
    ]
    return md_table(
        ["Cases that are more often affected", "Share of cases", "Affected in the group", "Lift"],
        rows,
        align="lrrr",
    )


def why_slow(analysis: LogAnalysis) -> AnswerPlan:
    """Where cases wait longest (bottlenecks) and which kinds of cases are slow (root causes)."""
    report = analysis.report

    def bottleneck_summary(found: list[Any]) -> str:
        if not found:
            return "no activity waits the threshold on average"
        return f"{found[0].activity}: waits {found[0].waiting_hours:.1f} h on average"

    calls = [
        ToolCall(
            "mining.bottlenecks",
            {"log": analysis.name, "threshold_hours": report.bottleneck_threshold_hours},
            lambda _r: list(report.bottlenecks),
            bottleneck_summary,
        ),
        ToolCall(
            "mining.root_causes",
            {"log": analysis.name, "target": "slow", "slow_percentile": 75},
            lambda _r: explain_target(analysis.frame, "slow", seed=analysis.seed),
            lambda rc: f"{len(rc.rules)} rule(s); {rc.positives:,} of {rc.cases:,} cases slow",
        ),
    ]

    def render(results: list[Any]) -> Md:
        found, causes = results
        lines = [f"### Why cases are slow in {md_text(analysis.name, 120)}", ""]
        if found:
            b = found[0]
            lines.append(
                f"**Bottleneck: {md_text(b.activity, 120)}.** Cases wait {duration(b.waiting_hours)} on "
                f"average before it (median {duration(b.median_waiting_hours)}); that is "
                f"{pct(b.share_of_waiting)} of all waiting in the log, {duration(b.total_delay_hours)} "
                f"in total, and {b.cases_affected:,} cases waited at least "
                f"{duration(report.bottleneck_threshold_hours)} there."
            )
            if len(found) > 1:
                rest = ", ".join(
                    f"{md_text(x.activity, 80)} ({duration(x.waiting_hours)})" for x in found[1:4]
                )
                lines.append(f"Next longest waits: {rest}.")
        else:
            lines.append(
                f"No activity waits {duration(report.bottleneck_threshold_hours)} or more on average."
            )
        lines += [
            "",
            f"**Root causes** ({md_text(causes.target, 200)}; {pct(causes.base_rate)} of cases):",
            "",
            rules_md(causes),
        ]
        return Md("\n".join(lines))

    return AnswerPlan(calls, render)


# --------------------------------------------------------------------------- rework
def rework(analysis: LogAnalysis) -> AnswerPlan:
    """Which steps are repeated within a case, how often, and in which kinds of cases."""
    report = analysis.report
    calls = [
        ToolCall(
            "mining.rework",
            {"log": analysis.name},
            lambda _r: list(report.rework),
            lambda found: f"{len(found)} activit{'y' if len(found) == 1 else 'ies'} repeated",
        )
    ]
    if report.rework:
        calls.append(
            ToolCall(
                "mining.root_causes",
                {"log": analysis.name, "target": "rework"},
                lambda _r: explain_target(analysis.frame, "rework", seed=analysis.seed),
                lambda rc: (
                    f"{len(rc.rules)} rule(s); {rc.positives:,} of {rc.cases:,} cases reworked"
                ),
            )
        )

    def render(results: list[Any]) -> Md:
        found = results[0]
        head = f"### Rework in {md_text(analysis.name, 120)}"
        if not found:
            return Md(f"{head}\n\nNo activity is repeated within a case.")
        table = md_table(
            ["Activity", "Cases with rework", "Share of cases", "Extra executions"],
            [
                (r.activity, r.cases_with_rework, pct(r.share_of_cases), r.extra_executions)
                for r in found[:5]
            ],
            align="lrrr",
        )
        return Md(
            f"{head}\n\n{table}\n\n**Where it happens more often:**\n\n{rules_md(results[1])}"
        )

    return AnswerPlan(calls, render)


# --------------------------------------------------------------------------- what-if
ORDINALS = {
    "first": "1",
    "1st": "1",
    "one": "1",
    "second": "2",
    "2nd": "2",
    "two": "2",
    "third": "3",
    "3rd": "3",
    "three": "3",
    "fourth": "4",
    "4th": "4",
}


def words(text: str) -> set[str]:
    """Normalised tokens of a name or phrase: ordinals as digits, ``L2`` and ``second line`` alike."""
    raw = re.findall(r"[a-z]+\d+|\d+(?:st|nd|rd|th)?|[a-z]+", str(text).lower())
    tokens = [ORDINALS.get(t, t) for t in raw]
    out = set(tokens)
    for a, b in itertools.pairwise(tokens):
        if a.isdigit() and b == "line":
            out.add(f"l{a}")
    for t in tokens:
        level = re.fullmatch(r"l(\d)", t)
        if level:
            out |= {level.group(1), "line"}
    return out


def resolve_team(twin: ProcessTwin, phrase: str) -> str:
    """The twin's pool a phrase means (its name, one of its activities or people); ToolError
    listing the teams found in the log when nothing matches."""
    wanted = words(phrase)
    if not wanted:
        raise ToolError("name the team, activity or person to change")
    best: tuple[float, float, str] | None = None
    for pool in twin.pools.values():
        names = [pool.name, *pool.activities, *pool.resource_names]
        score = max(len(wanted & words(n)) / len(wanted) for n in names)
        key = (score, pool.arrivals_per_hour, pool.name)
        if score == 1.0 and (best is None or key > best):
            best = key
    if best is None:
        teams = "; ".join(f"{p.name} ({', '.join(p.activities[:3])})" for p in twin.pools.values())
        raise ToolError(
            f"no team, activity or person in this log matches {phrase!r}; teams found: {teams}"
        )
    return best[2]


def what_if(analysis: LogAnalysis, people: int, target: str) -> AnswerPlan:
    """Fit (or reuse) the twin, find the team meant, and predict adding ``people`` to it."""
    if people == 0:
        raise ToolError("say how many people to add (or remove)")

    def fit(_r: list[Any]) -> ProcessTwin:
        if analysis.twin is None:
            analysis.twin = fit_twin(analysis.frame, seed=analysis.seed)
        return analysis.twin

    def simulate(results: list[Any]) -> Prediction:
        twin, pool = results[0], results[1]
        return predict(
            twin,
            AddCapacity(activity_or_pool=pool, extra=people),
            analysis.frame,
            bootstrap=WHAT_IF_BOOTSTRAP,
            cases=WHAT_IF_CASES,
            replications=WHAT_IF_REPLICATIONS,
            seed=analysis.seed,
        )

    calls = [
        ToolCall(
            "twin.fit_twin",
            {"log": analysis.name, "seed": analysis.seed},
            fit,
            lambda t: f"{len(t.pools)} team(s) found from who does what: " + ", ".join(t.pools),
        ),
        ToolCall(
            "twin.resolve_pool",
            {"phrase": target},
            lambda r: resolve_team(r[0], target),
            lambda pool: f"{target!r} is team {pool}",
        ),
        ToolCall(
            "twin.predict",
            {
                "scenario": {"kind": "add_capacity", "activity_or_pool": "<team>", "extra": people},
                "bootstrap": WHAT_IF_BOOTSTRAP,
                "replications": WHAT_IF_REPLICATIONS,
            },
            simulate,
            lambda p: (
                f"cycle time {p.delta_pct.mean:+.1f}% "
                f"(95% interval {p.delta_pct.low95:+.1f}% to {p.delta_pct.high95:+.1f}%)"
            ),
        ),
    ]

    def render(results: list[Any]) -> Md:
        twin, pool_name, prediction = results
        return what_if_md(twin, pool_name, people, target, prediction)

    return AnswerPlan(calls, render)


def what_if_md(twin: ProcessTwin, pool_name: str, people: int, phrase: str, p: Prediction) -> Md:
    """The predicted effect of a staffing change with its intervals and what it rests on."""
    pool = twin.pools[pool_name]
    sim = p.result
    before = sim.capacity_as_is.get(pool_name, pool.capacity)
    after = sim.capacity_what_if.get(pool_name, before + people)
    verb = "Adding" if people > 0 else "Removing"
    who = f"{abs(people)} {'person' if abs(people) == 1 else 'people'}"
    ct, wait = p.delta_cycle_hours, p.delta_waiting_hours
    pool_wait_before = sim.as_is.waiting_by_pool_hours.get(pool_name)
    pool_wait_after = sim.what_if.waiting_by_pool_hours.get(pool_name)
    lines = [
        f"### What if: {verb.lower()} {who} {'to' if people > 0 else 'from'} {md_text(phrase, 80)}",
        "",
        (
            f"{md_text(phrase, 80)} is the team **{md_text(pool_name, 120)}** in this log "
            f"({md_text(', '.join(pool.activities), 200)}; {pool.resources} people seen, "
            f"{before} working at once on shift). {verb} {who}: {before} → {after}."
        ),
        "",
        md_table(
            ["Predicted effect", "Mean", "95% interval", "p10 to p90"],
            [
                (
                    "cycle time per case (%)",
                    Md(f"{p.delta_pct.mean:+.1f}%"),
                    Md(f"{p.delta_pct.low95:+.1f}% to {p.delta_pct.high95:+.1f}%"),
                    Md(f"{p.delta_pct.p10:+.1f}% to {p.delta_pct.p90:+.1f}%"),
                ),
                (
                    "cycle time per case (hours)",
                    Md(f"{ct.mean:+.2f} h"),
                    Md(f"{ct.low95:+.2f} to {ct.high95:+.2f} h"),
                    Md(f"{ct.p10:+.2f} to {ct.p90:+.2f} h"),
                ),
                (
                    "waiting per case (hours)",
                    Md(f"{wait.mean:+.2f} h"),
                    Md(f"{wait.low95:+.2f} to {wait.high95:+.2f} h"),
                    Md(f"{wait.p10:+.2f} to {wait.p90:+.2f} h"),
                ),
            ],
            align="lrrr",
        ),
        "",
        f"Baseline mean cycle time {sim.as_is.cycle_time_mean_hours.mean:.1f} h (simulated as is; the log: "
        f"{sim.observed.mean_cycle_time_hours:.1f} h)"
        + (
            f"; waiting for this team {pool_wait_before.mean:.2f} h → {pool_wait_after.mean:.2f} h per case"
            if pool_wait_before and pool_wait_after
            else ""
        )
        + ".",
        (
            f"From the digital twin fitted on this log: {p.replications} replications, {p.bootstrap} "
            "refits on resampled cases. A prediction, not a promise: the closed loop measures the "
            "realized effect against a control group."
        ),
    ]
    lines += [f"- {md_text(n, 300)}" for n in p.notes[:3]]
    return Md("\n".join(lines))
