"""The twin command line: twin fit / simulate, whatif, optimize."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from closedloop import cli
from closedloop.tools.twin.fit import ProcessTwin
from closedloop.tools.twin.simulate import LOG_COLUMNS


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``closedloop <argv>`` (through ``closedloop.cli.main``)."""
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def repair_log(bundled_data: Path) -> str:
    return str(bundled_data / "03_repairExample.xes.gz")


@pytest.fixture
def repair_twin(repair_log: str, tmp_path: Path, capsys) -> Path:
    out = tmp_path / "twin.json"
    code, _, err = run(["twin", "fit", repair_log, "--out", str(out)], capsys)
    assert code == 0, err
    return out


def test_twin_fit_writes_a_twin_that_loads(repair_twin: Path) -> None:
    twin = ProcessTwin.model_validate_json(repair_twin.read_text())
    assert twin.n_cases == 1104 and "Repair (Complex)" in twin.pools


def test_twin_simulate_writes_the_log_columns(repair_twin: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sim.csv"
    code, text, err = run(["twin", "simulate", str(repair_twin), "--cases", "40", "--start",
                           "2024-03-04T08:00", "--out", str(out)], capsys)  # fmt: skip
    assert code == 0, err
    log = pd.read_csv(out)
    assert list(log.columns) == LOG_COLUMNS == ["case_id", "activity", "start_time", "end_time",
                                                "resource"]  # fmt: skip
    assert log["case_id"].nunique() == 40 and "40 cases" in text
    starts = pd.to_datetime(log["start_time"], utc=True)
    assert starts.min() == pd.Timestamp("2024-03-04T08:00", tz="UTC")
    assert (pd.to_datetime(log["end_time"], utc=True) >= starts).all()


def test_whatif_from_a_log_and_from_a_twin(repair_log: str, repair_twin: Path, tmp_path: Path,
                                           capsys) -> None:  # fmt: skip
    scenario = '{"kind": "add_capacity", "activity_or_pool": "Repair (Complex)", "extra": 1}'
    code, text, err = run(["whatif", repair_log, "--scenario", scenario, "--cases", "100",
                           "--replications", "2"], capsys)  # fmt: skip
    assert code == 0, err
    assert "scenario add_capacity" in text and "mean cycle time" in text
    file = tmp_path / "scenario.json"
    file.write_text(scenario)
    code, text, err = run(["whatif", str(repair_twin), "--scenario", str(file), "--cases", "100",
                           "--replications", "2", "--json"], capsys)  # fmt: skip
    assert code == 0, err
    result = json.loads(text)
    assert result["scenario"]["kind"] == "add_capacity"
    assert result["capacity_what_if"]["Repair (Complex)"] == (
        result["capacity_as_is"]["Repair (Complex)"] + 1
    )
    assert {"mean", "ci_low", "ci_high"} <= set(result["delta"]["cycle_time_mean_hours"])


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ('{"kind": "add_capacity", "activity_or_pool": "Night desk", "extra": 1}',
         "unknown activity or pool 'Night desk'; pools: Analyze Defect"),
        ('{"kind": "add_capacity", "activity_or_pool": "Repair (Complex)", "extra": -50}',
         "minimum is 1"),
        ('{"kind": "shift_capacity", "activity_or_pool": "Test Repair", "from_hour": 8, "to_hour": 12, "capacity": -1}',
         "capacity: Input should be greater than or equal to 0"),
        ('{"kind": "automate_activity", "activity": "Teleport"}', "unknown activity 'Teleport'"),
        ('{"kind": "hire_everyone"}', "invalid scenario"),
        ("{not json", "neither a .json file nor valid JSON"),
    ],
)  # fmt: skip
def test_whatif_bad_scenarios_fail_with_one_clear_line(
    repair_twin: Path, scenario: str, expected: str, capsys
) -> None:
    code, text, err = run(["whatif", str(repair_twin), "--scenario", scenario], capsys)
    assert code == cli.EXIT_STATE and text == ""
    assert err.startswith("closedloop: ScenarioError") and expected in err
    assert len(err.strip().splitlines()) == 1


def test_whatif_missing_log_is_an_input_error(tmp_path: Path, capsys) -> None:
    code, _, err = run(["whatif", str(tmp_path / "nope.xes"), "--scenario", '{"kind": "as_is"}'],
                       capsys)  # fmt: skip
    assert code == cli.EXIT_INPUT and "file not found" in err


def test_optimize_staffing_json_and_infeasible_exit_code(repair_log: str, capsys) -> None:
    code, text, err = run(["optimize", repair_log, "--budget", "1", "--cases", "100",
                           "--replications", "2", "--json"], capsys)  # fmt: skip
    assert code == 0, err
    plan = json.loads(text)
    assert plan["status"] == "optimal" and plan["total_extra_staff"] <= 1
    assert plan["confirmed"] in (True, False)
    code, text, _ = run(["optimize", repair_log, "--budget", "-1"], capsys)
    assert code == 1 and text.startswith("no allocation fits: budget_extra_staff=-1")


def test_optimize_shifts_and_assignment(repair_log: str, capsys) -> None:
    code, text, err = run(["optimize", repair_log, "--kind", "shifts", "--no-validate"], capsys)
    assert code == 0, err
    assert text.startswith("optimal:") and "staff hours per week" in text
    code, text, err = run(["optimize", repair_log, "--kind", "shifts", "--budget", "5",
                           "--no-validate"], capsys)  # fmt: skip
    assert code == 1 and "infeasible" in text and "budget_per_week=5" in text
    code, text, err = run(["optimize", repair_log, "--kind", "assignment", "--no-validate",
                           "--json"], capsys)  # fmt: skip
    assert code == 0, err
    assert json.loads(text)["objective"] == "waiting"


def test_optimize_bad_options_are_named(repair_log: str, capsys) -> None:
    code, _, err = run(["optimize", repair_log, "--kind", "shifts", "--objective", "staff"], capsys)
    assert code == cli.EXIT_STATE and "--objective 'staff' does not apply to --kind shifts" in err
    code, _, err = run(["optimize", repair_log, "--kind", "shifts", "--min-staff", "-1"], capsys)
    assert code == cli.EXIT_STATE and "min_staff must be >= 0" in err
    code, _, err = run(["optimize", repair_log], capsys)
    assert code == cli.EXIT_STATE and "needs --budget" in err
    code, _, err = run(["optimize", repair_log, "--kind", "threshold"], capsys)
    assert code == cli.EXIT_STATE and "none of the outcome activities" in err
