"""Conformance of an event frame against a Petri net: fitness, precision, F1, deviations.

Both measures are pm4py's token-based ones, computed faster but to the same values
(except where token replay is wrong, below):

- fitness: token-based replay (missing / consumed / remaining / produced tokens),
  as ``pm4py.fitness_token_based_replay`` (log fitness);
- precision: escaping edges on the log's prefix automaton (Munoz-Gama & Carmona
  2010), as ``pm4py.precision_token_based_replay``.

Why it is fast: see ``tokenreplay.PrefixReplay`` (one memoised walk over the
prefix tree of the variants). Cases are weighted by how often their variant occurs.

When the model makes replay expensive (many distinct markings) the walk stops
after ``max_replay_steps`` memoised steps: the variants of a seeded random
sample of cases are replayed, fitness and precision are ratio estimates over
those cases, and a bootstrap over the sampled cases gives 95% intervals.
Precision always uses the whole log's prefix tree for the observed behaviour.

Token replay can call a trace unfit that the model accepts (it guesses one
path through silent transitions). Every variant it finds unfit is checked
exactly (``petri.CompiledNet.accepts``); accepted ones count as fitting.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from closedloop.tools.errors import ToolError
from closedloop.tools.log import as_canonical
from closedloop.tools.mining import performance as perf
from closedloop.tools.mining.petri import CompiledNet
from closedloop.tools.mining.tokenreplay import CaseDeviation, PrefixReplay

__all__ = [
    "DEFAULT_MAX_REPLAY_STEPS",
    "CaseDeviation",
    "ConformanceReport",
    "replay_conformance",
]

DEFAULT_MAX_REPLAY_STEPS = 20_000
CONFIRM_MAX_STATES = 5_000  # markings one exact membership check may visit
CONFIRM_BUDGET_STATES = 300_000  # markings all exact checks of one replay may visit
BOOTSTRAP_ROUNDS = 300


class ConformanceReport(BaseModel):
    """Fitness, precision and F1 of a model against a log, with per-case deviations."""

    model: str = Field(description="which model was checked (reference file or discovered)")
    fitness: float = Field(description="token-based replay log fitness, 0..1")
    fitness_ci: tuple[float, float] | None = Field(
        description="95% interval when estimated from a sample; None when exact"
    )
    precision: float = Field(description="escaping-edges (ETConformance) precision, 0..1")
    precision_ci: tuple[float, float] | None
    f1: float = Field(description="harmonic mean of fitness and precision")
    fitting_cases_share: float = Field(description="share of cases replayed without problems")
    method: str
    exact: bool = Field(description="False: estimated on a random sample of cases")
    cases: int
    variants: int
    sample_variants: int = Field(description="variants replayed")
    sample_cases_share: float = Field(description="share of the cases in the replayed sample")
    activities_not_in_model: list[str] = Field(
        description="log activities with no transition in the model (skipped by replay)"
    )
    deviating_cases: int = Field(description="non-fitting cases among the replayed ones")
    deviations: list[CaseDeviation] = Field(description="most frequent deviating sequences first")
    duration_s: float


def replay_conformance(
    frame: pd.DataFrame,
    net: Any,
    im: Any,
    fm: Any,
    model_name: str = "model",
    seed: int = 0,
    max_replay_steps: int = DEFAULT_MAX_REPLAY_STEPS,
    max_deviations: int = 20,
    cases: pd.DataFrame | None = None,
    confirm: bool = True,
) -> ConformanceReport:
    """Conformance of an event frame against a pm4py Petri net (see ``conformance.check_conformance``).

    ``cases`` may pass ``performance.case_table`` of the canonical frame when the
    caller already has it (then ``frame`` is not read again). ``confirm=False``
    skips the exact check of the variants token replay finds unfit (pm4py's
    values, faster on very concurrent nets).
    """
    started = time.perf_counter()
    if max_replay_steps < 1 or max_deviations < 0:
        raise ToolError("max_replay_steps must be >= 1 and max_deviations >= 0")
    if cases is None:
        cases = perf.case_table(as_canonical(frame, "replay"))
    codes, keys = pd.factorize(cases["variant"], sort=False)
    variants = [tuple(str(k).split(perf.SEP)) for k in keys]
    counts = np.bincount(codes, minlength=len(variants))
    order = np.random.default_rng(seed).permutation(len(codes))
    # variants in the order a random walk through the cases meets them
    met, first_seen = np.unique(codes[order], return_index=True)
    walk_order = met[np.argsort(first_seen)]

    replay = PrefixReplay(net, im, fm, variants)
    done = np.zeros(len(variants), dtype=bool)
    for v in walk_order.tolist():
        if replay.cost > max_replay_steps and done.any():
            break
        replay.variant(v)
        done[v] = True
    confirmed = _confirm_fitting(replay, net, im, fm, np.flatnonzero(done)) if confirm else 0
    exact = bool(done.all())
    if exact:
        weights = counts.astype(float)
    else:  # the longest run of the case permutation whose variants were all replayed
        k = int(np.argmin(done[codes[order]]))
        weights = np.bincount(codes[order][:k], minlength=len(variants)).astype(float)
    stats = replay.stats
    sampled = np.flatnonzero(weights > 0)
    in_sample = {name: values[sampled] for name, values in stats.items()}
    fitness, precision, fit_share = _estimates(in_sample, weights[None, sampled])
    fitness_ci = precision_ci = None
    if not exact:
        rng = np.random.default_rng(seed + 1)
        n = int(weights.sum())
        share = weights[sampled] / n
        draws = rng.multinomial(n, share, size=BOOTSTRAP_ROUNDS).astype(float)
        boot_f, boot_p, _ = _estimates(in_sample, draws)
        fitness_ci = _interval(boot_f)
        precision_ci = _interval(boot_p)
    f, p = float(fitness[0]), float(precision[0])
    sampled_cases = int(weights.sum())
    unfit = [int(v) for v in sampled if not stats["fit"][v]]
    unfit.sort(key=lambda v: (-counts[v], stats["trace_fitness"][v]))
    first_case = cases.index.to_numpy()[np.unique(codes, return_index=True)[1]]
    method = (
        "token-based replay per variant, exact"
        if exact
        else f"token-based replay of a seeded random sample of {sampled_cases} cases "
        f"(seed {seed}); 95% bootstrap intervals"
    )
    if confirmed:
        method += (
            f"; {confirmed} variant(s) token replay could not fit were replayed exactly "
            "(the model accepts them) and count as fitting"
        )
    return ConformanceReport(
        model=model_name,
        fitness=round(f, 4),
        fitness_ci=fitness_ci,
        precision=round(p, 4),
        precision_ci=precision_ci,
        f1=round(2 * f * p / (f + p), 4) if f + p > 0 else 0.0,
        fitting_cases_share=round(float(fit_share[0]), 4),
        method=method,
        exact=exact,
        cases=len(codes),
        variants=len(variants),
        sample_variants=len(sampled),
        sample_cases_share=round(sampled_cases / len(codes), 4),
        activities_not_in_model=sorted({a for v in variants for a in v} - replay.labels.keys()),
        deviating_cases=int(weights[unfit].sum()),
        deviations=[
            replay.deviation(v, str(first_case[v]), int(counts[v])) for v in unfit[:max_deviations]
        ],
        duration_s=round(time.perf_counter() - started, 3),
    )


def _confirm_fitting(replay: PrefixReplay, net: Any, im: Any, fm: Any, variants: Any) -> int:
    """Correct token replay where it wrongly finds a variant unfit; returns how many.

    Token replay picks one path through silent transitions and can miss the one
    that fits (the true model of the synthetic a42 log scores 0.973). A variant
    the net provably accepts (``petri.CompiledNet.accepts``) gets no missing
    and no remaining tokens. Nets whose silent steps reach too many markings
    keep the token-replay result (for the variants not checked yet).
    """
    stats = replay.stats
    unfit = [int(v) for v in variants if not stats["fit"][v]]
    if not unfit or not replay.labels.keys() - {None}:
        return 0
    compiled = CompiledNet(net, im, fm, max_states=CONFIRM_MAX_STATES)
    confirmed = 0
    for v in unfit:
        if compiled.visited > CONFIRM_BUDGET_STATES:  # bound the work on very concurrent nets
            return confirmed
        try:
            accepted = compiled.accepts(replay.variants[v])
        except ToolError:  # too many markings: keep what token replay found
            return confirmed
        if accepted:
            stats["missing"][v] = stats["remaining"][v] = 0
            stats["fit"][v] = stats["trace_fitness"][v] = 1.0
            confirmed += 1
    return confirmed


def _estimates(stats: dict[str, np.ndarray], w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Log fitness, precision and fitting share for each row of case weights ``w`` (rows x variants)."""

    def total(name: str) -> np.ndarray:
        return w @ np.nan_to_num(stats[name])

    consumed, produced, at = total("consumed"), total("produced"), total("at")
    with np.errstate(divide="ignore", invalid="ignore"):
        fitness = np.where(
            (consumed > 0) & (produced > 0),
            0.5 * (1 - total("missing") / consumed) + 0.5 * (1 - total("remaining") / produced),
            1.0,
        )
        precision = np.where(at > 0, 1 - total("ee") / at, 1.0)
        fit_share = total("fit") / w.sum(axis=1)
    return fitness, precision, fit_share


def _interval(values: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return round(float(low), 4), round(float(high), 4)
