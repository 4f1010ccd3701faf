"""Send a segment's cases straight to another pool: the engine terms of a ``route_segment``.

A routing rule of a system ("tickets of this category go straight to that
queue") changes which pool a case enters. In the twin's terms: the segment's
cases that would enter pool X at its **entry activity** (the activity by which
cases mostly come into X from elsewhere) skip it and go to the entry activity
of the target pool P instead (work X also does: the route moves work, never
drops it), done by P, and go on from there as cases leaving P's entry
activity do. Everything is read from the fitted twin (routing,
expected visits, pool shares per previous activity), nothing from names.

The engine chooses a step's pool per (activity, previous activity); a routed
case reaches P's entry activity right after the predecessor of X's entry. The
compiled model gets a pool table for those (predecessor, P's entry) edges that
sends them to P. That is honest only when the as-is process never takes such
an edge itself (else the table would move untreated cases too): checked, and
a ScenarioError says why when it fails.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from closedloop.tools.errors import ScenarioError
from closedloop.tools.twin.censoring import expected_visits
from closedloop.tools.twin.model import EngineModel, Settings, Skip
from closedloop.tools.twin.process_twin import ProcessTwin
from closedloop.tools.twin.routing import END
from closedloop.tools.twin.routing import START as ROUTE_START

__all__ = ["RoutePlan", "RouteSkip", "entry_activity", "route_plan", "route_segment",
           "routed_rows"]


@dataclass
class RouteSkip(Skip):
    """A skip that routes a segment to another pool (its cases count as treated)."""

    pool: int = -1


def _share_of(twin: ProcessTwin, pool: str, activity: str, previous: str) -> float:
    """Share of ``activity``'s instances after ``previous`` that ``pool`` does."""
    am = twin.activities[activity]
    if not am.pool_shares:
        return 1.0 if am.pool == pool else 0.0
    shares = am.pool_after.get(previous, am.pool_shares)
    return float(shares.get(pool, 0.0))


def _inflow(twin: ProcessTwin, pool: str) -> dict[tuple[str, str], float]:
    """Expected entries per case into ``pool``, by (previous activity, activity entered)."""
    visits = expected_visits(twin.start_probabilities, twin.transitions) or {}
    members = set(twin.pools[pool].activities)
    out: dict[tuple[str, str], float] = {}
    for b, p in twin.start_probabilities.items():
        if b in members:
            out[(ROUTE_START, b)] = p * _share_of(twin, pool, b, ROUTE_START)
    for a, nxt in twin.transitions.items():
        if twin.activities[a].pool == pool:
            continue
        for b, p in nxt.items():
            if b in members and b != END:
                out[(a, b)] = out.get((a, b), 0.0) + visits.get(a, 0.0) * p * _share_of(
                    twin, pool, b, a)
    return {k: v for k, v in out.items() if v > 0}


def entry_activity(twin: ProcessTwin, pool: str) -> str:
    """The activity by which cases mostly enter ``pool`` from elsewhere (ScenarioError if none)."""
    flows = _inflow(twin, pool)
    if not flows:
        raise ScenarioError(f"no case ever enters pool {pool!r} from another pool in the log")
    by_act: dict[str, float] = {}
    for (_, b), v in flows.items():
        by_act[b] = by_act.get(b, 0.0) + v
    return max(sorted(by_act), key=lambda b: by_act[b])


def _edge_seen(twin: ProcessTwin, prev: str, to: str) -> bool:
    """Whether the as-is routing ever goes from ``prev`` (START: the start) straight to ``to``."""
    if prev == ROUTE_START:
        return twin.start_probabilities.get(to, 0.0) > 0
    if twin.transitions.get(prev, {}).get(to, 0.0) > 0:
        return True
    return any(c.activity == prev and c.next.get(to, 0.0) > 0 for c in twin.routing_contexts)


