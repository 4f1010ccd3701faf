"""How busy a shared pool was over time, from its members' recorded work intervals.

With start times and named resources the log shows every busy period of a
pool's members. Stacking them gives the number of members busy at each
moment, from which the fit reads:

- the *peak* number concurrently busy (a headcount bound better supported
  than "distinct names seen" when people come and go);
- each member's *parallel slots* (:func:`member_slots`): a resource whose
  own intervals overlap most of the time it works (a carrier, a bank, a batch
  job recorded under one name) works on several cases at once and counts as
  that many servers, or a pool of one such name would be simulated as one
  server and queue work the log shows running side by side;
- for each wait (enabled -> start), the *working* hours in which the pool
  had a free member (:meth:`IdleClock.free_hours`): waiting then is not queueing
  for the pool (the customer, a timer, a hand-off) and becomes extraneous
  delay, while waiting with every member busy (or off shift) is the queue
  the simulation engine reproduces itself.

Times are epoch hours (see :mod:`closedloop.tools.twin.calendar`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from closedloop.tools.twin.calendar import HOURS_PER_WEEK, WeeklyClock

__all__ = ["IdleClock", "busy_profile", "member_slots", "parallel_slots", "peak_busy"]

PARALLEL_SHARE = 0.5  # of a member's busy time on 2+ cases at once: it works in parallel
MIN_OVERLAP_SHARE = 0.02  # of its busy time: a level reached more rarely is not a slot


def busy_profile(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breakpoints and the number of intervals open on ``[t_k, t_k+1)`` after each."""
    s = np.asarray(starts, dtype=float)
    e = np.asarray(ends, dtype=float)
    keep = e > s
    s, e = s[keep], e[keep]
    if not len(s):
        return np.zeros(0), np.zeros(0)
    times = np.concatenate([s, e])
    step = np.concatenate([np.ones(len(s)), -np.ones(len(e))])
    order = np.lexsort((step, times))  # at equal times close before opening: no false overlap
    times, step = times[order], step[order]
    counts = np.cumsum(step)
    last = np.r_[times[1:] != times[:-1], True]  # the count after all changes at that time
    return times[last], counts[last]


def peak_busy(starts: np.ndarray, ends: np.ndarray) -> int:
    """The largest number of intervals open at once (0 without intervals of positive length)."""
    _, counts = busy_profile(starts, ends)
    return int(counts.max()) if len(counts) else 0


def parallel_slots(starts: np.ndarray, ends: np.ndarray) -> int:
    """How many cases one resource works on at once.

    1 unless it is on two or more cases for at least PARALLEL_SHARE of its busy
    time (a person who now and then overlaps two tasks is still one server;
    a carrier shipping many orders at once is not); then the largest k held for
    at least MIN_OVERLAP_SHARE of its busy time (a robust peak). Identical
    intervals count once: they are copies (a bootstrap's repeated cases), not parallel work.
    """
    pairs = np.unique(np.c_[np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)], axis=0)
    times, counts = busy_profile(pairs[:, 0], pairs[:, 1])
    if len(times) < 2:
        return 1
    span, level = np.diff(times), counts[:-1]
    busy = float(span[level > 0].sum())
    if busy <= 0 or float(span[level >= 2].sum()) < PARALLEL_SHARE * busy:
        return 1
    at_least = [float(span[level >= k].sum()) / busy for k in range(2, int(level.max()) + 1)]
    return max(k for k, share in enumerate(at_least, 2) if k == 2 or share >= MIN_OVERLAP_SHARE)


def member_slots(resources: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> dict[str, int]:
    """Each named resource -> its parallel slots (:func:`parallel_slots`) from its intervals."""
    out: dict[str, int] = {}
    res = np.asarray(resources, dtype=object)
    for r in pd.unique(res):
        mine = res == r
        out[str(r)] = parallel_slots(starts[mine], ends[mine])
    return out


class IdleClock:
    """Working hours in which a pool had a free member, counted from its first busy period.

    ``at(t)`` is that cumulative count G(t) (before the first busy period every member was
    free, so G is negative there); ``first_reach(x)`` the wall time at which G reaches ``x``.
    G rises with the pool's working clock while a member is free and stays flat while all are
    busy or off shift. With ``hourly`` (servers per hour of the week, when some members work
    only some hours) a member is free while fewer than that hour's servers are busy.
    """

    def __init__(self, starts: np.ndarray, ends: np.ndarray, capacity: int,
                 clock: WeeklyClock, hourly: list[int] | None = None) -> None:  # fmt: skip
        self.clock = clock
        self.times, counts = busy_profile(starts, ends)
        if hourly is not None and len(self.times):
            self.times, counts = _with_hour_changes(self.times, counts, hourly)
            limit = np.asarray(hourly)[np.floor(self.times).astype(np.int64) % HOURS_PER_WEEK]
        else:
            limit = np.full(len(self.times), capacity)
        idle = counts < limit
        self.work = clock.forward_many(self.times)
        self.g = np.r_[0.0, np.cumsum(np.where(idle[:-1], np.diff(self.work), 0.0))]
        self.idle = idle

    def free_hours(self, enabled: np.ndarray, started: np.ndarray) -> np.ndarray:
        """Working hours of each wait ``[enabled, started]`` in which a member was free."""
        a = np.asarray(enabled, dtype=float)
        b = np.maximum(np.asarray(started, dtype=float), a)
        return np.clip(self.at(b) - self.at(a), 0.0, None)

    def at(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        if not len(self.times):
            return self.clock.forward_many(t)
        k = np.searchsorted(self.times, t, side="right") - 1
        kk = np.maximum(k, 0)
        inside = self.clock.forward_many(t) - self.work[kk]
        after = self.g[kk] + np.where(self.idle[kk], inside, 0.0)
        return np.where(k >= 0, after, inside)  # inside < 0 before the first breakpoint

    def first_reach(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if not len(self.times):
            return self.clock.inverse_many(x)
        # the last breakpoint below x: G rises through x on the (idle) segment after it
        k = np.searchsorted(self.g, x, side="left") - 1
        kk = np.maximum(k, 0)
        return np.where(
            k >= 0,
            self.clock.inverse_many(self.work[kk] + (x - self.g[kk])),
            self.clock.inverse_many(self.work[0] + np.minimum(x, 0.0)),
        )


def _with_hour_changes(
    times: np.ndarray, counts: np.ndarray, hourly: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """The busy profile with a breakpoint at every hour where the capacity ``hourly`` changes."""
    profile = np.asarray(hourly)
    hours = np.arange(np.floor(times[0]), np.ceil(times[-1]) + 1)
    slot = hours.astype(np.int64) % HOURS_PER_WEEK
    hours = hours[(profile[slot] != profile[(slot - 1) % HOURS_PER_WEEK]) & ~np.isin(hours, times)]
    if not len(hours):
        return times, counts
    k = np.searchsorted(times, hours, side="right") - 1
    merged = np.concatenate([times, hours])
    order = np.argsort(merged, kind="stable")
    return merged[order], np.concatenate([counts, np.where(k >= 0, counts[np.maximum(k, 0)], 0)])[order]
