"""Members who work only some of their pool's hours, and the pool's capacity hour by hour.

A pool's calendar is the union of its members' hours, so a member who works a
few hours a week (a part-timer) would count as a whole server all week: the
pool would look half idle and a what-if adding staff to it would relieve a
queue the twin never builds. The log shows who works when by the hours of
the week in which each member starts and ends work (a paused task may stay
open for days, so busy periods do not tell). A member with at least
MIN_MOMENTS distinct such moments works only the hours holding them when
both hold:

- **few hours**: under "available whenever the pool works" their moments
  would fall into the hours of the week as the pool's do, and land in about
  as many distinct hours as draws from the pool's; theirs fill fewer than
  every one of NULL_DRAWS such draws (chance below MAX_CHANCE). Ends count
  as well as starts, so a full-timer whose long tasks all start in the
  morning still shows their afternoons;
- **absent from queues**: outside those hours, work of the activities they do
  waited while every other member was busy (a queue they would have served,
  had they been there) for at least MIN_QUEUE_HOURS a week. A member who
  only takes work when the others are busy (the last one a dispatcher
  picks) works in few hours too, but leaves no such queue behind.

Their hours are then the pool's, except those outside their moments that held
at least QUIET_SHARE of such an hour's average queue: an hour without a queue
shows nothing of their absence.

Copies of the same moment (a bootstrap's repeated cases) count once. The
pool's capacity in an hour of the week is then the servers available in it:
its capacity (people per week), at most the slots of the members who work
that hour (:func:`hourly_capacity`).

A member's work is read in their own hours where their starts tell them
(:func:`own_hours`, a part-timer's hours above), so a task paused across a
colleague's evening is not read as hours of work.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from closedloop.tools.twin.calendar import HOURS_PER_WEEK, MIN_EXPECTED_STARTS, slot_hours
from closedloop.tools.twin.occupancy import busy_profile

__all__ = ["hourly_capacity", "own_hours", "part_timers"]

MIN_MOMENTS = 30  # distinct starts and ends a member needs before their hours are read
NULL_DRAWS = 400
MAX_CHANCE = 0.005
MIN_QUEUE_HOURS = 1.0  # per week, outside the member's hours
END_EPSILON = 1e-6  # an end on the hour belongs to the hour before
QUIET_SHARE = 0.25  # of the queue an hour outside a member's hours holds on average


def part_timers(
    resources: np.ndarray,
    activities: np.ndarray,
    slots: Mapping[str, int],
    enabled: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    working: list[bool],
    rng: np.random.Generator,
) -> dict[str, list[int]]:
    """The pool's members who work only some of its hours -> those hours of the week.

    One entry per worked instance of a named member: ``resources`` (who), ``activities``,
    epoch hours ``enabled``, ``starts`` and ``ends``; ``slots`` each member's parallel slots,
    ``working`` the pool's calendar (168 flags). See the module docstring.
    """
    who = np.asarray(resources, dtype=object)
    acts = np.asarray(activities, dtype=object)
    on = np.asarray(working, dtype=bool)
    weeks = max(float(np.ptp(starts)) / HOURS_PER_WEEK, 1.0) if len(starts) else 1.0
    weights = np.bincount(_moment_slots(starts, ends), minlength=HOURS_PER_WEEK)[:HOURS_PER_WEEK]
    weights = weights * on
    out: dict[str, list[int]] = {}
    for member in sorted(set(who.tolist()), key=str):
        mine = who == member
        hours = _few_hours(_moment_slots(starts[mine], ends[mine]), weights, rng)
        if hours is None:
            continue
        theirs = np.isin(acts, list(set(acts[mine].tolist())))
        others = sum(n for m, n in slots.items() if m != member)
        queued = _queue_hours(starts[~mine], ends[~mine], enabled[theirs], starts[theirs], others)
        outside = on.copy()
        outside[hours] = False
        if queued[outside].sum() / weeks < MIN_QUEUE_HOURS:
            continue
        # an hour shows them away only if work waited in it: hours without a queue (a quiet
        # afternoon they simply had no task starting or ending in) stay theirs
        away = outside & (queued >= QUIET_SHARE * queued[outside].mean())
        out[str(member)] = [int(h) for h in np.flatnonzero(on & ~away)]
    return out


def _moment_slots(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The hour of the week of every distinct start and end."""
    moments = np.unique(np.r_[np.asarray(starts, dtype=float),
                              np.asarray(ends, dtype=float) - END_EPSILON])  # fmt: skip
    return np.mod(moments, HOURS_PER_WEEK).astype(np.int64)


