"""Conformance on real logs and models, checked against pm4py's own token-based measures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from closedloop.tools.base import ToolKind
from closedloop.tools.errors import ToolError
from closedloop.tools.log.ingest import ACTIVITY, CASE, TIMESTAMP, load_event_log
from closedloop.tools.mining.conformance import (
    ConformanceReport,
    check_conformance,
    discovered_net,
    load_reference_model,
    replay_conformance,
)


def pm4py_measures(frame: pd.DataFrame, net: object, im: object, fm: object) -> tuple[float, ...]:
    """pm4py's token-based log fitness, share of fitting cases and precision (the oracle)."""
    import pm4py

    log = frame[[CASE, ACTIVITY, TIMESTAMP]]
    fitness = pm4py.fitness_token_based_replay(log, net, im, fm)
    precision = pm4py.precision_token_based_replay(log, net, im, fm)
    return fitness["log_fitness"], fitness["perc_fit_traces"] / 100, precision


def assert_matches_pm4py(report: ConformanceReport, frame: pd.DataFrame, model: tuple) -> None:
    fitness, fitting, precision = pm4py_measures(frame, *model)
    assert report.exact and report.fitness_ci is None and report.precision_ci is None
    assert report.fitness == pytest.approx(fitness, abs=1e-4)
    assert report.fitting_cases_share == pytest.approx(fitting, abs=1e-4)
    assert report.precision == pytest.approx(precision, abs=1e-4)
    f, p = report.fitness, report.precision
    assert report.f1 == pytest.approx(2 * f * p / (f + p), abs=1e-3)


@pytest.fixture(scope="module")
def running() -> pd.DataFrame:
    return load_event_log(
        Path(__file__).resolve().parents[1] / "closedloop/data/running-example.xes"
    )


@pytest.mark.parametrize("model", ["running-example.pnml", "running-example.bpmn"])
def test_reference_models_of_the_running_example(
    running: pd.DataFrame, bundled_data: Path, model: str
) -> None:
    report = check_conformance(running, bundled_data / model)
    assert_matches_pm4py(report, running, load_reference_model(bundled_data / model))
    assert report.fitness == 1.0 and report.deviations == [] and report.deviating_cases == 0
    assert 0.5 < report.precision < 1  # the model allows more than the six cases show
    assert report.model == f"reference model {model}"
    assert (report.cases, report.variants, report.sample_cases_share) == (6, 6, 1.0)
    json.dumps(report.model_dump(mode="json"))
    assert check_conformance.tool_kind is ToolKind.READ  # type: ignore[attr-defined]


def test_deviating_case_names_its_activities(running: pd.DataFrame, bundled_data: Path) -> None:
    """Case 3 skips 'check ticket' and gains an activity the model does not know."""
    frame = running[~((running[CASE] == "3") & (running[ACTIVITY] == "check ticket"))].copy()
    extra = frame[frame[CASE] == "3"].iloc[[0]].assign(**{ACTIVITY: "call customer"})
    frame = pd.concat([frame, extra], ignore_index=True).sort_values(
        [CASE, TIMESTAMP], kind="stable"
    )
    model = load_reference_model(bundled_data / "running-example.pnml")
    report = replay_conformance(frame, *model, model_name="running example")
    assert_matches_pm4py(report, frame, model)
    assert report.fitness < 1 and report.deviating_cases == 1
    assert report.activities_not_in_model == ["call customer"]
    (deviation,) = report.deviations
    assert deviation.case_id == "3" and deviation.similar_cases == 1
    assert deviation.missing_tokens >= 1 and deviation.trace_fitness < 1
    assert "decide" in deviation.unexpected_activities  # fired without its check
    assert "call customer" in deviation.unexpected_activities
    assert "check ticket" not in deviation.activities


