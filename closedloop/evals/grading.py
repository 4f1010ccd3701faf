"""Grade one case from what its run left behind (its trace), so a stored trace can be graded
again later without running anything: the loop scorers, the adversarial expectations and the
people scorers all read only the trace, the case and the stored truth."""

from __future__ import annotations

from typing import Any

from closedloop.evals.cases import EvalCase
from closedloop.evals.loop_scorers import chosen_label, score_trace
from closedloop.evals.scorers import Score
from closedloop.evals.world import Trace

MODEL_ATTACKS = ("model_down", "model_slow", "model_malformed")


def case_truth(case: EvalCase, truths: dict[str, Any]) -> dict[str, Any] | None:
    """The stored counterfactual truth of the case's world (None when it names none)."""
    if case.truth is None:
        return None
    if case.truth not in truths:
        raise KeyError(f"case {case.name}: no stored truth {case.truth!r}; known: {sorted(truths)}")
    return truths[case.truth]


def initial_staffing(case: EvalCase, truths: dict[str, Any]) -> dict[str, int]:
    """Queue sizes of the world before the loop acted (the truth's, then the case's setup)."""
    truth = truths.get(case.truth or "", {})
    return {**truth.get("staffing", {}), **case.world.staffing}


#: ``truth: connector``: the case's truth is computed from its world through the connector
#: (closedloop.evals.o2c_truth) and kept in the trace
CONNECTOR = "connector"


def grade_loop(case: EvalCase, trace: Trace, truths: dict[str, Any]) -> list[Score]:
    """Every score of a loop or adversarial case from its trace."""
    if case.truth == CONNECTOR:
        if trace.truth is None:
            from closedloop.evals.o2c_truth import connector_truth

            trace.truth = connector_truth(case.world, trace.state)
        truth = trace.truth
    else:
        truth = case_truth(case, truths)
    expect = {**case.expect, "initial_staffing": initial_staffing(case, truths)}
    return score_trace(trace, expect, truth) + adversarial_scores(case, trace)


def adversarial_scores(case: EvalCase, trace: Trace) -> list[Score]:
    """Adversarial expectations: the plan is the one of the clean world; a model outage shows
    in every step that fell back, in the run's own record and in its report."""
    out = []
    kind = case.attack.kind if case.attack else None
    if "same_plan_as" in case.expect:
        got = chosen_label(trace)
        out.append(
            Score(
                scorer="unswayed",
                passed=got == case.expect["same_plan_as"],
                detail=f"chose {got!r}; the clean world's plan is {case.expect['same_plan_as']!r}",
            )
        )
    if kind in MODEL_ATTACKS:
        from closedloop.report import degraded_line

        agent_steps = [s for s in trace.state.get("steps", []) if "fallback" in s]
        flagged = all(s.get("fallback") for s in agent_steps) and bool(agent_steps)
        # the run's record and the line its report (render_run) opens with
        said = bool(trace.degraded) and "DEGRADED" in (
            degraded_line(trace.state, trace.degraded) or ""
        )
        out.append(
            Score(
                scorer="outage_recorded_per_step",
                passed=flagged,
                detail=f"{sum(bool(s.get('fallback')) for s in agent_steps)} of "
                f"{len(agent_steps)} agent steps say they fell back",
            )
        )
        out.append(
            Score(
                scorer="outage_in_outcome",
                passed=said,
                detail=f"run {trace.state.get('outcome')!r}, degraded {trace.degraded!r} after "
                f"{len(trace.model_errors)} model error(s)",
            )
        )
    return out