def _few_hours(
    member_slots: np.ndarray, weights: np.ndarray, rng: np.random.Generator
) -> list[int] | None:
    """The hours of the week holding a member's moments, if clearly fewer than chance."""
    if len(member_slots) < MIN_MOMENTS or weights.sum() <= 0:
        return None
    seen = np.unique(member_slots)
    draws = rng.multinomial(len(member_slots), weights / weights.sum(), size=NULL_DRAWS)
    as_few = int(((draws > 0).sum(axis=1) <= len(seen)).sum())
    if (as_few + 1) / (NULL_DRAWS + 1) >= MAX_CHANCE:
        return None
    return [int(h) for h in seen]


def _queue_hours(
    other_starts: np.ndarray,
    other_ends: np.ndarray,
    enabled: np.ndarray,
    started: np.ndarray,
    others: int,
) -> np.ndarray:
    """Hours per hour of the week in which work waited while all ``others`` servers were busy."""
    if others <= 0:
        return np.zeros(HOURS_PER_WEEK)
    (tb, nb), (tw, nw) = busy_profile(other_starts, other_ends), busy_profile(enabled, started)
    if not len(tb) or not len(tw):
        return np.zeros(HOURS_PER_WEEK)
    times = np.union1d(tb, tw)

    def level(t: np.ndarray, n: np.ndarray) -> np.ndarray:
        k = np.searchsorted(t, times, side="right") - 1
        return np.where(k >= 0, n[np.maximum(k, 0)], 0)

    queued = (level(tb, nb) >= others) & (level(tw, nw) > 0)
    return slot_hours(times[:-1][queued[:-1]], times[1:][queued[:-1]])


def own_hours(member_starts: np.ndarray) -> list[int] | None:
    """The hours of the week a member works by their starts, or None when too few to tell.

    Where a member starts work often (at least MIN_EXPECTED_STARTS times on average in an
    hour of the week that saw one of their starts), an hour that never saw one is an hour
    they were not at work, even if the pool's calendar holds it (a colleague's hours, or
    hours no queue ever revealed as closed): a task of theirs open across it was paused.
    """
    mine = np.unique(np.asarray(member_starts, dtype=float))
    counts = np.bincount(np.mod(mine, HOURS_PER_WEEK).astype(np.int64), minlength=HOURS_PER_WEEK)
    seen = counts[:HOURS_PER_WEEK] > 0
    if not seen.any() or counts[:HOURS_PER_WEEK][seen].mean() < MIN_EXPECTED_STARTS:
        return None
    return [int(h) for h in np.flatnonzero(seen)]


def hourly_capacity(
    capacity: int,
    working: list[bool],
    slots: Mapping[str, int],
    part_time: Mapping[str, list[int]],
) -> list[int] | None:
    """Servers per hour of the week: ``capacity`` at most the slots of the members at work.

    ``slots``: every named member -> cases it works on at once; ``part_time``: the members
    working only some hours -> those hours. None when no member is part-time or every
    working hour still has ``capacity`` servers. An hour the pool works keeps at least one.
    """
    if not part_time:
        return None
    at_work = np.full(HOURS_PER_WEEK, sum(n for m, n in slots.items() if m not in part_time))
    for member, hours in part_time.items():
        at_work[hours] += slots.get(member, 1)
    on = np.asarray(working, dtype=bool)
    servers = np.clip(np.minimum(at_work, capacity), 1, None)
    if (servers[on] == capacity).all():
        return None
    return np.where(on, servers, 0).astype(int).tolist()
