"""Members who work only some of their pool's hours, and the pool's capacity hour by hour.

A pool's calendar is the union of its members' hours, so a member who works a
few hours a week (a part-timer) would count as a whole server all week: the
pool would look half idle and a what-if adding staff to it would relieve a
queue the twin never builds. The log shows who works when by the hours of
the week in which each member *starts* work (a paused task may span days, so
busy periods do not tell). A member with at least MIN_STARTS distinct start
times works only the hours holding their starts when both hold:

- **few hours**: under "available whenever the pool works" their starts would
  fall into the hours of the week as the pool's starts do, and land in about
  as many distinct hours as draws from the pool's starts; theirs fill fewer
  than every one of NULL_DRAWS such draws (chance below MAX_CHANCE);
- **absent from queues**: outside those hours, work waited while every other
  member was busy (a queue the member would have served, had they been
  there) for at least MIN_QUEUE_HOURS a week, and per hour of the week at
  least QUEUE_RATIO times as long as such work waited within them while the
  member was free too. A member who only takes work when the others are
  busy (the last one a dispatcher picks) starts in few hours too, but leaves
  no such queue behind.

Copies of the same start (a bootstrap's repeated cases) count once. The
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

MIN_STARTS = 30  # distinct start times a member needs before their hours are read
NULL_DRAWS = 400
MAX_CHANCE = 0.005
MIN_QUEUE_HOURS = 1.0  # per week, outside the member's hours
QUEUE_RATIO = 1.5


def part_timers(
    resources: np.ndarray,
    slots: Mapping[str, int],
    enabled: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    working: list[bool],
    rng: np.random.Generator,
) -> dict[str, list[int]]:
    """The pool's members who work only some of its hours -> those hours of the week.

    One entry per worked instance of a named member: ``resources`` (who), epoch hours
    ``enabled``, ``starts`` and ``ends``; ``slots`` each member's parallel slots, ``working``
    the pool's calendar (168 flags). See the module docstring.
    """
    who = np.asarray(resources, dtype=object)
    on = np.asarray(working, dtype=bool)
    weeks = max(float(np.ptp(starts)) / HOURS_PER_WEEK, 1.0) if len(starts) else 1.0
    weights = np.bincount(
        np.mod(np.unique(starts), HOURS_PER_WEEK).astype(np.int64), minlength=HOURS_PER_WEEK
    )[:HOURS_PER_WEEK] * on
    out: dict[str, list[int]] = {}
    for member in sorted(set(who.tolist()), key=str):
        mine = who == member
        hours = _few_hours(starts[mine], weights, rng)
        if hours is None:
            continue
        others = sum(n for m, n in slots.items() if m != member)
        queued, while_idle = _queue_hours(starts[~mine], ends[~mine], enabled, starts, others,
                                          starts[mine], ends[mine])  # fmt: skip
        inside = np.zeros(HOURS_PER_WEEK, dtype=bool)
        inside[hours] = True
        outside = on & ~inside
        # outside their hours a task of theirs left open is no sign they were there: all of
        # the queue counts; inside, only the queue they left waiting while free
        q_out, q_in = queued[outside].sum() / weeks, while_idle[inside].sum() / weeks
        if (outside.any() and q_out >= MIN_QUEUE_HOURS
                and q_out / outside.sum() >= QUEUE_RATIO * q_in / inside.sum()):  # fmt: skip
            out[str(member)] = hours
    return out


def _few_hours(
    member_starts: np.ndarray, weights: np.ndarray, rng: np.random.Generator
) -> list[int] | None:
    """The hours of the week holding the member's starts, if clearly fewer than chance."""
    mine = np.unique(np.asarray(member_starts, dtype=float))
    if len(mine) < MIN_STARTS or weights.sum() <= 0:
        return None
    seen = np.unique(np.mod(mine, HOURS_PER_WEEK).astype(np.int64))
    draws = rng.multinomial(len(mine), weights / weights.sum(), size=NULL_DRAWS)
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
    own_starts: np.ndarray,
    own_ends: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Hours per hour of the week in which work waited while all ``others`` servers were
    busy: in all, and while the member was not busy either (a member who is there takes it)."""
    if others <= 0:
        return np.zeros(HOURS_PER_WEEK), np.zeros(HOURS_PER_WEEK)
    profiles = [busy_profile(other_starts, other_ends), busy_profile(enabled, started),
                busy_profile(own_starts, own_ends)]  # fmt: skip
    times = np.unique(np.concatenate([t for t, _ in profiles]))

    def level(t: np.ndarray, n: np.ndarray) -> np.ndarray:
        k = np.searchsorted(t, times, side="right") - 1
        return np.where(k >= 0, n[np.maximum(k, 0)], 0) if len(t) else np.zeros(len(times))

    (tb, nb), (tw, nw), (tm, nm) = profiles
    queued = (level(tb, nb) >= others) & (level(tw, nw) > 0)
    idle = queued & (level(tm, nm) == 0)
    a, b = times[:-1], times[1:]
    return slot_hours(a[queued[:-1]], b[queued[:-1]]), slot_hours(a[idle[:-1]], b[idle[:-1]])


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
