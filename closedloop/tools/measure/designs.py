"""Designs that measure the TOTAL effect of a live change on cycle time, without interference bias.

When treated and control cases share people, a change that speeds up treated
cases also shortens the queue the control cases wait in: treatment minus
control then sees only the direct part of the effect (biased towards zero).
Each design here estimates the effect of the change for everyone versus for
no one, with a 95 % interval, and says which design it is and why:

- :func:`switchback`: the change alternates on/off by time blocks; blocks are the unit;
- :func:`before_after_with_counterfactual`: after the change vs a model's as-is counterfactual;
- :func:`treatment_control_corrected`: treatment vs control plus a model's interference correction.

Open cases are censored at the window end (restricted mean, ``survival``), never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, model_validator

from closedloop.contracts import EffectEstimate
from closedloop.tools.base import read_tool
from closedloop.tools.errors import ToolError
from closedloop.tools.measure.cohorts import EXPERIMENT_COLUMN
from closedloop.tools.measure.effect import CarryOverPrediction, Interval, estimate, horizon
from closedloop.tools.measure.survival import (
    case_table,
    kaplan_meier,
    restricted_mean,
    utc_timestamp,
)


class Block(BaseModel):
    """A time block of a switchback schedule: the change is on (or off) for arrivals in [start, end)."""

    start: datetime
    end: datetime
    on: bool

    @model_validator(mode="after")
    def _ordered(self) -> Block:
        if self.end <= self.start:
            raise ValueError(f"block ends ({self.end}) before it starts ({self.start})")
        return self


def _blocks(schedule: Sequence[Block | tuple[datetime, datetime, bool]]) -> list[Block]:
    blocks = sorted(
        (b if isinstance(b, Block) else Block(start=b[0], end=b[1], on=b[2]) for b in schedule),
        key=lambda b: utc_timestamp(b.start),
    )
    for a, b in pairwise(blocks):
        if utc_timestamp(b.start) < utc_timestamp(a.end):
            raise ToolError(f"switchback blocks overlap: {a.start}-{a.end} and {b.start}-{b.end}")
    return blocks


def _cluster_mean(blocks: list[tuple[float, int]]) -> tuple[float, float]:
    """Case-weighted mean of block means and its cluster (block-level) variance.

    Weighting by cases matters: busy blocks have more cases and longer queues,
    so an unweighted mean of block means underestimates the mean per case.
    """
    m = np.array([b[0] for b in blocks])
    n = np.array([b[1] for b in blocks], dtype=float)
    mean = float((n * m).sum() / n.sum())
    k = len(blocks)
    var = float(k / (k - 1) * ((n * (m - mean)) ** 2).sum() / n.sum() ** 2)
    return mean, var


@read_tool
def switchback(
    frame: pd.DataFrame,
    schedule: Sequence[Block | tuple[datetime, datetime, bool]],
    *,
    end_activities: Iterable[str],
    window_end: datetime,
    washout_hours: float = 0.0,
    start_activities: Iterable[str] | None = None,
    tau_hours: float | None = None,
    confidence: float = 0.95,
    pairs: Sequence[tuple[int, int]] | None = None,
) -> EffectEstimate:
    """Total effect of a change toggled on/off by time blocks (on-blocks minus off-blocks).

    Cases count in the block they arrived in; arrivals in the first
    ``washout_hours`` of a block are left out (the queue still carries the
    previous state). Each block's (restricted) mean cycle time is one unit:
    the arms' case-weighted means of block means are compared with a cluster
    (block-level) t interval, which counts blocks, not cases (cases of one
    block share its queue and are not independent). A block's curve is
    continued past its own follow-up with the pooled curve of its arm.
    Needs at least 2 on- and 2 off-blocks with cases.

    With ``pairs`` (indices into the schedule of blocks randomised as pairs, one on and
    one off, e.g. the same weekday a week apart) the effect is the case-weighted mean of
    the pairs' differences and its interval comes from their spread (a t with pairs - 1
    degrees of freedom): what the pairs share (the weekday) cancels. Pairs with an empty
    block are left out; fewer than 3 complete pairs fall back to the unpaired estimate.
    """
    blocks = _blocks(schedule)
    if not blocks:
        raise ToolError("switchback needs a block schedule")
    cases = case_table(frame, end_activities, window_end, start_activities)
    parts: list[pd.DataFrame] = []
    for i, b in enumerate(blocks):
        lo = utc_timestamp(b.start) + pd.Timedelta(hours=washout_hours)
        inside = cases[(cases["arrival"] >= lo) & (cases["arrival"] < utc_timestamp(b.end))]
        parts.append(inside.assign(block=i, on=b.on))
    used = pd.concat(parts)
    arms = {on: used[used["on"] == on] for on in (True, False)}
    if any(arm["block"].nunique() < 2 for arm in arms.values()):
        raise ToolError(
            "switchback needs at least 2 on-blocks and 2 off-blocks with cases after washout "
            f"(got {arms[True]['block'].nunique()} on, {arms[False]['block'].nunique()} off)"
        )
    tau = horizon(arms.values(), tau_hours)
    tails = {on: kaplan_meier(g["hours"], g["closed"]) for on, g in arms.items()}
    per_block: dict[bool, list[tuple[float, int]]] = {True: [], False: []}
    for (_, on), g in used.groupby(["block", "on"]):
        rm = restricted_mean(g["hours"], g["closed"], tau, tail=tails[bool(on)])
        per_block[bool(on)].append((rm.mean, len(g)))
    (on_mean, v_on), (off_mean, v_off) = (
        _cluster_mean(per_block[True]),
        _cluster_mean(per_block[False]),
    )
    k_on, k_off = len(per_block[True]), len(per_block[False])
    effect = on_mean - off_mean
    se = math.sqrt(v_on + v_off)
    dof = (v_on + v_off) ** 2 / (v_on**2 / (k_on - 1) + v_off**2 / (k_off - 1)) if se else None
    paired = _paired(used, blocks, pairs or [], tau, tails)
    if paired is not None:
        effect, se, dof, n_pairs = paired
    why = (
        f"the change was toggled by time blocks ({k_on} on, {k_off} off), so every case in a "
        "block shares the same state of the queue and the comparison sees the total effect, "
        f"spill-over included; arrivals in the first {washout_hours:g} h of a block were left out "
        "(carry-over) and the interval treats blocks, not cases, as the units"
        + (
            f"; paired: {n_pairs} pairs of blocks randomised together, so what a pair shares "
            "(e.g. its weekday) cancels in the difference"
            if paired is not None
            else ""
        )
    )
    assumptions = ["blocks are independent after the washout (carry-over shorter than the washout)"]
    return estimate(
        "switchback",
        why,
        effect,
        se,
        dof,
        confidence,
        off_mean,
        "block",
        (k_on, k_off),
        used,
        tau,
        assumptions,
    )


def _paired(
    used: pd.DataFrame,
    blocks: list[Block],
    pairs: Sequence[tuple[int, int]],
    tau: float | None,
    tails: Mapping[bool, Any],
) -> tuple[float, float, float, int] | None:
    """Effect, standard error, degrees of freedom and number of pairs of a paired switchback
    (None when fewer than 3 pairs have cases in both blocks)."""
    means: dict[int, tuple[float, int]] = {}
    for i, g in used.groupby("block"):
        on = blocks[int(i)].on
        means[int(i)] = (restricted_mean(g["hours"], g["closed"], tau, tail=tails[on]).mean, len(g))
    diffs, weights = [], []
    for a, b in pairs:
        if a not in means or b not in means or blocks[a].on == blocks[b].on:
            continue
        on, off = (a, b) if blocks[a].on else (b, a)
        diffs.append(means[on][0] - means[off][0])
        weights.append(means[on][1] + means[off][1])
    if len(diffs) < 3:
        return None
    d, w = np.array(diffs), np.array(weights, dtype=float)
    mean = float((w * d).sum() / w.sum())
    k = len(d)
    se = math.sqrt(k / (k - 1) * float(((w * (d - mean)) ** 2).sum()) / float(w.sum()) ** 2)
    return mean, se, float(k - 1), k


@read_tool
def before_after_with_counterfactual(
    frame: pd.DataFrame,
    change_at: datetime,
    counterfactual: Interval,
    *,
    end_activities: Iterable[str],
    window_end: datetime,
    washout_hours: float = 0.0,
    start_activities: Iterable[str] | None = None,
    tau_hours: float | None = None,
    confidence: float = 0.95,
) -> EffectEstimate:
    """Total effect of a change that cannot be split (staffing): after the change vs a counterfactual.

    Observed: cases that arrived from ``change_at + washout_hours`` to
    ``window_end`` (open ones censored). ``counterfactual`` is the mean cycle
    time the same period would have had without the change (e.g. the twin's
    simulated as-is KPI for that period's arrivals) with its interval; the
    effect's interval combines both uncertainties (normal approximation).
    """
    cases = case_table(frame, end_activities, window_end, start_activities)
    start = utc_timestamp(change_at) + pd.Timedelta(hours=washout_hours)
    after = cases[cases["arrival"] >= start]
    if len(after) < 2:
        raise ToolError(
            f"before/after needs >= 2 cases that arrived after the change, got {len(after)}"
        )
    tau = horizon([after], tau_hours)
    observed = restricted_mean(after["hours"], after["closed"], tau)
    effect = observed.mean - counterfactual.mean
    se = math.hypot(observed.se, counterfactual.se)
    why = (
        f"the cases after the change are compared with the counterfactual from {counterfactual.source} for the "
        "same period; the interval combines the sampling error of the observed cases and the "
        "counterfactual's own interval"
    )
    assumptions = [
        f"the counterfactual ({counterfactual.source}) reproduces the period without the change"
    ]
    if observed.open_cases:
        assumptions.append(
            f"the counterfactual is on the observed scale: cycle time capped at {tau:.1f} h"
        )
    return estimate(
        "before_after_with_counterfactual",
        why,
        effect,
        se,
        None,
        confidence,
        counterfactual.mean,
        "case",
        (len(after), 0),
        after,
        tau,
        assumptions,
    )


def _cohort_means(
    treated: pd.DataFrame, control: pd.DataFrame, tau_hours: float | None
) -> tuple[float, float, float, float | None, float | None]:
    """(treated mean, control mean, se of the difference, Welch dof or None, tau)."""
    if treated["closed"].all() and control["closed"].all() and tau_hours is None:
        t, c = treated["hours"].to_numpy(float), control["hours"].to_numpy(float)
        vt, vc = t.var(ddof=1) / len(t), c.var(ddof=1) / len(c)
        se = math.sqrt(vt + vc)
        dof = (vt + vc) ** 2 / (vt**2 / (len(t) - 1) + vc**2 / (len(c) - 1)) if se else None
        return float(t.mean()), float(c.mean()), se, dof, None
    tau = horizon([treated, control], tau_hours)
    rt = restricted_mean(treated["hours"], treated["closed"], tau)
    rc = restricted_mean(control["hours"], control["closed"], tau)
    return rt.mean, rc.mean, math.hypot(rt.se, rc.se), None, tau


@read_tool
def treatment_control_corrected(
    frame: pd.DataFrame,
    labels: Mapping[str, str],
    *,
    end_activities: Iterable[str],
    window_end: datetime,
    correction: Interval | None = None,
    shares_resources: bool = True,
    cohort_column: str = EXPERIMENT_COLUMN,
    start_activities: Iterable[str] | None = None,
    tau_hours: float | None = None,
    confidence: float = 0.95,
) -> EffectEstimate:
    """Treatment minus control, corrected for interference with a model's prediction.

    ``labels`` maps values of ``cohort_column`` to "treatment" or "control".
    ``correction`` (see :func:`interference_correction`) is added to the
    difference with its uncertainty. Without one the plain difference (Welch,
    or restricted means when cases are open) is returned as design
    ``treatment_control``, and ``why`` says it is biased towards zero when the
    cohorts share resources.
    """
    cases = case_table(
        frame, end_activities, window_end, start_activities, cohort_column=cohort_column
    )
    cohort = cases["cohort"].map(dict(labels))
    treated, control = cases[cohort == "treatment"], cases[cohort == "control"]
    if len(treated) < 2 or len(control) < 2:
        raise ToolError(
            f"treatment vs control needs >= 2 cases per cohort "
            f"(treatment {len(treated)}, control {len(control)})"
        )
    used = pd.concat([treated, control])
    mt, mc, se, dof, tau = _cohort_means(treated, control, tau_hours)
    units = (len(treated), len(control))
    if correction is None:
        why = "treatment vs control without a correction: " + (
            "biased towards zero, because control cases share resources with treated ones and "
            "speed up too (interference); read it as the direct effect only"
            if shares_resources
            else "unbiased, since the cohorts share no resources"
        )
        return estimate(
            "treatment_control",
            why,
            mt - mc,
            se,
            dof,
            confidence,
            mc,
            "case",
            units,
            used,
            tau,
            ["no interference between cohorts"] if not shares_resources else [],
        )
    why = (
        "treatment vs control shares resources, so the difference misses the control cases' own "
        f"speed-up; the interference predicted by {correction.source} ({correction.mean:+.2f} h "
        f"[{correction.ci_low:+.2f}, {correction.ci_high:+.2f}]) was added with its uncertainty"
    )
    effect = mt - mc + correction.mean
    return estimate(
        "treatment_control_corrected",
        why,
        effect,
        math.hypot(se, correction.se),
        None,
        confidence,
        mc,
        "case",
        units,
        used,
        tau,
        [f"the interference predicted by {correction.source} holds in the live system"],
    )


def corrected_for_carry_over(effect: EffectEstimate, carry_over: CarryOverPrediction) -> EffectEstimate:
    """A switchback's estimate plus what carry-over between blocks hides of the total effect,
    where the live off-blocks show that carry-over.

    ``carry_over`` (see :func:`~closedloop.tools.measure.twin_effects.twin_carry_over`) holds
    the model's full-rollout effect minus its own switchback estimate over the same blocks
    (``miss``). Where people are nearly always busy, a block inherits the queue the block
    before it left: the change reaches the off-blocks, and on and off look more alike than
    the world with and without the change. The model says how far its off-blocks move from
    its as-is level; the live off-blocks (the estimate's baseline) either moved that way or
    stayed at the as-is level. Only where they sit closer to the model's toggled level than
    to its as-is level is ``miss`` added to the estimate and its uncertainty to the interval
    (as independent errors); otherwise the estimate is kept and the verdict says why.
    """
    off = effect.baseline
    seen = (f"the live off-blocks average {off:.1f} h, the twin's {carry_over.off_toggled_hours:.1f} h "
            f"with the change toggled and {carry_over.off_as_is_hours:.1f} h without it")
    miss = carry_over.miss
    if abs(off - carry_over.off_toggled_hours) >= abs(off - carry_over.off_as_is_hours):
        return effect.model_copy(update={"why": (
            f"{effect.why}; not corrected for the carry-over {miss.source} predicts "
            f"({miss.mean:+.2f} h): {seen}, so the world's off-blocks do not show it")})
    mean = effect.effect + miss.mean
    half = math.hypot((effect.ci_high - effect.ci_low) / 2, (miss.ci_high - miss.ci_low) / 2)
    low, high = mean - half, mean + half
    why = (f"{effect.why}; {seen}, so the change reaches the off-blocks: the carry-over the "
           f"washout leaves, predicted by {miss.source} ({miss.mean:+.2f} h "
           f"[{miss.ci_low:+.2f}, {miss.ci_high:+.2f}]), was added with its uncertainty")
    assumptions = [a for a in effect.assumptions if not a.startswith("blocks are independent")]
    assumptions.append(f"the carry-over between blocks predicted by {miss.source} holds in "
                       "the live system")
    return effect.model_copy(update={
        "effect": mean, "ci_low": low, "ci_high": high, "changed": effect.baseline + mean,
        "relative_pct": 100 * mean / effect.baseline if effect.baseline else None,
        "significant": bool(low > 0 or high < 0), "why": why, "assumptions": assumptions,
    })
