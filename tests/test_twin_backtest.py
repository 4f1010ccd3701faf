"""Calibration as a feature (issue 9): the twin's own backtest, its gate and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from closedloop import cli
from closedloop.tools.twin import TwinBacktest, backtest_twin, twin_passes_backtest
from tests.test_twin_uncertainty import two_step_log


@pytest.fixture(scope="module")
def stationary():
    return two_step_log(500, 5, delay_b=0.5)


def test_a_stationary_process_backtests_within_its_interval(stationary) -> None:
    bt = backtest_twin(stationary, train_share=0.8, replications=5)
    assert bt.status == "ok" and bt.test_cases > 50 and bt.train_cases > 300
    assert bt.covered and abs(bt.error_pct) < 25
    assert bt.predicted.low95 < bt.realised_hours < bt.predicted.high95
    assert bt.baseline_error_pct is not None
    verdict = twin_passes_backtest(bt)
    assert verdict and "error" in verdict.reason


def test_a_twin_that_misses_fails_and_says_why() -> None:
    bad = TwinBacktest(train_share=0.8, realised_hours=10.0, error_pct=+295.0, covered=False,
                       baseline_hours=32.7, baseline_error_pct=+227.0)
    verdict = twin_passes_backtest(bad, max_error=0.25)
    assert not verdict and "fails its backtest" in verdict.reason and "+295" in verdict.reason
    lucky = bad.model_copy(update={"covered": True, "error_pct": 40.0})
    assert twin_passes_backtest(lucky)  # covered and better than the training mean
    assert not twin_passes_backtest(lucky.model_copy(update={"baseline_error_pct": 10.0}))


def test_too_little_data_is_skipped_not_failed() -> None:
    bt = backtest_twin(two_step_log(12, 1, delay_b=0.5))
    assert bt.status == "skipped" and "too few" in bt.reason
    assert twin_passes_backtest(bt) and not twin_passes_backtest(bt, require=True)
    assert twin_passes_backtest(None) and "no backtest" in twin_passes_backtest(None).reason


def test_twin_fit_prints_and_stores_its_backtest(stationary, tmp_path: Path, capsys) -> None:
    log = tmp_path / "log.csv"
    stationary.to_csv(log, index=False)
    out = tmp_path / "twin.json"
    assert cli.main(["twin", "fit", str(log), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "backtest (fit on the first 80%" in text and "backtest verdict" in text
    stored = json.loads(out.read_text())["backtest"]
    assert stored["status"] == "ok" and stored["predicted"]["high95"] > 0
    assert cli.main(["twin", "fit", str(log), "--out", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["backtest"]["covered"] is not None
    assert cli.main(["twin", "fit", str(log), "--out", str(out), "--no-backtest"]) == 0
    assert json.loads(out.read_text())["backtest"] is None
