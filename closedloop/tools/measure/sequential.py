"""Early abort on a guardrail breach: Wald's sequential probability ratio test on the rework proportion.

Looking at a live rollout every day and aborting on the first "significant"
difference inflates false aborts; the SPRT is built for looking after every
case. It tests H0: the rework rate is the baseline ``p0`` against H1: it is
``p0 + threshold``. Error rates it controls (Wald's bounds, for independent
cases): aborting a change that does not raise rework happens with probability
at most about ``alpha``; missing a change that raises rework by the full
threshold happens with probability at most about ``beta``. ``p0`` is taken as
known (from the baseline period or control cohort; use a large baseline).
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
) -> SequentialDecision:
    """Run the SPRT over ``outcomes`` (one bool per treated case, True = reworked, in closing order).

    Stops at the first crossing: ``abort`` (evidence the rate rose by the
    threshold), ``no_breach`` (evidence it did not), else ``continue``.
    """
    p0 = float(baseline_rate)
    p1 = p0 + threshold_points / 100.0
    if not 0 < p0 < 1 or not p1 < 1:
        raise ToolError(
            f"sequential check needs 0 < baseline ({p0}) < baseline + threshold ({p1}) < 1"
        )
    if not (0 < alpha < 1 and 0 < beta < 1):
        raise ToolError(f"alpha ({alpha}) and beta ({beta}) must be in (0, 1)")
    upper, lower = math.log((1 - beta) / alpha), math.log(beta / (1 - alpha))
    up, down = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
    llr, n, decision, stopped = 0.0, 0, "continue", None
    for reworked in outcomes:
        n += 1
        llr += up if reworked else down
        if llr >= upper or llr <= lower:
            decision, stopped = ("abort" if llr >= upper else "no_breach"), n
            break
    rule = (
        f"Wald SPRT, H0 rework {p0:.1%} vs H1 {p1:.1%}: abort when the log-likelihood ratio "
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
