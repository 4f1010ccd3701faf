"""Switchback trials: how the Executor's block schedule is sized and ordered, and how its blocks
become the Watchdog's measurement windows."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from closedloop.agents.switchback import plan_schedule, usable, windows, writes_needed
from closedloop.contracts import SwitchBlock


@pytest.mark.parametrize("seed", range(6))
def test_two_weeks_of_day_blocks_pair_each_weekday_with_the_next_week(seed):
    s = plan_schedule(14 * 24.0, 6.5, writes_left=4, seed=seed)
    assert s is not None and s.block_hours == 24.0 and len(s.plan) == 14
    assert s.plan[0] and s.plan[-1]  # live from the start; a kept change stays live
    assert all(s.plan[d] != s.plan[d + 7] for d in range(7))  # each weekday once on, once off
    assert writes_needed(s.plan) <= 4
    assert s.washout_hours == 6.5  # the log's median cycle time, under half a block


def test_the_write_cap_limits_alternation_and_a_small_cap_still_fits():
    roomy = plan_schedule(14 * 24.0, 6.5, writes_left=4, seed=1)
    tight = plan_schedule(14 * 24.0, 6.5, writes_left=1, seed=1)
    assert 1 == writes_needed(tight.plan) < writes_needed(roomy.plan) <= 4
    assert plan_schedule(14 * 24.0, 6.5, writes_left=0, seed=1) is None  # no second on-block


def test_blocks_are_at_least_the_median_cycle_time_and_too_short_a_window_has_none():
    long_cases = plan_schedule(14 * 24.0, 60.0, writes_left=4, seed=1)
    assert long_cases.block_hours >= 60.0 and len(long_cases.plan) == 4
    assert long_cases.washout_hours == long_cases.block_hours / 2
    assert plan_schedule(3 * 24.0, 6.5, writes_left=4, seed=1) is None  # 3 day-blocks < 4


def test_blocks_begun_become_windows_up_to_the_measurement():
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    s = plan_schedule(14 * 24.0, 6.5, writes_left=4, seed=2)
    begun = [
        SwitchBlock(index=i, on=on, start=t0 + timedelta(hours=25 * i))
        for i, on in enumerate(s.plan[:4])
    ]
    trial = s.model_copy(update={"blocks": begun})
    end = t0 + timedelta(hours=110)
    got = windows(trial, end)
    assert [w[2] for w in got] == s.plan[:4]
    assert got[-1] == (begun[-1].start, end, begun[-1].on)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(got))
    assert usable(trial) == (sum(s.plan[:4]) >= 2 and 4 - sum(s.plan[:4]) >= 2)