def test_discovered_model_matches_pm4py_on_repair_example(bundled_data: Path) -> None:
    frame = load_event_log(bundled_data / "03_repairExample.xes.gz")
    net, im, fm, name, _ = discovered_net(frame)
    report = replay_conformance(frame, net, im, fm, name)
    assert_matches_pm4py(report, frame, (net, im, fm))
    assert report.model.startswith("discovered model")
    counts = [d.similar_cases for d in report.deviations]
    assert counts == sorted(counts, reverse=True)
    assert len(report.deviations) <= 20
    assert report.deviating_cases == round((1 - report.fitting_cases_share) * report.cases)


def test_sample_estimate_has_an_interval_around_the_exact_value(bundled_data: Path) -> None:
    frame = load_event_log(bundled_data / "helpdesk.xes.gz")
    net, im, fm, name, _ = discovered_net(frame)
    exact = replay_conformance(frame, net, im, fm, name)
    sampled = replay_conformance(frame, net, im, fm, name, seed=3, max_replay_steps=60)
    assert exact.exact and not sampled.exact and "sample" in sampled.method
    assert 0 < sampled.sample_cases_share < 1 and sampled.sample_variants < exact.variants
    lo, hi = sampled.fitness_ci
    assert lo <= sampled.fitness <= hi and hi - lo < 0.1
    lo, hi = sampled.precision_ci
    assert lo <= sampled.precision <= hi
    assert abs(sampled.fitness - exact.fitness) < 0.03
    assert abs(sampled.precision - exact.precision) < 0.1
    again = replay_conformance(frame, net, im, fm, name, seed=3, max_replay_steps=60)
    assert again.model_dump(exclude={"duration_s"}) == sampled.model_dump(exclude={"duration_s"})


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # pm4py's alignments
def test_receipt_against_its_bpmn_model(shared_data: Path) -> None:
    frame = load_event_log(shared_data / "logs" / "receipt.csv")
    model = load_reference_model(shared_data / "models" / "receipt.bpmn")
    report = replay_conformance(frame, *model, model_name="receipt")
    import pm4py

    log = frame[[CASE, ACTIVITY, TIMESTAMP]]
    diagnostics = pm4py.conformance_diagnostics_token_based_replay(log, *model)
    unfit = {
        case
        for case, d in zip(log[CASE].drop_duplicates(), diagnostics, strict=True)
        if not d["trace_is_fit"]
    }
    # pm4py's token replay finds 14 cases unfit; alignments fit every one of them perfectly,
    # and so does closedloop's exact check after token replay
    assert len(unfit) == 14
    aligned = pm4py.conformance_diagnostics_alignments(
        log[log[CASE].isin(unfit)], *model, multi_processing=False
    )
    assert all(a["fitness"] == 1.0 for a in aligned)
    assert report.fitness == 1.0 and report.deviating_cases == 0 and not report.deviations
    assert "replayed exactly" in report.method


@pytest.mark.slow
def test_receipt_precision_matches_pm4py(shared_data: Path) -> None:
    frame = load_event_log(shared_data / "logs" / "receipt.csv")
    model = load_reference_model(shared_data / "models" / "receipt.bpmn")
    report = replay_conformance(frame, *model)
    assert report.precision == pytest.approx(pm4py_measures(frame, *model)[2], abs=1e-4)


def test_bad_models_are_refused(tmp_path: Path, running: pd.DataFrame) -> None:
    with pytest.raises(ToolError, match="not found"):
        check_conformance(running, tmp_path / "missing.pnml")
    (tmp_path / "model.txt").write_text("not a model")
    with pytest.raises(ToolError, match="expected .bpmn or .pnml"):
        load_reference_model(tmp_path / "model.txt")
    (tmp_path / "broken.pnml").write_text("<pnml><net>")
    with pytest.raises(ToolError, match="broken.pnml"):
        load_reference_model(tmp_path / "broken.pnml")
    with pytest.raises(ToolError, match="max_replay_steps"):
        replay_conformance(running, *discovered_net(running)[:3], max_replay_steps=0)
