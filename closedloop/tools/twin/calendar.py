"""Weekly calendars of a process twin: when cases arrive and when pools work.

Time in the simulator is hours since an *epoch*, a Monday 00:00 UTC, so
``int(t) % 168`` is the hour of the week (Mon 0h = slot 0). A
:class:`WeeklyClock` holds one non-negative weight per hour of the week and
maps wall time to *weighted time* (the integral of the weights): with 0/1
weights (a working calendar) weighted time is working time, with arrival
rates it is the expected number of arrivals. Both directions are exact and
piecewise linear, so "advance by d working hours" and "the k-th arrival of a
non-homogeneous Poisson process" are a lookup each.

Discovery helpers turn timestamps into weekly profiles: :func:`working_slots`
(which hours of the week a pool works) and :func:`arrival_rates` (cases per
hour in each hour of the week).
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

HOURS_PER_WEEK = 168
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OFF_SHARE = 0.1  # see working_slots
MIN_EXPECTED_STARTS = 3.0
MIN_EVENTS_FOR_CALENDAR = 50
MIN_EVENTS_FOR_POOL_CALENDAR = 100  # fewer: the pool follows the calendar of the whole log
MIN_WEEKS_FOR_CALENDAR = 2.0
MIN_EVENTS_FOR_DAILY_WINDOW = 20
MAX_WINDOW_CHANCE = 0.01  # see daily_window_slots


def week_epoch(moment: datetime) -> datetime:
    """Monday 00:00 UTC of the week holding ``moment`` (the simulator's time origin)."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def hours_since(epoch: datetime, moment: datetime) -> float:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (moment - epoch).total_seconds() / 3600.0


def hour_of_week(times: pd.Series) -> np.ndarray:
    """Hour-of-week slot (Mon 0h UTC = 0) of UTC timestamps."""
    return (times.dt.day_of_week.to_numpy() * 24 + times.dt.hour.to_numpy()).astype(np.int64)


class WeeklyClock:
    """Wall time <-> weighted time for 168 hourly weights (see module docstring)."""

    def __init__(self, weights: list[float] | np.ndarray) -> None:
        w = np.asarray(weights, dtype=float)
        if w.shape != (HOURS_PER_WEEK,) or (w < 0).any() or not np.isfinite(w).all():
            raise ValueError("a weekly clock needs 168 finite non-negative weights")
        if w.sum() <= 0:
            raise ValueError("a weekly clock needs at least one hour with positive weight")
        self.weights = w.tolist()
        self.cumulative = np.concatenate([[0.0], np.cumsum(w)]).tolist()
        self.per_week = self.cumulative[-1]
        self._cum = np.asarray(self.cumulative)
        self.flat = bool(np.all(w == w[0]))

    def forward(self, t: float) -> float:
        """Weighted time elapsed from the epoch to wall time ``t`` (hours)."""
        week, rest = divmod(t, HOURS_PER_WEEK)
        slot = int(rest)
        return week * self.per_week + self.cumulative[slot] + self.weights[slot] * (rest - slot)

    def inverse(self, x: float) -> float:
        """Earliest wall time at which ``x`` weighted hours have elapsed since the epoch."""
        week, rest = divmod(x, self.per_week)
        slot = bisect_right(self.cumulative, rest) - 1
        if slot >= HOURS_PER_WEEK:  # float edge: rest == per_week
            return (week + 1) * HOURS_PER_WEEK
        w = self.weights[slot]
        return week * HOURS_PER_WEEK + slot + ((rest - self.cumulative[slot]) / w if w > 0 else 0.0)

    def advance(self, t: float, hours: float) -> float:
        """Wall time when ``hours`` of weighted time have passed after ``t`` (t itself if 0)."""
        if hours <= 0:
            return t
        if self.flat:
            return t + hours / self.weights[0]
        week, rest = divmod(t, HOURS_PER_WEEK)
        slot = int(rest)
        cum, w = self.cumulative, self.weights
        x = cum[slot] + w[slot] * (rest - slot) + hours
        more, rest = divmod(x, self.per_week)
        slot = bisect_right(cum, rest) - 1
        if slot >= HOURS_PER_WEEK:  # float edge: rest == per_week
            return (week + more + 1) * HOURS_PER_WEEK
        return (week + more) * HOURS_PER_WEEK + slot + (rest - cum[slot]) / w[slot]

    def forward_many(self, t: np.ndarray) -> np.ndarray:
        week, rest = np.divmod(np.asarray(t, dtype=float), HOURS_PER_WEEK)
        slot = np.minimum(rest.astype(np.int64), HOURS_PER_WEEK - 1)
        w = np.asarray(self.weights)
        return week * self.per_week + self._cum[slot] + w[slot] * (rest - slot)

    def inverse_many(self, x: np.ndarray) -> np.ndarray:
        week, rest = np.divmod(np.asarray(x, dtype=float), self.per_week)
        slot = np.minimum(np.searchsorted(self._cum, rest, side="right") - 1, HOURS_PER_WEEK - 1)
        w = np.asarray(self.weights)[slot]
        frac = np.divide(rest - self._cum[slot], w, out=np.zeros_like(rest), where=w > 0)
        return week * HOURS_PER_WEEK + slot + np.minimum(frac, 1.0)

    def between(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Weighted hours between wall times ``a`` and ``b`` (>= 0)."""
        return np.clip(self.forward_many(b) - self.forward_many(a), 0.0, None)


def weeks_covered(times: pd.Series) -> float:
    if times.empty:
        return 0.0
    return float((times.max() - times.min()) / pd.Timedelta(days=7))


def slot_hours(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hours each hour of the week is covered by the intervals [a, b) (epoch hours), summed."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = b > a
    a, b = a[keep], b[keep]
    out = np.zeros(HOURS_PER_WEEK)
    for s in range(HOURS_PER_WEEK):
        # covered(t) = hours of slot s in [0, t): one per full week plus the partial week
        def covered(t: np.ndarray, s: int = s) -> np.ndarray:
            week, rest = np.divmod(t, HOURS_PER_WEEK)
            return week + np.clip(rest - s, 0.0, 1.0)

        out[s] = float((covered(b) - covered(a)).sum())
    return out


def working_slots(
    starts: np.ndarray, enabled: np.ndarray, min_events: int = MIN_EVENTS_FOR_CALENDAR
) -> list[bool] | None:
    """Hours of the week in which work starts, or None when the data is too thin to tell.

    ``starts`` and ``enabled`` are epoch hours of each activity instance's
    start and of the moment it could have started. An hour of the week is
    *off* when work was waiting then but hardly ever started: fewer than
    OFF_SHARE of what a working hour would show (see the comment below), with
    at least one waiting hour per week in it, else there is no evidence and
    the hour counts as working; or when nothing ever started in it although
    work waited and the hours that saw work saw several starts. Low demand
    alone never closes an hour.
    Returns None with fewer than ``min_events`` instances or less than
    MIN_WEEKS_FOR_CALENDAR weeks of data.
    """
    starts = np.asarray(starts, dtype=float)
    if len(starts) < min_events or np.ptp(starts) < MIN_WEEKS_FOR_CALENDAR * HOURS_PER_WEEK:
        return None
    weeks = np.ptp(starts) / HOURS_PER_WEEK
    started = np.bincount(
        (np.mod(starts, HOURS_PER_WEEK)).astype(np.int64), minlength=HOURS_PER_WEEK
    )[:HOURS_PER_WEEK].astype(float)
    waiting = slot_hours(np.asarray(enabled, dtype=float), starts)
    if waiting.sum() <= 0:
        return [True] * HOURS_PER_WEEK
    # What a working hour would show: as many starts per waiting hour as the median hour work
    # started in, but no more than the median such hour's starts (when much waits, the staff,
    # not the work, sets the pace). A mean over all waiting would be diluted by every closed
    # night a backlog waits through, and an hour where a few tasks ran on past closing would
    # look like a working one.
    paced = (started > 0) & (waiting > 0)
    if paced.any():
        pace = float(np.median(started[paced] / waiting[paced]))
        expected = np.minimum(pace * waiting, float(np.median(started[started > 0])))
    else:
        expected = started.sum() / waiting.sum() * waiting
    off = (waiting >= weeks) & (started < OFF_SHARE * expected)
    # An hour in which work waited (an hour in all) but nothing ever started, where an hour that
    # saw work saw at least 3 starts on average (so a working hour would show none with < 5 %
    # chance), is off too: a lightly loaded pool never waits long enough for the rule above.
    seen = started[started > 0]
    if seen.size and seen.mean() >= MIN_EXPECTED_STARTS:
        off |= (started == 0) & (waiting >= 1.0)
    if off.all():
        return None
    return (~off).tolist()


def daily_window_slots(
    starts: np.ndarray, enabled: np.ndarray, min_events: int = MIN_EVENTS_FOR_DAILY_WINDOW
) -> list[bool] | None:
    """A calendar for a pool with too few instances to tell hour by hour, or None.

    The days of the week that saw a start, each from the earliest hour of day any start fell
    in to the latest. Kept only when work waited outside that window so much that, had the
    pool worked whenever work waited (starts falling where the waiting is), every start
    landing inside it would have a chance below MAX_WINDOW_CHANCE; so a quiet night, when
    little waits, never closes an hour. None with fewer than ``min_events`` instances or
    less than MIN_WEEKS_FOR_CALENDAR weeks of data.
    """
    starts = np.asarray(starts, dtype=float)
    if len(starts) < min_events or np.ptp(starts) < MIN_WEEKS_FOR_CALENDAR * HOURS_PER_WEEK:
        return None
    slot = np.mod(starts, HOURS_PER_WEEK).astype(np.int64)
    hour = slot % 24
    window = np.zeros(HOURS_PER_WEEK, dtype=bool)
    for day in np.unique(slot // 24):
        window[day * 24 + hour.min() : day * 24 + hour.max() + 1] = True
    waiting = slot_hours(np.asarray(enabled, dtype=float), starts)
    if window.all() or waiting.sum() <= 0:
        return None
    inside = float(waiting[window].sum() / waiting.sum())
    if inside ** len(starts) >= MAX_WINDOW_CHANCE:
        return None
    return window.tolist()


def arrival_rates(case_starts: pd.Series) -> list[float] | None:
    """Cases per hour for each hour of the week, or None when the log is too short to tell.

    Rate = arrivals seen in that hour of the week / number of times that
    hour occurs in the observed span. None (meaning: arrivals spread evenly)
    with fewer than MIN_WEEKS_FOR_CALENDAR weeks or 20 cases.
    """
    case_starts = case_starts.dropna()
    if len(case_starts) < 20 or weeks_covered(case_starts) < MIN_WEEKS_FOR_CALENDAR:
        return None
    counts = np.bincount(hour_of_week(case_starts), minlength=HOURS_PER_WEEK).astype(float)
    first, last = case_starts.min(), case_starts.max()
    hours = pd.date_range(first.floor("h"), last.floor("h"), freq="h")
    occurrences = np.bincount(hour_of_week(pd.Series(hours)), minlength=HOURS_PER_WEEK).astype(
        float
    )
    rates = np.divide(counts, occurrences, out=np.zeros(HOURS_PER_WEEK), where=occurrences > 0)
    return [round(float(r), 6) for r in rates]


def describe_slots(slots: list[bool]) -> str:
    """Human summary of a working calendar, e.g. 'mon-fri 07-20, sat 09-17' (UTC)."""
    spans: dict[str, list[str]] = {}
    for d, day in enumerate(DAYS):
        hours = [h for h in range(24) if slots[d * 24 + h]]
        ranges, start = [], None
        for h in range(25):
            on = h < 24 and h in hours
            if on and start is None:
                start = h
            if not on and start is not None:
                ranges.append(f"{start:02d}-{h:02d}")
                start = None
        if ranges:
            spans.setdefault(",".join(ranges), []).append(day)
    parts = []
    for hours, days in spans.items():
        label = f"{days[0]}-{days[-1]}" if len(days) > 2 and _consecutive(days) else ",".join(days)
        parts.append(f"{label} {hours}")
    return "; ".join(parts) + " UTC" if parts else "never"


def _consecutive(days: list[str]) -> bool:
    idx = [DAYS.index(d) for d in days]
    return idx == list(range(idx[0], idx[0] + len(idx)))


def slots_for(days: list[str], from_hour: int, to_hour: int) -> list[int]:
    """Hour-of-week slots of ``days`` between ``from_hour`` (incl.) and ``to_hour`` (excl., 24 ok)."""
    return [DAYS.index(d) * 24 + h for d in days for h in range(from_hour, to_hour)]
