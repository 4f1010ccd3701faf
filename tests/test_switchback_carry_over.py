"""A switchback on a busy queue: blocks inherit the queue, and the twin's carry-over corrects it.

The world is one person serving a FIFO queue at 90 % utilisation (arrivals 1/h, service
0.9 h). After the log's cut a bot takes half the cases past the queue, toggled on and off by
day-long blocks. Such a queue takes days to settle, so an off-block inherits the short queue
the on-block left and the other way round: on minus off misses much of what the bot does for
everyone. The live off-blocks show it (they are faster than the as-is level), so the twin's
carry-over is added. Each world is also run with the bot always on and always off on the
same draws, which gives the true total effect."""

from __future__ import annotations

import numpy as np
import pandas as pd

from closedloop.tools.log.columns import ACTIVITY, CASE, RESOURCE, START, TIME_DTYPE, TIMESTAMP
from closedloop.tools.measure import (
    CarryOverPrediction,
    Interval,
    corrected_for_carry_over,
    switchback,
    twin_carry_over,
)
from closedloop.tools.twin import AutomateActivity, fit_twin
from closedloop.tools.twin.forward import forward_pairs

T0 = pd.Timestamp("2024-01-01", tz="UTC")
CUT, BLOCK, BLOCKS, SERVICE, WASHOUT = 500.0, 24.0, 12, 0.9, 4.0
BOT = AutomateActivity(activity="B", share=0.5)


