"""What the log can tell about a change before it is made: rework of a segment, approval gates.

- :func:`failure_prior`: the failure rate of a new automation on a segment is
  not in the log. It enters as a declared prior range, widened by the closest
  evidence the log has: how often cases of that segment were reworked (an
  activity of the automated work repeated). The range is shown to the approver.
  Once a canary of the same action on the same segment has been measured
  (``closedloop.tools.measure.canary``), its failures replace the prior.
- :func:`failure_notice`: how long a failed automation goes unnoticed is not
  in the log either; the closest evidence is how long the log's reworked cases
  waited between an activity and its repeat (a wrong resolution until the
  reopen), else a declared prior range; a canary's own failures replace both.
- :func:`approval_gate`: an activity done only for cases whose numeric case
  attribute reaches a threshold (an approval above an amount), found from the
  cases that did and did not pass through it.
- :func:`handled_by`: in how many of a segment's cases a group of people
  already did an activity (the evidence that they can take the segment's work
  when it is routed to them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
from pydantic import BaseModel

from closedloop.tools.log.columns import ACTIVITY, CASE, CASE_PREFIX, COMPLETE, RESOURCE, START
from closedloop.tools.measure.canary import FailureCounts

# A bot nobody has measured yet may fail on anything from none to half of its cases.
PRIOR_FAILURE = (0.0, 0.5)
# Without rework in the log: a failure may be noticed at once or up to a working day later.
PRIOR_NOTICE_HOURS = (0.0, 24.0)
MIN_EVIDENCE_CASES = 20
GATE_ACCURACY = 0.95  # share of cases the threshold must sort right to count as a gate
MIN_GATED_CASES = 20


# The canary evidence of an action with given parameters (None where no canary measured it).
FailureLookup = Callable[[str, Mapping[str, Any]], FailureCounts | None]


class AssumedRange(BaseModel):
    """A parameter the log cannot show, as the range the prediction samples, and where it came from."""

    name: str
    low: float
    high: float
    source: str


def _wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def failure_prior(frame: pd.DataFrame, field: str | None, values: Sequence[str] | None,
                  activities: Sequence[str], measured: FailureCounts | None = None) -> AssumedRange:
    """The failure-rate range of automating ``activities`` for cases with ``field`` in ``values``.

    With ``measured`` canary failures of this automation on enough judged cases,
    their 95 % interval: the bot itself was seen. Otherwise the declared prior
    :data:`PRIOR_FAILURE`, widened (never narrowed) to the 95 % interval of the
    share of the segment's cases in which one of ``activities`` ran more than
    once (rework), when the log has enough such cases.
    """
    if measured is not None and measured.enough:
        m_low, m_high = measured.interval
        plans = ", ".join(f"#{p}" for p in measured.plans)
        return AssumedRange(
            name="failure_rate", low=round(m_low, 4), high=round(m_high, 4),
            source=f"measured by the canary of plan {plans}: the bot failed {measured.failed} of "
                   f"{measured.cases} treated cases (95 % interval {m_low:.0%}-{m_high:.0%}); "
                   "replaces the declared prior")
    low, high = PRIOR_FAILURE
    prior = f"declared prior {low:.0%}-{high:.0%} (a new bot's failure rate is not in the log)"
    col = f"{CASE_PREFIX}{field}" if field else None
    rows = frame[frame[ACTIVITY].isin(list(activities))]
    if col is not None and col in rows.columns and values is not None:
        rows = rows[rows[col].astype(str).isin([str(v) for v in values])]
    per_case = rows.groupby([CASE, ACTIVITY]).size().groupby(level=0).max()
    n = len(per_case)
    if n < MIN_EVIDENCE_CASES:
        return AssumedRange(name="failure_rate", low=low, high=high,
                            source=f"{prior}; the log has {n} cases of the segment, too few to widen it")
    reworked = int((per_case > 1).sum())
    w_low, w_high = _wilson(reworked, n)
    return AssumedRange(
        name="failure_rate", low=round(min(low, w_low), 4), high=round(max(high, w_high), 4),
        source=f"{prior}; the segment's rework share in the log: {reworked}/{n} cases reworked "
               f"(95 % interval {w_low:.0%}-{w_high:.0%})"
               + (", which widens it" if w_low < low or w_high > high else ", within it"))


def failure_notice(frame: pd.DataFrame, activities: Sequence[str],
                   measured: FailureCounts | None = None) -> AssumedRange:
    """How long a failed automation of ``activities`` waits before a person takes over (hours).

    With ``measured`` canary failures of this automation, the interquartile
    range of how long they went unnoticed. Otherwise the closest evidence: in
    the log's cases where one of ``activities`` ran again, the time from an
    instance's end to the start of its repeat (the interquartile range over
    those gaps); with fewer than :data:`MIN_EVIDENCE_CASES` such cases the
    declared prior :data:`PRIOR_NOTICE_HOURS`.
    """
    if measured is not None and measured.enough_notice and measured.notice_hours is not None:
        q1, q3 = measured.notice_hours
        return AssumedRange(
            name="failure_delay_hours", low=round(q1, 3), high=round(max(q3, q1), 3),
            source=f"measured by the canary of plan {', '.join(f'#{p}' for p in measured.plans)}: "
                   f"{measured.notice_n} failures came back to people after {q1:.1f}-{q3:.1f} h "
                   "(interquartile)")
    low, high = PRIOR_NOTICE_HOURS
    rows = frame[frame[ACTIVITY].isin(list(activities))].sort_values([CASE, COMPLETE])
    start = rows[START] if START in rows.columns else rows[COMPLETE]
    same = (rows[CASE].to_numpy()[1:] == rows[CASE].to_numpy()[:-1]) & (
        rows[ACTIVITY].to_numpy()[1:] == rows[ACTIVITY].to_numpy()[:-1])
    gaps = ((start.to_numpy()[1:] - rows[COMPLETE].to_numpy()[:-1])[same]
            / pd.Timedelta(hours=1)).astype(float)
    gaps = gaps[gaps >= 0]
    cases = rows[CASE].to_numpy()[1:][same]
    if len(set(cases.tolist())) < MIN_EVIDENCE_CASES:
        return AssumedRange(
            name="failure_delay_hours", low=low, high=high,
            source=f"declared prior {low:g}-{high:g} h until a failure is noticed (the log has "
                   f"{len(set(cases.tolist()))} reworked cases of {', '.join(activities)})")
    q1, q3 = (float(v) for v in pd.Series(gaps).quantile([0.25, 0.75]))
    return AssumedRange(
        name="failure_delay_hours", low=round(q1, 3), high=round(max(q3, q1), 3),
        source=f"time from an instance to its repeat in {len(set(cases.tolist()))} reworked "
               f"cases of the log (interquartile {q1:.1f}-{q3:.1f} h)")


def automation_assumptions(frame: pd.DataFrame, field: str | None, values: Sequence[str] | None,
                           activities: Sequence[str], measured: FailureCounts | None = None,
                           ) -> tuple[dict[str, tuple[float, float]], list[AssumedRange]]:
    """The ranges of a bot taking over ``activities`` (one automation each, in order): its
    failure rate on the segment (``measured`` by a canary where there was one) and how long
    a failure goes unnoticed."""
    ranges = [failure_prior(frame, field, values, activities, measured),
              failure_notice(frame, activities, measured)]
    prefix = "" if len(activities) == 1 else "changes.{i}."
    out = {(prefix + r.name).format(i=i): (r.low, r.high)
           for i in range(len(activities)) for r in ranges}
    return out, ranges


class Gate(BaseModel):
    """An activity done for the cases whose ``attribute`` reaches ``threshold``."""

    activity: str
    attribute: str
    threshold: float
    accuracy: float
    gated_cases: int
    amounts: list[float]


def approval_gate(frame: pd.DataFrame, activity: str) -> Gate | None:
    """The numeric case attribute and threshold that decide whether a case goes through
    ``activity`` (None when no attribute sorts at least :data:`GATE_ACCURACY` of cases)."""
    cases = frame.groupby(CASE, sort=False)
    did = cases[ACTIVITY].agg(lambda a: bool((a == activity).any()))
    if did.sum() < MIN_GATED_CASES or did.all():
        return None
    best: Gate | None = None
    for col in [c for c in frame.columns if c.startswith(CASE_PREFIX) and c != CASE]:
        value = pd.to_numeric(cases[col].first(), errors="coerce")
        if value.isna().mean() > 0.05:
            continue
        threshold = float(value[did].min())
        accuracy = float(((value >= threshold) == did).mean())
        # A gate sends cases around the activity: without enough of them below the threshold,
        # the cases that skip it are only those still open (not there yet), not gated.
        around = int((~did & (value < threshold)).sum())
        if around < MIN_GATED_CASES:
            continue
        if accuracy >= GATE_ACCURACY and (best is None or accuracy > best.accuracy):
            best = Gate(activity=activity, attribute=col.removeprefix(CASE_PREFIX),
                        threshold=threshold, accuracy=round(accuracy, 4),
                        gated_cases=int(did.sum()), amounts=sorted(value[did].astype(float)))
    return best


def handled_by(frame: pd.DataFrame, people: Sequence[str], field: str,
               activity: str | None = None) -> dict[str, tuple[int, int]]:
    """Per value of case attribute ``field``: (cases in which some of ``people`` did
    ``activity`` (any activity when None), cases)."""
    col = f"{CASE_PREFIX}{field}"
    if col not in frame.columns or RESOURCE not in frame.columns:
        return {}
    per_case = frame.groupby(CASE, sort=False)[col].first().astype(str)
    did = frame[RESOURCE].isin(list(people))
    if activity is not None:
        did &= frame[ACTIVITY] == activity
    worked = set(frame.loc[did, CASE])
    hit = per_case.index.isin(list(worked))
    counts = pd.DataFrame({"value": per_case.to_numpy(), "hit": hit}).groupby("value")["hit"]
    return {str(v): (int(h), int(n)) for v, h, n in zip(counts.sum().index, counts.sum(),
                                                         counts.size(), strict=True)}


__all__ = ["PRIOR_FAILURE", "AssumedRange", "Gate", "approval_gate", "failure_prior", "handled_by"]
