"""Agreement and repeatability statistics of an eval run: accuracy, Cohen's kappa, confusion
matrix, pass^k and flip rate."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel


class Agreement(BaseModel):
    """How often two labellings of the same items agree, beyond chance."""

    n: int
    accuracy: float | None
    kappa: float | None
    labels: list[str]
    confusion: dict[str, dict[str, int]]  # truth -> predicted -> count


def agreement(truth: Sequence[str], predicted: Sequence[str]) -> Agreement:
    """Accuracy, Cohen's kappa and the confusion matrix of ``predicted`` against ``truth``.

    Kappa is (p_o - p_e) / (1 - p_e); when both labellings use one and the same
    single label (p_e = 1) kappa is undefined and reported as None.
    """
    if len(truth) != len(predicted):
        raise ValueError(f"truth has {len(truth)} labels, predicted {len(predicted)}")
    labels = sorted(set(truth) | set(predicted))
    confusion = {t: dict.fromkeys(labels, 0) for t in labels}
    for t, p in zip(truth, predicted):
        confusion[t][p] += 1
    n = len(truth)
    if n == 0:
        return Agreement(n=0, accuracy=None, kappa=None, labels=labels, confusion=confusion)
    observed = sum(t == p for t, p in zip(truth, predicted)) / n
    ct, cp = Counter(truth), Counter(predicted)
    expected = sum(ct[label] * cp[label] for label in labels) / (n * n)
    kappa = None if expected >= 1.0 else (observed - expected) / (1.0 - expected)
    return Agreement(n=n, accuracy=observed, kappa=kappa, labels=labels, confusion=confusion)


class Repeatability(BaseModel):
    """Cases run k times: pass^1 (mean pass rate), pass^k (passed every time), flip rate."""

    k: int
    cases: int
    pass_1: float
    pass_k: float
    flip_rate: float


def repeatability(runs: dict[str, Sequence[bool]]) -> Repeatability:
    """pass^k and flip rate from each case's pass/fail over its k runs (k the fewest runs)."""
    if not runs:
        raise ValueError("no cases to measure repeatability on")
    k = min(len(v) for v in runs.values())
    if k < 1:
        raise ValueError("every case needs at least one run")
    outcomes = [list(v)[:k] for v in runs.values()]
    pass_1 = sum(sum(o) / k for o in outcomes) / len(outcomes)
    pass_k = sum(all(o) for o in outcomes) / len(outcomes)
    flips = sum(len(set(o)) > 1 for o in outcomes) / len(outcomes)
    return Repeatability(k=k, cases=len(outcomes), pass_1=pass_1, pass_k=pass_k, flip_rate=flips)