def _on(t: float, mode: str) -> bool:
    if mode == "switch":
        return t >= CUT and int((t - CUT) // BLOCK) % 2 == 0
    return mode == "on" and t >= CUT


def world(seed: int, mode: str) -> list[dict]:
    """Cases registered (A) then served (B) by one person; the bot ("on": always after the cut,
    "switch": in every other day-long block, "off": never) takes the half of the cases drawn
    into its share at arrival past the queue."""
    rng = np.random.default_rng(seed)
    free, cases = 0.0, []
    for i, t in enumerate(np.cumsum(rng.exponential(1.0, int(CUT + BLOCK * BLOCKS + 400)))):
        service, u = rng.exponential(SERVICE), rng.random()
        ready = t + 0.02
        if _on(t, mode) and u < 0.5:
            b, who = (ready, ready + 0.03), "bot"
        else:
            begin = max(ready, free)
            free = begin + service
            b, who = (begin, free), "b0"
        cases.append({"case": f"c{i}", "arrival": t, "b": b, "who": who})
    return cases


def events(cases: list[dict], since: float, until: float) -> pd.DataFrame:
    """The log of the cases arriving in [since, until): their events completed by ``until``."""
    rows = []
    for c in cases:
        if not since <= c["arrival"] < until:
            continue
        for act, (s, e), who in (("A", (c["arrival"], c["arrival"] + 0.02), "a0"),
                                 ("B", c["b"], c["who"])):
            if e <= until:
                rows.append({CASE: c["case"], ACTIVITY: act, RESOURCE: who,
                             START: T0 + pd.Timedelta(hours=s), TIMESTAMP: T0 + pd.Timedelta(hours=e)})
    frame = pd.DataFrame(rows)
    frame[START], frame[TIMESTAMP] = frame[START].astype(TIME_DTYPE), frame[TIMESTAMP].astype(TIME_DTYPE)
    return frame


def _blocks() -> list[tuple]:
    at = [(T0 + pd.Timedelta(hours=CUT + BLOCK * k)).to_pydatetime() for k in range(BLOCKS + 1)]
    return [(at[k], at[k + 1], k % 2 == 0) for k in range(BLOCKS)]


def _true_total(seed: int) -> float:
    """Bot always on minus always off, over the cases arriving in the trial's window."""
    off, on = world(seed, "off"), world(seed, "on")
    inside = [i for i, c in enumerate(off) if CUT <= c["arrival"] < CUT + BLOCK * BLOCKS]
    return float(np.mean([on[i]["b"][1] - off[i]["b"][1] for i in inside]))


def test_the_twin_carry_over_puts_back_what_a_busy_queue_hides_from_a_switchback():
    covered_raw = covered = 0
    raw_errors, errors = [], []
    for seed in range(4):
        truth = _true_total(seed)
        history = world(seed, "off")
        twin = fit_twin(events(history, 0.0, CUT))
        end = CUT + BLOCK * BLOCKS + 200  # a drain: the window's cases finish
        live = events(world(seed, "switch"), CUT, end)
        window_end = (T0 + pd.Timedelta(hours=end)).to_pydatetime()
        raw = switchback(live, _blocks(), end_activities=["B"], window_end=window_end,
                         washout_hours=WASHOUT)
        arrivals = live.groupby(CASE)[START].min().tolist()
        carry = twin_carry_over(twin, BOT, _blocks(), WASHOUT, arrivals=arrivals, seed=seed)
        fixed = corrected_for_carry_over(raw, carry)
        covered_raw += raw.ci_low <= truth <= raw.ci_high
        covered += fixed.ci_low <= truth <= fixed.ci_high
        raw_errors.append(abs(raw.effect - truth))
        errors.append(abs(fixed.effect - truth))
        assert carry.miss.mean < 0  # the bot shortens the queue: the switchback sees too little
        # the live off-blocks show the change reaching them, as the twin's toggled ones do
        assert abs(raw.baseline - carry.off_toggled_hours) < abs(raw.baseline - carry.off_as_is_hours)
    assert covered >= 3
    assert covered_raw <= 2
    assert np.mean(errors) < 0.6 * np.mean(raw_errors)


def test_a_carry_over_moves_the_estimate_only_where_the_live_off_blocks_show_it():
    end = CUT + BLOCK * BLOCKS + 200
    raw = switchback(events(world(1, "switch"), CUT, end), _blocks(), end_activities=["B"],
                     window_end=(T0 + pd.Timedelta(hours=end)).to_pydatetime(),
                     washout_hours=WASHOUT)
    miss = Interval(mean=-2.0, ci_low=-5.0, ci_high=1.0, source="a model")
    shown = CarryOverPrediction(miss=miss, off_toggled_hours=raw.baseline + 1.0,
                                off_as_is_hours=raw.baseline + 10.0)
    fixed = corrected_for_carry_over(raw, shown)
    assert fixed.effect == raw.effect - 2.0
    half = np.hypot((raw.ci_high - raw.ci_low) / 2, 3.0)
    assert np.isclose(fixed.ci_high - fixed.ci_low, 2 * half)
    assert "a model" in fixed.why and any("a model" in a for a in fixed.assumptions)
    assert not any(a.startswith("blocks are independent") for a in fixed.assumptions)
    # off-blocks at the model's as-is level: the world shows no carry-over, nothing is added
    not_shown = shown.model_copy(update={"off_toggled_hours": raw.baseline - 8.0,
                                         "off_as_is_hours": raw.baseline + 0.5})
    kept = corrected_for_carry_over(raw, not_shown)
    assert (kept.effect, kept.ci_low, kept.ci_high) == (raw.effect, raw.ci_low, raw.ci_high)
    assert "not corrected" in kept.why and kept.assumptions == raw.assumptions


def test_a_change_toggled_per_case_runs_as_is_when_off_and_as_changed_when_on():
    twin = fit_twin(events(world(0, "off"), 0.0, CUT))
    for state in (False, True):
        blocks = [(a, b, state) for a, b, _ in _blocks()]
        (p,) = forward_pairs(twin, BOT, BLOCK * BLOCKS, replications=1, blocks=blocks)
        expected = p.changed_hours if state else p.as_is_hours
        assert np.array_equal(p.toggled_hours, expected)
    assert not np.array_equal(p.as_is_hours, p.changed_hours)
