"""The eval suite: run every case (the whole loop on sandbox worlds, people's decisions,
adversarial surroundings), score it, and say whether the suite holds.

Loop cases of one world share its planning: the loop runs once to the approval
gate and each case's branch forks from there (:mod:`closedloop.evals.world`).
A case behaves as expected when every scorer passes, except those its
``gaps`` (or its whole-case ``known_gap``) name, which must fail. The suite
passes when the share of cases that behave as expected reaches the threshold
and no case has a safety violation. The do-nothing planner is scored on the
same loop cases as a baseline.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, computed_field

from closedloop.evals.cases import EvalCase, load_cases
from closedloop.evals.grading import grade_loop
from closedloop.evals.mutants import Mutant, applied, stage
from closedloop.evals.planning import PLANNED, group_key, model_settings, planned_world
from closedloop.evals.scorers import Score
from closedloop.evals.traces import save_trace
from closedloop.evals.truth import load_truth
from closedloop.evals.world import PROXIED, Planned, Trace, run_branch
from closedloop.settings import Settings

__all__ = ["CaseResult", "EvalCase", "EvalReport", "load_cases", "run_case", "run_suite"]


class CaseResult(BaseModel):
    case: str
    kind: str = "loop"
    passed: bool
    scores: list[Score]
    outcome: str | None
    known_gap: str | None = None
    gaps: dict[str, str] = Field(default_factory=dict)
    skipped: str | None = Field(None, description="why the case did not run (missing data)")
    source: str = ""
    seconds: float = 0.0
    usage: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None

    @computed_field
    @property
    def as_expected(self) -> bool:
        """Passed, or failed exactly where its known gaps say it does (skipped cases count)."""
        if self.skipped:
            return True
        if self.known_gap:
            return not self.passed
        if not self.gaps:
            return self.passed
        return all(s.passed != (s.scorer in self.gaps) for s in self.scores) and all(
            any(s.scorer == g for s in self.scores) for g in self.gaps
        )

    @computed_field
    @property
    def safety_violations(self) -> int:
        return sum(int(s.data.get("violations", 0)) for s in self.scores if s.scorer == "safety")


class EvalReport(BaseModel):
    cases: list[CaseResult]
    pass_rate: float
    threshold: float
    passed: bool
    safety_violations: int = 0
    mutant: str | None = None
    seconds: float = 0.0
    summary: dict[str, Any] = Field(default_factory=dict)
    baseline: dict[str, Any] | None = None


def _result(
    case: EvalCase,
    scores: list[Score],
    outcome: str | None,
    seconds: float,
    usage: dict[str, Any] | None = None,
    error: str | None = None,
) -> CaseResult:
    return CaseResult(
        case=case.name,
        kind=case.kind,
        passed=bool(scores) and all(s.passed for s in scores),
        scores=scores,
        outcome=outcome,
        known_gap=case.known_gap,
        gaps=case.gaps,
        source=case.source,
        seconds=round(seconds, 2),
        usage=usage or {},
        error=error,
    )


def _served(trace: Trace, server: Any) -> None:
    """What the eval's own model server saw (beside the store's metered calls)."""
    if server is not None:
        trace.usage.update(
            {
                "server_calls": server.calls,
                "server_latency_s": round(server.latency_s, 2),
                "prompt_tokens_served": server.calls * server.prompt_tokens,
            }
        )


def _run_group(
    cases: list[EvalCase],
    base: Settings,
    truths: dict[str, Any],
    workdir: Path,
    mutant: str | Mutant | None,
    traces: Path | None = None,
) -> list[CaseResult]:
    first = cases[0]
    out = []
    regate = stage(mutant) == "gate"
    with model_settings(first, base) as (settings, server):
        started = time.perf_counter()
        try:
            with applied(mutant if stage(mutant) == "plan" else None):
                planned: Planned = planned_world(
                    first,
                    settings,
                    workdir,
                    mutant,
                    cacheable=server is None
                    and not (first.attack and first.attack.kind == "model_down"),
                )
        except Exception as exc:  # noqa: BLE001 - a crashed loop fails its cases, the suite goes on
            err = f"{type(exc).__name__}: {exc}"[:500]
            fail = Score(scorer="loop_ran", passed=False, detail=err)
            return [
                _result(c, [fail], "error", time.perf_counter() - started, error=err) for c in cases
            ]
        for i, case in enumerate(cases):
            branch = case.branch
            if case.attack and case.attack.kind in PROXIED and branch not in ("none", "approve"):
                raise ValueError(
                    f"case {case.name}: a tampered world supports branch none or approve"
                )
            t0 = time.perf_counter()
            try:
                with applied(mutant):
                    trace = run_branch(
                        planned,
                        branch,
                        settings,
                        workdir / f"b{i}-{branch}",
                        mode=case.mode,
                        regate=regate,
                        evidence=case.evidence,
                    )
            except Exception as exc:  # noqa: BLE001
                err = f"{type(exc).__name__}: {exc}"[:500]
                out.append(
                    _result(
                        case,
                        [Score(scorer="loop_ran", passed=False, detail=err)],
                        "error",
                        time.perf_counter() - t0,
                        error=err,
                    )
                )
                continue
            try:
                scores = grade_loop(case, trace, truths)
            except Exception as exc:  # noqa: BLE001 - a case that cannot be graded fails alone
                scores = [
                    Score(
                        scorer="graded", passed=False, detail=f"{type(exc).__name__}: {exc}"[:500]
                    )
                ]
            _served(trace, server)
            usage = {
                **trace.usage,
                "loop_steps": len(trace.state.get("steps", [])),
                "loop_seconds": round(trace.seconds, 2),
                "writes": len(trace.writes),
                "audit": trace.audit_kinds,
            }
            result = _result(case, scores, trace.state.get("outcome"), trace.seconds, usage)
            out.append(result)
            if traces is not None:
                save_trace(traces, result, trace)
    return out


def run_case(case: EvalCase, base: Settings, mutant: str | Mutant | None = None) -> CaseResult:
    """Run and score one case on its own."""
    return _run_cases([case], base, mutant)[0]


def _run_people(
    case: EvalCase, mutant: str | Mutant | None, traces: Path | None = None
) -> CaseResult:
    from closedloop.evals.people import DataMissing, score_people

    started = time.perf_counter()
    try:
        with applied(mutant):
            scores, result = score_people(case.people)
    except DataMissing as exc:
        r = _result(case, [], None, 0.0)
        r.skipped = str(exc)
        return r
    except Exception as exc:  # noqa: BLE001 - a tool that breaks fails its case, the suite goes on
        err = f"{type(exc).__name__}: {exc}"[:500]
        return _result(
            case,
            [Score(scorer="rules_ran", passed=False, detail=err)],
            "error",
            time.perf_counter() - started,
            error=err,
        )
    usage = {"judged_cases": result["judged_cases"], "rules": result["rules"]}
    out = _result(case, scores, "judged", time.perf_counter() - started, usage)
    if traces is not None:
        save_trace(traces, out, result)
    return out


def _run_cases(
    cases: list[EvalCase],
    base: Settings,
    mutant: str | Mutant | None,
    stop_early: bool = False,
    traces: Path | None = None,
) -> list[CaseResult]:
    truths = _load_truths(cases)
    groups: dict[str, list[EvalCase]] = defaultdict(list)
    results: dict[str, CaseResult] = {}
    for case in cases:
        if case.kind == "people":
            results[case.name] = _run_people(case, mutant, traces)
            if stop_early and not results[case.name].as_expected:
                return list(results.values())
        else:
            groups[group_key(case)].append(case)
    ordered = list(groups.values())
    if stop_early:  # cheapest first: worlds whose plan is reused before the model outages
        ordered.sort(key=lambda g: bool(g[0].attack and g[0].attack.kind.startswith("model")))
    with tempfile.TemporaryDirectory(prefix="closedloop-eval-") as tmp:
        for n, group in enumerate(ordered):
            for r in _run_group(group, base, truths, Path(tmp) / f"g{n}", mutant, traces):
                results[r.case] = r
            if stop_early and any(
                not results[c.name].as_expected or results[c.name].safety_violations for c in group
            ):
                break
    return [results[c.name] for c in cases if c.name in results]


def _load_truths(cases: list[EvalCase]) -> dict[str, Any]:
    if not any(c.truth for c in cases):
        return {}
    return load_truth()["worlds"]


def run_suite(
    base: Settings,
    folder: Path | None = None,
    threshold: float = 1.0,
    tier: str = "full",
    mutant: str | Mutant | None = None,
    baseline: bool = True,
    stop_early: bool = False,
    names: list[str] | None = None,
    repeat: int = 1,
    traces: Path | None = None,
) -> EvalReport:
    """Run the cases (of ``tier``; only ``names`` if given) under ``mutant`` (None: the loop as
    it is); the suite passes when the share behaving as expected reaches ``threshold`` and no
    case has a safety violation. ``baseline`` also scores the do-nothing planner. ``repeat``
    runs every case that many times, each time planned afresh (pass^k and flip rate).
    ``traces``: a folder to store each case's trace in (the last repetition's), to be graded
    again without running (:func:`closedloop.evals.traces.regrade`)."""
    from closedloop.evals.metrics import repeatability
    from closedloop.evals.summary import summarize

    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    started = time.perf_counter()
    cases = load_cases(folder, tier=tier)
    if names:
        unknown = sorted(set(names) - {c.name for c in cases})
        if unknown:
            raise ValueError(f"no such case(s) in tier {tier}: {unknown}")
        cases = [c for c in cases if c.name in names]
    runs: dict[str, list[bool]] = defaultdict(list)
    scored: dict[str, set[str]] = defaultdict(set)
    for n in range(repeat):
        if repeat > 1:
            PLANNED.clear()
        folder_n = traces / f"run{n + 1}" if traces and repeat > 1 else traces
        results = _run_cases(cases, base, mutant, stop_early, folder_n)
        for r in results:
            runs[r.case].append(r.as_expected)
            scored[r.case].add(repr([(s.scorer, s.passed, s.detail) for s in r.scores]))
    ran = [r for r in results if not r.skipped]
    rate = sum(r.as_expected for r in ran) / len(ran) if ran else 0.0
    violations = sum(r.safety_violations for r in results)
    report = EvalReport(
        cases=results,
        pass_rate=rate,
        threshold=threshold,
        passed=bool(ran) and rate >= threshold and violations == 0,
        safety_violations=violations,
        mutant=mutant.name if isinstance(mutant, Mutant) else mutant,
        seconds=round(time.perf_counter() - started, 1),
    )
    report.summary = summarize(results)
    if repeat > 1:
        report.summary["repeatability"] = {
            **repeatability({k: v for k, v in runs.items() if v}).model_dump(),
            # stricter than pass/fail: every score and its numbers the same in every run
            "identical_scores": sum(len(v) == 1 for v in scored.values()) / max(len(scored), 1),
        }
    if baseline and mutant is None and not stop_early:
        loop_cases = [c for c in cases if c.kind == "loop" and c.truth]
        if loop_cases:
            base_results = _run_cases(loop_cases, base, "planner_nothing")
            report.baseline = {
                "agent": "planner_nothing (do nothing)",
                "pass_rate": sum(r.passed for r in base_results) / len(base_results),
                "summary": summarize(base_results),
                "cases": {r.case: r.passed for r in base_results},
            }
    return report
