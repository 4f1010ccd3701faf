"""Resource pools of a process twin: who does which activity, how many, and when.

- **Which pool does an activity instance use**:
  - with ``org:group`` in the log: the activity's most frequent group;
  - ``pooling="activity"``: one pool per activity;
  - ``pooling="profiles"``: resources are clustered by what they do (each
    resource's *profile* = how often it performs every activity; profiles
    with cosine similarity >= PROFILE_SIMILARITY, average linkage, form one
    pool), and an instance belongs to the pool of the resource that did it.
    An activity may then be shared by several pools (e.g. first-line agents
    resolve simple tickets, second-line agents escalated ones); the twin
    keeps the shares per activity and per previous activity.
  - ``pooling="auto"`` (default): "profiles" when the log names resources,
    else "activity" (nothing tells who does what).
  Instances without a resource go to the activity's main pool (or, if no
  instance of the activity names a resource, to a pool of its own). Resource
  names are only labels: no naming convention is read.
- **How many**: capacity = median number of distinct resources active in the
  pool per ISO week (min 1); with start times, a member seen working on k
  cases at once counts k times, and the capacity is at most the peak number
  of intervals ever open at once (:mod:`closedloop.tools.twin.occupancy`);
  hour by hour, at most the members at work then (part-timers count only in
  their own hours: :mod:`closedloop.tools.twin.members`).
- **When**: the pool's working calendar, the hours of the week holding its
  work (:func:`closedloop.tools.twin.calendar.working_slots`); pools with too
  little data use the calendar of the whole log, or work any time.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from closedloop.tools.log.columns import ACTIVITY, GROUP, RESOURCE

PROFILE_SIMILARITY = 0.7
MIN_POOL_SHARE = 0.05  # a pool doing less of an activity than this does not take it in simulation
MAX_POOL_NAME = 3  # activities spelled out in a shared pool's name
MAX_RESOURCE_NAMES = 200


def instance_pools(df: pd.DataFrame, pooling: str) -> pd.Series:
    """The pool of every activity instance (see module docstring)."""
    acts = df[ACTIVITY]
    if GROUP in df.columns and df[GROUP].notna().any():
        groups = df[GROUP].fillna("").astype(str)
        main = {}
        for act, g in groups.groupby(acts, sort=True):
            g = g[g != ""]
            main[str(act)] = str(g.mode().iloc[0]) if len(g) else str(act)
        return acts.map(main)
    named = df[RESOURCE] != ""
    if pooling == "activity" or not named.any():
        return acts.copy()
    profile = pd.crosstab(df.loc[named, RESOURCE], acts[named])
    clusters = _cluster(profile)
    names = _pool_names(clusters, profile)
    of_resource = {r: name for members, name in zip(clusters, names, strict=True) for r in members}
    pools = df[RESOURCE].map(of_resource)
    # instances without a resource: the pool doing most of the activity, else their own
    main = pools[named].groupby(acts[named]).agg(lambda p: p.mode().iloc[0])
    return pools.where(named, acts.map(main).fillna(acts))


def _cluster(profile: pd.DataFrame) -> list[list[str]]:
    """Average-linkage clusters of the rows of ``profile`` by cosine similarity."""
    vectors = profile.to_numpy(dtype=float, copy=True)
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sim = vectors @ vectors.T
    clusters = [[i] for i in range(len(profile))]
    while len(clusters) > 1:
        best, pair = PROFILE_SIMILARITY, None
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                s = float(sim[np.ix_(clusters[i], clusters[j])].mean())
                if s >= best:
                    best, pair = s, (i, j)
        if pair is None:
            break
        i, j = pair
        clusters[i] = clusters[i] + clusters.pop(j)
    labels = profile.index.astype(str).tolist()
    return [[labels[i] for i in c] for c in clusters]


def _pool_names(clusters: list[list[str]], profile: pd.DataFrame) -> list[str]:
    """Name each resource cluster after the activities it mostly does (unique names).

    A cluster doing a single activity takes the activity's name, as with one
    pool per activity; the busiest cluster gets a name first.
    """
    used: set[str] = set()
    names = [""] * len(clusters)
    for i in sorted(range(len(clusters)), key=lambda i: -profile.loc[clusters[i]].to_numpy().sum()):
        work = profile.loc[clusters[i]].sum()
        work = work[work >= MIN_POOL_SHARE * work.sum()].sort_values(ascending=False, kind="stable")
        top = [str(a) for a in work.index]
        name = (
            " | ".join(sorted(top))
            if len(top) <= MAX_POOL_NAME
            else (f"{top[0]} | +{len(top) - 1} more")
        )
        base, k = name, 2
        while name in used:
            name, k = f"{base} ({k})", k + 1
        used.add(name)
        names[i] = name
    return names


def shares(pools: pd.Series, keys: pd.Series, min_support: int = 0) -> dict[str, dict[str, float]]:
    """For each key: pool -> share of the instances (pools below MIN_POOL_SHARE dropped)."""
    out: dict[str, dict[str, float]] = {}
    for key, p in pools.groupby(keys, sort=True):
        if len(p) < min_support:
            continue
        counts = p.value_counts()
        counts = counts[counts >= MIN_POOL_SHARE * len(p)]
        out[str(key)] = {str(k): round(float(v) / counts.sum(), 6) for k, v in counts.items()}
    return out


def weekly_resources(
    rows: pd.DataFrame, week: pd.Series, slots: Mapping[str, int] | None = None
) -> int | None:
    """Median distinct named resources per ISO week (None when nobody is named).

    With ``slots`` (resource -> cases it works on at once) each resource counts
    that many times: the servers per week rather than the people.
    """
    named = rows[RESOURCE] != ""
    if not named.any():
        return None
    who = rows.loc[named, RESOURCE].groupby(week[rows.index[named]])
    if slots is None:
        per_week = who.nunique()
    else:
        per_week = who.agg(lambda r: sum(slots.get(str(x), 1) for x in pd.unique(r)))
    return max(1, int(np.ceil(per_week.median())))


def resource_names(rows: pd.DataFrame) -> list[str]:
    """The pool's resources, busiest first (names for simulated logs)."""
    counts = rows.loc[rows[RESOURCE] != "", RESOURCE].value_counts()
    return [str(r) for r in counts.index[:MAX_RESOURCE_NAMES]]
