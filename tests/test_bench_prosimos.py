"""The known-truth harness of benchmarks/bench_prosimos_truth.py on a few hundred cases.

Needs ../shared/data/simulation (the Prosimos model of BPIC 2012 W) and a
Prosimos interpreter (``$PROSIMOS_PYTHON`` or prosimos importable here; it pins
pandas < 3, so it usually lives in its own venv, see the bench's docstring).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location(
    "bench_prosimos_truth", ROOT / "benchmarks" / "bench_prosimos_truth.py"
)
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)

needs_data = pytest.mark.skipif(
    not (bench.DATA / "BPIC_2012_W.json").exists(),
    reason=f"no Prosimos model at {bench.DATA} (../shared/data is not here)",
)
PYTHON = bench.find_prosimos_python()
needs_prosimos = pytest.mark.skipif(
    PYTHON is None,
    reason="no Prosimos: set PROSIMOS_PYTHON to an interpreter with `pip install prosimos`",
)


def _model() -> dict:
    return json.loads((bench.DATA / "BPIC_2012_W.json").read_text(encoding="utf-8"))


@needs_data
def test_branch_edit_sets_one_path_and_keeps_the_others_proportions() -> None:
    model = _model()
    bpmn = bench.DATA / "BPIC_2012_W.bpmn"
    old = bench.model_share(bpmn, model, bench.ROUTE_FROM, bench.ROUTE_TO)
    edited = bench.set_branch(bpmn, model, bench.ROUTE_FROM, bench.ROUTE_TO, 0.3)
    assert bench.model_share(bpmn, edited, bench.ROUTE_FROM, bench.ROUTE_TO) == pytest.approx(0.3)
    assert old == pytest.approx(0.8599, abs=1e-3)
    for gateway in edited["gateway_branching_probabilities"]:
        assert sum(p["value"] for p in gateway["probabilities"]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no single path"):
        bench.set_branch(bpmn, model, bench.ROUTE_FROM, "W_Beoordelen fraude", 0.3)


@needs_data
def test_clone_adds_a_person_with_the_same_work() -> None:
    model = _model()
    edited, new = bench.clone_person(model, "10809")
    tasks = [t for t in edited["task_resource_distribution"]
             if any(r["resource_id"] == "10809" for r in t["resources"])]  # fmt: skip
    assert tasks and all(any(r["resource_id"] == new for r in t["resources"]) for t in tasks)
    assert len(edited["resource_profiles"]) == len(model["resource_profiles"]) + 1
    with pytest.raises(ValueError, match="no person"):
        bench.clone_person(model, "nobody")


@needs_data
def test_a_slowed_activity_takes_longer_for_everyone_who_does_it() -> None:
    model = _model()
    bpmn = bench.DATA / "BPIC_2012_W.bpmn"
    task = bench.task_ids(bpmn)["W_Beoordelen fraude"]

    def durations(m: dict) -> list[list[float]]:
        return [[p["value"] for p in r["distribution_params"]]
                for t in m["task_resource_distribution"] if t["task_id"] == task
                for r in t["resources"]]  # fmt: skip

    before, after = durations(model), durations(bench.slowed(bpmn, model, "W_Beoordelen fraude", 6))
    assert len(before) == len(after) >= 2
    for (mean, var, low, high), (mean6, var6, low6, high6) in zip(before, after, strict=True):
        assert (mean6, var6, low6, high6) == pytest.approx((6 * mean, 36 * var, 6 * low, 6 * high))
    other = [t for t in model["task_resource_distribution"] if t["task_id"] != task]
    assert other == [t for t in bench.slowed(bpmn, model, "W_Beoordelen fraude", 6)[
        "task_resource_distribution"] if t["task_id"] != task]  # fmt: skip


@needs_data
@needs_prosimos
def test_skip_intervention_measured_end_to_end(tmp_path: Path) -> None:
    """One intervention, 300 cases: the edited model really lacks the activity, the truth is
    computed on it and the twin's prediction comes with an ordered interval."""
    model = _model()
    bpmn = bench.DATA / "BPIC_2012_W.bpmn"
    skipped = tmp_path / "skip.bpmn"
    edited = bench.skip_task(bpmn, model, bench.SKIP_ACTIVITY, skipped)
    log = bench.read_log(bench.run_prosimos(PYTHON, skipped, edited, 300, 3, tmp_path, "chk"))
    assert bench.SKIP_ACTIVITY not in set(log["concept:name"])
    assert log["case:concept:name"].nunique() == 300

    res = bench.measure_seed(PYTHON, 3, 300, 0, 2, {"skip_activity"}, tmp_path, 3, {}, model)
    (row,) = res["rows"]
    assert row["intervention"] == "skip_activity"
    assert math.isfinite(row["true_pct"]) and math.isfinite(row["pred_pct"])
    # the truth is the mean over 3 paired runs, with its standard error; the seed's own run
    # is kept beside it
    assert row["truth_runs"] == 3 and row["true_se_pct"] > 0
    assert math.isfinite(row["seed_true_pct"]) and row["seed_true_pct"] != row["true_pct"]
    assert row["low95"] <= row["p10"] <= row["pred_pct"] <= row["p90"] <= row["high95"]
    assert row["covered95"] == (row["low95"] <= row["true_pct"] <= row["high95"])
    assert res["found"]["bottleneck"] in res["found"]["waiting"]
    assert res["pools"], "the twin discovered no pools"
