"""A canary on a growing queue: the twin's interference correction from the forward run.

The world is a one-person FIFO queue a little over capacity (arrivals 1/h, service 1.05 h), so
its backlog grows. After the log's cut a bot takes half the cases past the queue; the control
half speeds up too. Each world is run with and without the canary on the same draws, which
gives the true total effect per treated case that a corrected treatment-vs-control claims.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from closedloop.tools.log.columns import ACTIVITY, CASE, RESOURCE, START, TIME_DTYPE, TIMESTAMP
from closedloop.tools.measure import (
    case_table,
    interference_correction,
    treatment_control_corrected,
    twin_interference,
)
from closedloop.tools.twin import AutomateActivity, fit_twin
from closedloop.tools.twin.forward import forward_pairs

T0 = pd.Timestamp("2024-01-01", tz="UTC")
CUT, WINDOW, SERVICE = 400.0, 200.0, 1.05
LABELS = {"r:treatment": "treatment", "r:control": "control"}
CANARY = AutomateActivity(activity="B", share=0.5)


def world(seed: int, canary: bool) -> list[dict]:
    """Cases registered (A) then served (B) by one person, first come first served; with the
    canary, cases arriving after the cut are drawn into the bot's half at arrival."""
    rng = np.random.default_rng(seed)
    free, cases = 0.0, []
    for i, t in enumerate(np.cumsum(rng.exponential(1.0, 900))):
        service, u = rng.exponential(SERVICE), rng.random()
        treated = canary and t >= CUT and u < 0.5
        ready = t + 0.02
        if treated:
            begin, end, who = ready, ready + 0.03, "bot"
        else:
            begin = max(ready, free)
            free = end = begin + service
            who = "b0"
        cases.append({"case": f"c{i}", "arrival": t, "b": (begin, end), "who": who,
                      "treated": treated})
    return cases


def events(cases: list[dict], since: float, until: float) -> pd.DataFrame:
    """The log of the cases arriving from ``since``: events completed by ``until``."""
    rows = []
    for c in cases:
        if c["arrival"] < since:
            continue
        cohort = "r:treatment" if c["treated"] else "r:control"
        for act, (s, e), who in (("A", (c["arrival"], c["arrival"] + 0.02), "a0"),
                                 ("B", c["b"], c["who"])):
            if e <= until:
                rows.append({CASE: c["case"], ACTIVITY: act, RESOURCE: who,
                             START: T0 + pd.Timedelta(hours=s), TIMESTAMP: T0 + pd.Timedelta(hours=e),
                             "case:experiment": cohort})
    frame = pd.DataFrame(rows)
    frame[START], frame[TIMESTAMP] = frame[START].astype(TIME_DTYPE), frame[TIMESTAMP].astype(TIME_DTYPE)
    return frame


def true_total_per_treated(base: list[dict], changed: list[dict]) -> float:
    window = [i for i, c in enumerate(base) if CUT <= c["arrival"] < CUT + WINDOW]
    delta = np.mean([changed[i]["b"][1] - base[i]["b"][1] for i in window])
    return float(delta / np.mean([changed[i]["treated"] for i in window]))


def measured(seed: int) -> tuple[float, dict[str, tuple[float, float, float]]]:
    """The truth, and the corrected estimate (effect, low, high) with each twin correction."""
    base, changed = world(seed, False), world(seed, True)
    twin = fit_twin(events(base, 0.0, CUT).drop(columns=["case:experiment"]))
    end = (T0 + pd.Timedelta(hours=CUT + WINDOW)).to_pydatetime()
    live = events(changed, CUT, CUT + WINDOW)
    cases = case_table(live, ["B"], end, cohort_column="case:experiment")
    tau = float(cases["hours"].max()) if not cases["closed"].all() else None
    window = (pd.Timestamp(end) - cases["arrival"].min()).total_seconds() / 3600
    out = {}
    forward = {"window_hours": window, "tau_hours": tau}
    seen = {"arrivals": [a.floor("us").to_pydatetime() for a in cases["arrival"]]}
    for name, scale in (("steady", {}), ("forward", forward), ("replayed", forward | seen)):
        total, direct = twin_interference(twin, CANARY, replications=5, seed=0, **scale)
        est = treatment_control_corrected(live, LABELS, end_activities=["B"], window_end=end,
                                          correction=interference_correction(total, direct))
        out[name] = (est.effect, est.ci_low, est.ci_high)
    return true_total_per_treated(base, changed), out


@pytest.fixture(scope="module")
def six_worlds() -> list[tuple[float, dict[str, tuple[float, float, float]]]]:
    return [measured(seed) for seed in range(1, 7)]


def test_the_forward_correction_covers_the_total_effect_of_a_canary_on_a_growing_queue(
    six_worlds,
) -> None:
    def covered(name: str) -> int:
        return sum(est[name][1] <= truth <= est[name][2] for truth, est in six_worlds)

    def error(name: str) -> float:
        return float(np.mean([abs(est[name][0] - truth) for truth, est in six_worlds]))

    # The steady state (the twin's queue from empty) cannot see the backlog the canary drains.
    # The forward run can, drawing the window's arrivals or replaying those the live log saw.
    assert covered("steady") <= 2, covered("steady")
    for name in ("forward", "replayed"):
        assert covered(name) >= 4, (name, covered(name))
        assert error(name) < 0.7 * error("steady"), (name, error(name), error("steady"))


def test_the_uncorrected_difference_sees_only_part_of_a_canary_on_a_shared_queue() -> None:
    base, changed = world(1, False), world(1, True)
    live = events(changed, CUT, CUT + WINDOW)
    end = (T0 + pd.Timedelta(hours=CUT + WINDOW)).to_pydatetime()
    plain = treatment_control_corrected(live, LABELS, end_activities=["B"], window_end=end)
    assert plain.design == "treatment_control"
    assert plain.effect > 0.5 * true_total_per_treated(base, changed)  # less than half the total


def test_replayed_arrivals_are_the_window_cases_of_every_replication() -> None:
    base = world(1, False)
    twin = fit_twin(events(base, 0.0, CUT).drop(columns=["case:experiment"]))
    seen = [(T0 + pd.Timedelta(hours=c["arrival"])).floor("us").to_pydatetime() for c in base
            if CUT <= c["arrival"] < CUT + WINDOW]
    late = (T0 + pd.Timedelta(hours=CUT + WINDOW + 5)).to_pydatetime()  # outside the window
    pairs = forward_pairs(twin, CANARY, WINDOW, replications=3, seed=0, arrivals=[*seen, late])
    assert [len(p.as_is_hours) for p in pairs] == [len(seen)] * 3
    drawn = forward_pairs(twin, CANARY, WINDOW, replications=3, seed=0)
    assert len({len(p.as_is_hours) for p in drawn}) > 1  # drawn arrivals vary in number