def _downstream(twin: ProcessTwin, leave: str) -> set[str]:
    """Every activity a case can reach after ``leave``."""
    seen: set[str] = set()
    todo = [leave]
    while todo:
        for b in twin.transitions.get(todo.pop(), {}):
            if b != END and b not in seen:
                seen.add(b)
                todo.append(b)
    return seen


@dataclass
class RoutePlan:
    """Where a route takes cases: ``leave`` (skipped) -> ``enter`` (by the target pool)."""

    leave: str
    enter: str
    previous: list[str]  # activities (or START) right before ``leave``


def route_plan(twin: ProcessTwin, from_pool: str, to_pool: str) -> RoutePlan:
    """How the twin routes cases from ``from_pool`` to ``to_pool`` (pool names of the twin).

    ScenarioError when it cannot honestly: the same pool, both entered at one
    activity (the pool of a step is chosen per activity, not per case), the
    target entered at work the source never does (the route would drop work,
    not move it) or upstream of the source (cases would go back), or the log
    already going straight from the source's predecessor to the target's entry
    (routed cases could not be told from the others there).
    """
    if from_pool == to_pool:
        raise ScenarioError(f"route_segment: from and to are the same pool {from_pool!r}")
    leave, enter = entry_activity(twin, from_pool), entry_activity(twin, to_pool)
    if leave == enter:
        raise ScenarioError(
            f"pools {from_pool!r} and {to_pool!r} are both entered at {leave!r}: the twin "
            "chooses the pool of a step per activity, not per case, so it cannot send only "
            "the segment's cases to the other pool")
    if enter not in twin.pools[from_pool].activities:
        raise ScenarioError(f"pool {to_pool!r} is entered at {enter!r}, which pool "
                            f"{from_pool!r} never does: routing would drop work, not move it")
    if enter not in _downstream(twin, leave):
        raise ScenarioError(f"pool {to_pool!r} is entered at {enter!r}, which never follows "
                            f"{leave!r}: routing there would send cases back")
    prevs = sorted({prev for prev, act in _inflow(twin, from_pool) if act == leave})
    for prev in prevs:
        if _edge_seen(twin, prev, enter):
            raise ScenarioError(
                f"the log already goes from {prev!r} straight to {enter!r}: the twin cannot "
                f"tell routed cases from the others there")
    return RoutePlan(leave, enter, prevs)


def route_segment(twin: ProcessTwin, m: EngineModel, s: Settings, mask: list[bool],
                  share: float, from_pool: str, to_pool: str) -> None:
    """Compile a route of the cases in ``mask`` (a ``share`` of them) from ``from_pool`` to
    ``to_pool`` into ``s`` (a skip) and ``m`` (the pool table of the new edges)."""
    plan = route_plan(twin, from_pool, to_pool)
    index = {a: i for i, a in enumerate(m.acts)}
    a, b, p = index[plan.leave], index[plan.enter], m.pools.index(to_pool)
    if a in s.skips:
        raise ScenarioError(f"activity {plan.leave!r} is skipped twice in one scenario")
    if b not in m.pool_choice and m.pool_of[b] != p:
        raise ScenarioError(f"pool {to_pool!r} never does {plan.enter!r} in the log")
    if b in m.pool_choice:
        table = (np.asarray([1.0]), np.asarray([p], dtype=np.int64))
        for prev in plan.previous:
            m.pool_choice[b][1][-1 if prev == ROUTE_START else index[prev]] = table
    # The share is drawn per attribute row, seeded by the route, so it is the same in
    # every run of this scenario.
    rng = np.random.default_rng(zlib.crc32(repr((from_pool, to_pool, share)).encode()))
    treated = [bool(x) and u < share for x, u in zip(mask, rng.random(len(mask)), strict=True)]
    s.skips[a] = RouteSkip(treated, b, p)


def routed_rows(s: Settings) -> np.ndarray | None:
    """Per attribute row: routed by a ``route_segment`` of the settings (None: no route)."""
    masks = [np.asarray(k.mask, dtype=bool) for k in s.skips.values() if isinstance(k, RouteSkip)]
    return np.logical_or.reduce(masks) if masks else None
