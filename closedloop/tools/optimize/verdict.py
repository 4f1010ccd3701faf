"""Whether a simulated effect confirms what an optimiser claims, and why not, in words.

An optimum is chosen on an analytic model; the simulation of that optimum is
the reported effect. A claim is confirmed only when the simulation's 95 %
interval supports its direction: a reduction needs the whole interval below
zero; a bound ("grows by at most x") needs the whole interval at or below x.
A mean in the right direction with an interval that reaches the wrong side is
not a confirmation: the simulation cannot tell it from no effect.
"""

from __future__ import annotations

from closedloop.tools.twin import Estimate

__all__ = ["Check", "check_at_most", "check_reduction", "interval_text", "summarise"]

Check = tuple[bool, str]


def interval_text(est: Estimate, unit: str = " h", digits: int = 3) -> str:
    """``-1.7 h [-4.2, +0.8]``: a simulated estimate with its 95 % interval."""
    return (f"{est.mean:+.{digits}g}{unit} [{est.ci_low:+.{digits}g}, "
            f"{est.ci_high:+.{digits}g}]")  # fmt: skip


def check_reduction(est: Estimate, what: str, unit: str = " h") -> Check:
    """Confirmed when the whole 95 % interval of ``est`` (a change) lies below zero."""
    shown = f"simulated {what} {interval_text(est, unit)}"
    if est.ci_high < 0:
        return True, f"{shown}: the whole 95 % interval is below zero"
    if est.mean < 0:
        return False, (f"{shown}: the 95 % interval reaches zero or above, so the simulation "
                       "cannot tell the reduction from no effect")  # fmt: skip
    if est.ci_low > 0:
        return False, f"{shown}: the simulation predicts an increase, not a reduction"
    return False, f"{shown}: the simulation predicts no reduction"


def check_at_most(est: Estimate, bound: float, what: str, unit: str = " h") -> Check:
    """Confirmed when the whole 95 % interval of ``est`` lies at or below ``bound``."""
    shown = f"simulated {what} {interval_text(est, unit)}"
    if est.ci_high <= bound + 1e-9:
        return True, f"{shown}: the whole 95 % interval is at or below the allowed {bound:+.3g}{unit}"
    if est.mean <= bound:
        return False, (f"{shown}: the 95 % interval reaches above the allowed {bound:+.3g}{unit}, "
                       "so the simulation cannot confirm the bound")  # fmt: skip
    return False, f"{shown}: above the allowed {bound:+.3g}{unit}"


def summarise(checks: list[Check]) -> Check:
    """All checks must hold; the words say which failed (or that all held)."""
    failed = [text for ok, text in checks if not ok]
    if failed:
        return False, "not confirmed: " + "; ".join(failed)
    return True, "confirmed: " + "; ".join(text for _, text in checks)
