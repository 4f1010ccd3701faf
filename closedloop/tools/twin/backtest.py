"""Calibration as a feature: every twin can say how well it predicted its own log's future.

:func:`backtest_twin` cuts the log at ``train_share`` of its time span, fits
a twin on what an observer had at the cut (events completed by then; the
cases still open are censored and become the initial backlog), simulates
forward to the log's end (:mod:`closedloop.tools.twin.forward`) and compares
the predicted mean cycle time of the cases started after the cut with the
realised one, both seen as the log shows them at its end. It reports the
error, whether the 95 % (and 80 %) interval covered the realised value, and
the error of the naive forecast (the training mean cycle time).
:func:`twin_passes_backtest` is the gate the Planner calls before acting on a
twin's predictions.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
from pydantic import BaseModel

from closedloop.tools.errors import ScenarioError
from closedloop.tools.log.columns import CASE, COMPLETE, START
from closedloop.tools.twin.calibration import (
    Quantiles,
    TwinBacktest,
    predictive_quantiles,
    widest,
)
from closedloop.tools.twin.fit import Pooling, fit_twin
from closedloop.tools.twin.forward import simulate_forward
from closedloop.tools.twin.frame import HOUR, prepare
from closedloop.tools.twin.process_twin import ProcessTwin
from closedloop.tools.twin.uncertainty import bootstrap_twins

__all__ = ["BacktestVerdict", "backtest_twin", "twin_passes_backtest"]

MIN_TRAIN_CASES = 20
MIN_TEST_CASES = 5
DEFAULT_MAX_ERROR = 0.25


def _skipped(train_share: float, reason: str, began: float) -> TwinBacktest:
    return TwinBacktest(status="skipped", reason=reason, train_share=train_share,
                        seconds=time.perf_counter() - began)  # fmt: skip


def backtest_twin(
    frame: pd.DataFrame,
    train_share: float = 0.8,
    seed: int = 0,
    replications: int = 5,
    bootstrap: int = 0,
    pooling: Pooling = "auto",
) -> TwinBacktest:
    """Fit on the earlier ``train_share`` of the log's time span, predict the later part.

    Returns a :class:`~closedloop.tools.twin.calibration.TwinBacktest` with
    the realised and predicted mean cycle time of the cases started after
    the cut (prediction: mean over ``replications`` forward runs and
    ``bootstrap`` refitted twins, with p10 / p50 / p90 and a 95 % interval),
    the error in percent, coverage, and the training-mean baseline. Status
    "skipped" (with the reason) when either side has too few cases.
    ScenarioError for a share outside (0, 1).
    """
    began = time.perf_counter()
    if not 0.0 < train_share < 1.0:
        raise ScenarioError(f"train_share must be between 0 and 1, got {train_share}")
    df, _ = prepare(frame)
    t_first, t_end = df[START].min(), df[COMPLETE].max()
    cut = t_first + (t_end - t_first) * train_share
    train = df[df[COMPLETE] <= cut]
    case_start = df.groupby(CASE, sort=False)[START].min()
    test_ids = case_start.index[case_start >= cut]
    n_train = int(train[CASE].nunique())
    if n_train < MIN_TRAIN_CASES or len(test_ids) < MIN_TEST_CASES:
        return _skipped(
            train_share,
            f"too few cases to backtest ({n_train} before the cut, {len(test_ids)} after; "
            f"needs {MIN_TRAIN_CASES} and {MIN_TEST_CASES})",
            began,
        )
    test = df[df[CASE].isin(set(test_ids))].groupby(CASE, sort=False)
    realised = float(((test[COMPLETE].max() - test[START].min()) / HOUR).mean())
    twin = fit_twin(train, seed=seed, pooling=pooling)
    start, until = cut.floor("us").to_pydatetime(), t_end.floor("us").to_pydatetime()
    # The log admits no case after its last case start (logs are often extracted by case
    # start while their events go on): the forecast draws arrivals up to there only.
    admits_until = case_start.max().floor("us").to_pydatetime()

    arrivals = [t.floor("us").to_pydatetime() for t in case_start[test_ids].sort_values()]
    refits = bootstrap_twins(train, twin, bootstrap, seed) if bootstrap else []

    def forecast(given: list | None) -> Quantiles | None:
        def one(tw: ProcessTwin, rep: int) -> float:
            return simulate_forward(tw, start, until, seed=seed, replication=rep, arrivals=given,
                                    arrivals_until=admits_until if given is None else None,
                                    ).mean_cycle_hours  # fmt: skip

        runs = [one(twin, r) for r in range(replications)]
        boot = [one(tw, replications + i) for i, tw in enumerate(refits)]
        runs, boot = [x for x in runs if math.isfinite(x)], [x for x in boot if math.isfinite(x)]
        return predictive_quantiles(float(np.mean(runs)), *widest(runs, boot)) if runs else None

    predicted, replayed = forecast(None), forecast(arrivals)
    if predicted is None:
        return _skipped(train_share, "no simulated case started after the cut", began)
    baseline = twin.observed.mean_cycle_time_hours
    return TwinBacktest(
        train_share=train_share,
        cut=cut.isoformat(),
        log_end=t_end.isoformat(),
        train_cases=n_train,
        test_cases=len(test_ids),
        open_at_cut=len(twin.open_cases),
        realised_hours=realised,
        predicted=predicted,
        error_pct=100 * (predicted.mean - realised) / realised if realised > 0 else None,
        covered=predicted.low95 <= realised <= predicted.high95,
        covered_80=predicted.p10 <= realised <= predicted.p90,
        baseline_hours=baseline,
        baseline_error_pct=100 * (baseline - realised) / realised if realised > 0 else None,
        replayed=replayed,
        replayed_error_pct=_error(replayed, realised),
        replayed_covered=replayed.low95 <= realised <= replayed.high95 if replayed else None,
        arrivals_per_day_before=_per_day(int((case_start < cut).sum()), cut - t_first),
        arrivals_per_day_after=_per_day(len(test_ids), case_start.max() - cut),
        seconds=time.perf_counter() - began,
    )


def _error(q: Quantiles | None, realised: float) -> float | None:
    return 100 * (q.mean - realised) / realised if q is not None and realised > 0 else None


def _per_day(cases: int, span: pd.Timedelta) -> float | None:
    hours = span / HOUR
    return float(cases / hours * 24) if hours > 0 else None


class BacktestVerdict(BaseModel):
    """Whether a twin's predictions may be acted on, and why (truthy when passed)."""

    passed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.passed


