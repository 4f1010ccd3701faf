"""Small logs stay cheap: no start-up a tiny log does not need, with the same answers.

Times are measured in benchmarks/bench_small_logs.py, never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from closedloop.tools.mining.rootcause import MIN_CLASS_CASES, _spearman, explain_target

DATA = Path(__file__).resolve().parents[1] / "closedloop" / "data"

PROBE = """
import json, sys
from closedloop.tools.log import load_event_log
from closedloop.tools.mining import diagnose
report = diagnose(load_event_log(sys.argv[1]))
print(json.dumps({
    "modules": sorted(m for m in ("sklearn", "scipy.stats") if m in sys.modules),
    "verdicts": [rc.verdict for rc in report.root_causes],
    "fitness": report.model.fitness if report.model else None,
}))
"""


def test_tiny_log_diagnosis_imports_neither_sklearn_nor_scipy_stats() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(DATA / "running-example.xes")],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["modules"] == []
    assert result["verdicts"] and all("too few cases" in v for v in result["verdicts"])
    assert result["fitness"] == pytest.approx(1.0)


def test_spearman_without_scipy_matches_pandas() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        x = rng.integers(0, 4, 40).astype(float)  # many ties
        y = rng.normal(size=40)
        x[rng.random(40) < 0.2] = np.nan
        y[rng.random(40) < 0.1] = np.nan
        expected = pd.Series(x).corr(pd.Series(y), method="spearman")
        assert _spearman(x, y) == pytest.approx(expected, abs=1e-12)
    assert np.isnan(_spearman(np.ones(5), np.arange(5.0)))  # constant: undefined, not 0


def test_root_causes_need_enough_cases_of_each_outcome() -> None:
    """Four slow cases of twenty: no tree is fitted, the verdict says why."""
    rows = []
    for i in range(20):
        hours = 100 if i < MIN_CLASS_CASES - 1 else 1
        start = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=i)
        rows += [
            {
                "case:concept:name": f"c{i}",
                "concept:name": "a",
                "time:timestamp": start,
                "case:kind": "x" if i % 2 else "y",
            },
            {
                "case:concept:name": f"c{i}",
                "concept:name": "b",
                "time:timestamp": start + pd.Timedelta(hours=hours),
                "case:kind": "x" if i % 2 else "y",
            },
        ]
    from closedloop.tools.log import as_canonical

    frame = as_canonical(pd.DataFrame(rows), "test")
    report = explain_target(frame, "slow", slow_percentile=75.0)
    assert report.positives == MIN_CLASS_CASES - 1
    assert report.rules == [] and report.balanced_accuracy is None
    assert "too few cases of each outcome" in report.verdict
