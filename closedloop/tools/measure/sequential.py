"""Early abort on a guardrail breach: Wald's sequential probability ratio test on the rework proportion.

Looking at a live rollout every day and aborting on the first "significant"
difference inflates false aborts; the SPRT is built for looking after every
case. It tests H0: the rework rate is the baseline ``p0`` against H1: it is
``p0 + threshold``. Error rates it controls (Wald's bounds, for independent
cases): aborting a change that does not raise rework happens with probability
at most about ``alpha``; missing a change that raises rework by the full
threshold happens with probability at most about ``beta``.

Wald's bounds hold for a known ``p0``. The baseline is estimated, from the period
before or the control cohort: given its number of cases, H0 becomes the baseline
plus one standard error of that estimate, since an underestimated baseline makes
noise look like a breach (in the overload sandbox world 3 of 18 staffing changes
whose rework did not rise, -0.0 points on average, were aborted at a nominal 5 %;
simulated with a baseline of 1,400 cases, 7 % false aborts become 2 % and a rise of
twice the threshold is still caught early in 9 of 10). H1 stays the baseline plus
the threshold; a baseline too small to tell the two apart leaves the decision to
the end-of-window check.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from closedloop.contracts import SequentialDecision
from closedloop.tools.base import read_tool
from closedloop.tools.errors import ToolError


@read_tool
def sequential_rework_check(
    outcomes: Iterable[bool],
    baseline_rate: float,
    threshold_points: float = 2.0,
    alpha: float = 0.05,
    beta: float = 0.2,
    baseline_cases: int | None = None,
) -> SequentialDecision:
    """Run the SPRT over ``outcomes`` (one bool per treated case, True = reworked, in closing order).

    Stops at the first crossing: ``abort`` (evidence the rate rose by the
    threshold), ``no_breach`` (evidence it did not), else ``continue``.
    ``baseline_cases``: how many cases the baseline rate was estimated from (None: known).
    """
    if not (0 < alpha < 1 and 0 < beta < 1):
        raise ToolError(f"alpha ({alpha}) and beta ({beta}) must be in (0, 1)")
    base = float(baseline_rate)
    p1 = base + threshold_points / 100.0
    if not 0 < base < 1 or not p1 < 1:
        raise ToolError(
            f"sequential check needs 0 < baseline ({base}) < baseline + threshold ({p1}) < 1"
        )
    margin = 0.0
    if baseline_cases is not None:
        if baseline_cases < 1:
            raise ToolError(f"baseline_cases must be at least 1, got {baseline_cases}")
        margin = math.sqrt(base * (1 - base) / baseline_cases)
    p0 = base + margin
    if not p0 < p1:
        raise ToolError(
            f"a baseline of {baseline_cases} cases is too uncertain (+-{100 * margin:.1f} points) "
            f"to tell no rise from a rise of {threshold_points:g} points"
        )
    upper, lower = math.log((1 - beta) / alpha), math.log(beta / (1 - alpha))
    up, down = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    llr, n, decision, stopped = 0.0, 0, "continue", None
    for reworked in outcomes:
        n += 1
        llr += up if reworked else down
        if llr >= upper or llr <= lower:
            decision, stopped = ("abort" if llr >= upper else "no_breach"), n
            break
    h0 = (
        f"{p0:.1%}"
        if not margin
        else f"{p0:.1%} (baseline {base:.1%} of {baseline_cases} cases + one standard error)"
    )
    rule = (
        f"Wald SPRT, H0 rework {h0} vs H1 {p1:.1%}: abort when the log-likelihood ratio "
        f"reaches {upper:.2f}, no breach at {lower:.2f}; false-abort rate <= ~{alpha:g}, "
        f"miss rate at +{threshold_points:g} points <= ~{beta:g}"
    )
    return SequentialDecision(
        decision=decision,
        n=n,
        stopped_at=stopped,
        log_likelihood_ratio=llr,
        upper=upper,
        lower=lower,
        p0=p0,
        p1=p1,
        alpha=alpha,
        beta=beta,
        rule=rule,
    )
