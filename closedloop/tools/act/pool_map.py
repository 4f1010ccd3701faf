"""Which of the system's pools (teams, queues) is a pool the twin found in the log.

The twin forms pools from who does what (:mod:`closedloop.tools.twin.pools`);
the connector's state read lists the system's pools with their capacity. A
capacity change can be planned only when a twin pool maps onto one state
pool, on evidence, in this order:

1. **members**: the state lists each pool's members (a pool's entry is a list
   of names or an object holding one, or a state value maps pool -> names);
   the state pool whose members the twin pool holds (``twin.pool_of_resources``);
2. **headcount**: the one state pool whose capacity equals the number of
   people the log shows in the twin pool, when no other state pool has it;
3. **name hint** (declared, logged, never required; ``name_hint=False`` turns
   it off): the people's names start with the state pool's name
   (``APPROVERS-2`` -> ``APPROVERS``). It only breaks a headcount tie or
   stands in when no headcount matches, and the mapping says so.

No evidence, or a tie left unbroken, gives no mapping (with the reason): the
candidate is dropped, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel

from closedloop.tools.twin import ProcessTwin

MIN_HINT_SHARE = 0.5  # share of a pool's people whose names must carry the hint

Evidence = Literal["members", "headcount", "headcount+name_hint", "name_hint"]


class PoolMatch(BaseModel):
    """A twin pool and the state pool it maps to (None: no honest mapping), with why."""

    twin_pool: str
    state_pool: str | None
    evidence: Evidence | None = None
    detail: str


def capacity_of(value: Any) -> int | None:
    """The capacity in a state pool's entry: a number, the length of a member list, or the one
    number of an object (None when it shows none)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict):
        numbers = [v for v in value.values() if isinstance(v, int | float) and not isinstance(v, bool)]
        return int(numbers[0]) if len(numbers) == 1 else None
    return None


def _names(value: Any) -> list[str] | None:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def state_members(pools: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, list[str]]:
    """Members per state pool when the state lists them (empty when it does not)."""
    out: dict[str, list[str]] = {}
    for name, entry in pools.items():
        found = _names(entry) or next(
            (n for v in (entry.values() if isinstance(entry, dict) else []) if (n := _names(v))), None)
        if found:
            out[str(name)] = found
    for value in values.values():
        if isinstance(value, dict) and set(value) & set(pools):
            for name, entry in value.items():
                if name in pools and (found := _names(entry)) and str(name) not in out:
                    out[str(name)] = found
    return out


def _hinted(members: list[str], pool: str) -> bool:
    def carries(resource: str) -> bool:
        return resource == pool or (resource.startswith(pool) and not resource[len(pool)].isalnum())

    return bool(members) and sum(carries(r) for r in members) >= MIN_HINT_SHARE * len(members)


def _headcounts(model: Any) -> set[int]:
    """How many people the log shows in a pool: all seen, and the median per week."""
    return {n for n in (model.resources, model.estimated_capacity) if n is not None}


def map_pool(twin: ProcessTwin, twin_pool: str, pools: Mapping[str, Any],
             members: Mapping[str, list[str]] | None = None, name_hint: bool = True) -> PoolMatch:
    """The state pool of ``twin_pool`` (see the module docstring for the evidence)."""
    model = twin.pools[twin_pool]
    people = [r for r in model.resource_names if r]
    if not people:
        return PoolMatch(twin_pool=twin_pool, state_pool=None,
                         detail="the log names nobody doing this work")
    if members:
        owners = [p for p, names in members.items() if twin.pool_of_resources(names) == twin_pool]
        if len(owners) == 1:
            shared = len(set(members[owners[0]]) & set(people))
            return PoolMatch(twin_pool=twin_pool, state_pool=owners[0], evidence="members",
                             detail=f"{shared} of its {len(people)} people are members of "
                                    f"{owners[0]!r} in the system's state")
        return PoolMatch(twin_pool=twin_pool, state_pool=None,
                         detail=f"the system lists members, and {len(owners)} pools hold these "
                                "people" if owners else "no pool of the system lists these people")
    same = [p for p, v in pools.items() if capacity_of(v) in _headcounts(model)]
    rivals = [n for n, m in twin.pools.items() if n != twin_pool and m.resource_names
              and _headcounts(m) & {capacity_of(pools[p]) for p in same}]
    hinted = [p for p in pools if name_hint and _hinted(people, str(p))]
    if len(same) == 1 and not rivals:
        return PoolMatch(twin_pool=twin_pool, state_pool=same[0], evidence="headcount",
                         detail=f"the only pool of the system with {capacity_of(pools[same[0]])} "
                                f"people, as many as the log shows doing this work")
    both = [p for p in same if p in hinted]
    if len(both) == 1:
        return PoolMatch(twin_pool=twin_pool, state_pool=both[0], evidence="headcount+name_hint",
                         detail=f"headcount {capacity_of(pools[both[0]])} fits {len(same)} pools; "
                                f"the people's names start with {both[0]!r} (a declared hint)")
    if not same and len(hinted) == 1:
        return PoolMatch(twin_pool=twin_pool, state_pool=hinted[0], evidence="name_hint",
                         detail=f"no pool of the system has its headcount; the people's names "
                                f"start with {hinted[0]!r} (a declared hint, not evidence)")
    why = (f"{len(same)} pools of the system have its headcount ({len(people)} people)"
           if same else f"no pool of the system has its headcount ({len(people)} people)")
    return PoolMatch(twin_pool=twin_pool, state_pool=None,
                     detail=why + ("" if name_hint else "; name hint off"))


def twin_pools_of(twin: ProcessTwin, state_pool: str, pools: Mapping[str, Any],
                  members: Mapping[str, list[str]] | None = None,
                  name_hint: bool = True) -> list[str]:
    """Every twin pool that maps onto ``state_pool``."""
    return [p for p in sorted(twin.pools)
            if map_pool(twin, p, pools, members, name_hint).state_pool == state_pool]


__all__ = ["PoolMatch", "capacity_of", "map_pool", "state_members", "twin_pools_of"]