def twin_passes_backtest(
    backtest: TwinBacktest | None,
    max_error: float = DEFAULT_MAX_ERROR,
    require: bool = False,
) -> BacktestVerdict:
    """The Planner's gate: may a twin with this backtest be acted on?

    Passes when the backtest's absolute error is within ``max_error`` (a
    fraction, default 0.25), or when its 95 % interval covered the realised
    value and it beat the training-mean baseline, or when the same forecast
    with the log's own arrivals is within ``max_error`` (the process model
    holds and only the arrival forecast missed; the reason says so). A missing or skipped
    backtest (too little data to split) passes unless ``require``; the
    reason says so either way.
    """
    if backtest is None or backtest.status != "ok" or backtest.error_pct is None:
        why = "no backtest" if backtest is None else f"backtest skipped: {backtest.reason}"
        return BacktestVerdict(passed=not require, reason=why)
    err = abs(backtest.error_pct)
    base = abs(backtest.baseline_error_pct) if backtest.baseline_error_pct is not None else None
    facts = (f"backtest error {backtest.error_pct:+.0f} % (limit {100 * max_error:.0f} %), "
             f"interval {'covered' if backtest.covered else 'missed'} the realised "
             f"{backtest.realised_hours:.3g} h"
             + (f", training mean errs {backtest.baseline_error_pct:+.0f} %" if base is not None
                else ""))  # fmt: skip
    if err <= 100 * max_error:
        return BacktestVerdict(passed=True, reason=facts)
    if backtest.covered and base is not None and err < base:
        return BacktestVerdict(passed=True, reason=facts + "; covered and better than the mean")
    replayed = backtest.replayed_error_pct
    if replayed is not None:
        facts += (f"; with the log's own arrivals ({_rate(backtest.arrivals_per_day_before)} -> "
                  f"{_rate(backtest.arrivals_per_day_after)} cases a day) {replayed:+.0f} %")  # fmt: skip
        if abs(replayed) <= 100 * max_error:
            return BacktestVerdict(
                passed=True,
                reason=facts + ": the process model holds, the arrival forecast missed "
                "(a what-if compares both worlds on the same arrivals)",
            )
    return BacktestVerdict(passed=False, reason="twin fails its backtest: " + facts)


def _rate(per_day: float | None) -> str:
    return "?" if per_day is None else f"{per_day:.3g}"
